"""The VLM critic: structured answers, repair turns, clean failures, recording; the tiny transformers VLM."""

from __future__ import annotations

import json

import httpx
import pytest
from PIL import Image

from agent.api import Engine, RunRecorder
from agent.graph import Graph, ToolNode
from planners.llm_client import Completion, OpenAIServerClient
from tools.vlm import KIND_CRITIQUE, KIND_DESCRIBE, VLM, VLMError, VLMLimits, fix_box, parse_json_object, vlm_tools

VALID_DESCRIPTION = {
    "summary": "a red cat on a car", "style": "photo", "lighting": "soft", "palette": "red, blue",
    "composition": "centered",
    "objects": [{"name": "cat", "type": "animal", "attributes": {"color": "red", "material": "", "texture": "",
                                                                  "detail": ""}, "box": [0.6, 0.1, 0.2, 0.5]}],
    "relations": ["cat on car"],
}  # fmt: skip


class ScriptedClient:
    """An LLM client that answers from a script (one text per call) and remembers what it was asked."""

    kind = "scripted"
    model = "scripted-vlm"

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def complete_json(self, messages, schema, **kw):
        self.calls.append({"messages": messages, "schema": schema, **kw})
        text = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [Completion(text, "stop", 10)]

    def identity(self):
        return {"client": self.kind}


class MemoryRecorder(RunRecorder):
    def __init__(self):
        super().__init__(None)
        self.rows = []

    def record(self, kind, request, response):
        self.rows.append({"kind": kind, "request": request, "response": response})


def image(color=(200, 30, 30)):
    return Image.new("RGB", (64, 64), color)


def test_valid_answer_is_parsed_and_the_image_goes_as_a_data_uri():
    client = ScriptedClient([json.dumps(VALID_DESCRIPTION)])
    vlm = VLM(client)
    rec = MemoryRecorder()
    ans = vlm.ask(KIND_DESCRIBE, "describe", [image()], recorder=rec)
    assert ans.summary == "a red cat on a car"
    parts = client.calls[0]["messages"][1]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    # the schema is bounded: every list has maxItems, the box has 4 numbers in [0, 1]
    obj = client.calls[0]["schema"]["$defs"]["Object"]["properties"]
    assert obj["box"]["maxItems"] == 4 and obj["box"]["items"]["maximum"] == 1.0
    row = rec.rows[0]
    assert row["kind"] == KIND_DESCRIBE and "sha256" in row["request"]["messages"][1]["content"][0]
    assert "base64" not in json.dumps(row["request"])  # images are recorded by hash, not inline


def test_invalid_json_is_repaired_with_the_errors_fed_back():
    bad = dict(VALID_DESCRIPTION, objects=[{"name": "cat"}])
    client = ScriptedClient(["Sure! {not json", json.dumps(bad), json.dumps(VALID_DESCRIPTION)])
    vlm = VLM(client, repairs=2)
    rec = MemoryRecorder()
    assert vlm.ask(KIND_DESCRIBE, "describe", [image()], recorder=rec).objects[0].name == "cat"
    assert len(client.calls) == 3 and len(rec.rows) == 3
    repair = client.calls[1]["messages"][-1]["content"]
    assert "not JSON" in repair and client.calls[1]["messages"][-2] == {"role": "assistant", "content": "Sure! {not json"}
    assert "objects.0.type" in client.calls[2]["messages"][-1]["content"]


def test_invalid_json_fails_cleanly_after_the_repair_budget():
    vlm = VLM(ScriptedClient(["```nope```"]), repairs=1)
    with pytest.raises(VLMError) as e:
        vlm.ask(KIND_CRITIQUE, "critique", [image()])
    msg = str(e.value)
    assert "\n" not in msg and "after 1 repairs" in msg and "not JSON" in msg


def test_prose_around_json_is_accepted_and_sloppy_boxes_are_fixed():
    assert parse_json_object('Here you go: {"a": 1} hope it helps') == {"a": 1}
    assert fix_box([0.6, 0.1, 0.2, 0.5]) == [0.2, 0.1, 0.6, 0.5]
    x0, y0, x1, y1 = fix_box([1.0, 1.0, 1.0, 1.0])
    assert x1 - x0 == pytest.approx(0.05) and x1 <= 1.0 and y1 <= 1.0


class _Cfg:
    kind, repairs, max_tokens, temperature = "scripted", 1, 256, 0.0
    text_chars, summary_chars, max_objects, max_edits = 80, 240, 5, 3


def test_a_vlm_critique_that_stays_invalid_fails_the_run_with_one_line(tmp_path):
    # threshold 1: the critique always runs (the preview storyboard alone may score above the default 0.95)
    engine = Engine("preview", home=tmp_path / "home", critique=True, critique_options={"rounds": 1, "threshold": 1.0})
    for tool in vlm_tools(_Cfg, client=ScriptedClient(["garbage"])):
        engine.registry.add(tool)
    out = engine.generate("a red cat on a blue car", seed=1)
    assert not out.ok
    (node, message), = out.failed.items()
    assert node == "artaug.i1.critique" and "VLMError" in message and "\n" not in message
    rows = [json.loads(l) for l in open(f"{out.run_dir}/llm.jsonl")]
    assert [r["kind"] for r in rows] == ["vlm.critique", "vlm.critique"]  # the answer and its one repair


def test_server_transport_sends_images_and_a_json_schema():
    seen = {}

    def handler(request: httpx.Request):
        seen.update(json.loads(request.content))
        body = {"choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"content": json.dumps({"score": 0.5, "global_edits": [], "box_edits": []})}}]}
        return httpx.Response(200, json=body)

    client = OpenAIServerClient("http://vlm.test/v1", "tiny-vlm", transport=httpx.MockTransport(handler))
    ans = VLM(client).ask(KIND_CRITIQUE, "critique", [image()])
    assert ans.score == 0.5
    assert seen["response_format"]["type"] == "json_schema"
    assert seen["messages"][1]["content"][0]["type"] == "image_url"


def test_tiny_transformers_vlm_answers_in_schema(tmp_path):
    from tests.tiny_vlm import cached_tiny_critique_profile

    from tools.vlm import TransformersVLMClient

    root = cached_tiny_critique_profile().parent
    vlm = VLM(TransformersVLMClient(str(root / "vlm")), max_tokens=768, repairs=1,
              limits=VLMLimits(text_chars=12, summary_chars=24, max_objects=2, max_edits=1))
    rec = MemoryRecorder()
    desc = vlm.ask(KIND_DESCRIBE, "describe", [image()], seed=0, recorder=rec)
    assert len(desc.objects) <= 2 and len(desc.summary) <= 24
    crit = vlm.ask(KIND_CRITIQUE, "critique", [image((20, 20, 200))], seed=0, recorder=rec)
    assert 0.0 <= crit.score <= 1.0
    assert all(r["response"]["completions"][0]["finish_reason"] == "stop" for r in rec.rows)


def test_the_vlm_rewrites_a_description_into_n_prompts_text_only_and_recorded():
    from tools.roles import ImageDescription, RewritePromptIn
    from tools.vlm import KIND_REWRITE

    class Ctx:
        rec = MemoryRecorder()

        def recorder(self, i):
            return self.rec

    client = ScriptedClient([json.dumps({"prompts": ["red cat on a car, photo", "photo of a red cat atop a car"]})])
    rewrite = [t for t in vlm_tools(_Cfg, client=client) if t.name == "rewrite_prompt"][0]
    desc = ImageDescription.model_validate(VALID_DESCRIPTION)
    ctx = Ctx()
    out = rewrite.run([RewritePromptIn(description=desc, n=2, seed=4)], ctx)[0]
    assert out.prompts == ["red cat on a car, photo", "photo of a red cat atop a car"]
    call = client.calls[0]
    prompts = call["schema"]["properties"]["prompts"]
    assert prompts["minItems"] == prompts["maxItems"] == 2 and prompts["items"]["pattern"].endswith("{0,43}$")
    parts = call["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text"]  # text only: the rewrite needs no image
    assert "a red cat on a car" in parts[0]["text"] and "cat on car" in parts[0]["text"] and call["seed"] == 4
    assert [r["kind"] for r in ctx.rec.rows] == [KIND_REWRITE]
