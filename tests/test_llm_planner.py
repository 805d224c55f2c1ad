"""LLM planner: interpolation math and planner logic with a fake client; the transports against real engines.

Real-engine tests use a tiny random Llama (tests/llm_fixtures.py): a real vLLM OpenAI-compatible server (session
fixture ``vllm_server``), the in-process ``vllm.LLM`` (in a subprocess), and transformers + xgrammar in-process.
A random model writes nonsense, so those tests assert the mechanism (schema enforced, repair loop bounded,
errors one line, replay identical), and accept either a valid Blueprint or a clean PlanningError where the
outcome depends on what the model wrote.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import prompts
from agent.blueprint import Blueprint, Canvas, semantic_errors
from agent.profiles import PlannerConfig
from planners import build_planner
from planners.base import PlanningError
from planners.llm_client import (
    Completion,
    JSONRequest,
    LLMServerError,
    LLMTimeoutError,
    LLMUnreachableError,
    ModelNotFoundError,
    OpenAIServerClient,
    TruncatedError,
)
from planners.llm_planner import (
    KIND_DESCRIPTIONS,
    KIND_LAYOUT,
    KIND_REPAIR,
    Layout,
    LLMPlanner,
    SchemaLimits,
    combine_boxes,
    deoverlap,
    descriptions_schema,
    fix_box,
    interpolate_layouts,
    layout_schema,
    name_similarity,
    parse_layout,
    quoted_strings,
    same_object,
)

ROOT = Path(__file__).resolve().parents[1]


# --- helpers ---------------------------------------------------------------------------------------------------
class MemoryRecorder:
    """Records exchanges; replays them when built from an earlier recorder's items (keyed by canonical JSON)."""

    def __init__(self, replay: list[tuple[str, dict, dict]] | None = None):
        self.items: list[tuple[str, dict, dict]] = []
        self._replay = {(k, json.dumps(req, sort_keys=True)): resp for k, req, resp in (replay or [])}
        self.hits = 0

    def record(self, kind: str, request: dict, response: dict) -> None:
        json.dumps(request, sort_keys=True)  # must be JSON
        self.items.append((kind, request, response))

    def lookup(self, kind: str, request: dict) -> dict | None:
        resp = self._replay.get((kind, json.dumps(request, sort_keys=True)))
        self.hits += resp is not None
        return resp

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.items]


def layout_json(objects=(), texts=(), background="a park", style="photo", negative=""):
    return json.dumps(
        {
            "objects": [{"name": n, "box": list(b)} for n, b in objects],
            "texts": [{"content": c, "box": list(b)} for c, b in texts],
            "background": background,
            "style": style,
            "negative_prompt": negative,
        }
    )


class FakeClient:
    """Answers layout requests from a list of scripted answers (one per call) and descriptions generically."""

    kind = "fake"
    model = "fake-model"

    def __init__(self, layout_answers: list[list[Completion]]):
        self.layout_answers = list(layout_answers)
        self.requests: list[JSONRequest] = []

    def complete_json_batch(self, requests):
        out = []
        for req in requests:
            self.requests.append(req)
            if "descriptions" in req.schema.get("properties", {}):
                names = req.schema["$defs"]["Description"]["properties"]["name"]["enum"]
                text = json.dumps({"descriptions": [{"name": n, "description": f"A photo of {n}"} for n in names]})
                out.append([Completion(text, "stop")])
            else:
                out.append(self.layout_answers.pop(0)[: req.n])
        return out

    def identity(self):
        return {"client": self.kind, "model": self.model}


class ExplodingClient(FakeClient):
    """Stands in for the recorded transport (same kind, model and wire format) and fails if it is ever called."""

    def __init__(self, kind: str = "fake", model: str = "fake-model", like=None):
        super().__init__([])
        self.kind, self.model = kind, model
        if like is not None:
            self.wire = like.wire  # the request as that transport sends it is part of what was recorded

    def complete_json_batch(self, requests):
        raise AssertionError("replay must not call the LLM")


def ok(text: str) -> Completion:
    return Completion(text, "stop")


CAT_DOG = [
    ok(layout_json([("a cat", (0.1, 0.5, 0.4, 0.9)), ("dog", (0.6, 0.5, 0.9, 0.9))], background="a big green park")),
    ok(layout_json([("cat", (0.12, 0.48, 0.42, 0.88)), ("a dog", (0.58, 0.5, 0.88, 0.92))], background="a park")),
    ok(layout_json([("white cat", (0.08, 0.52, 0.38, 0.9)), ("dog", (0.62, 0.52, 0.92, 0.9))], background="park lawn")),
]


# --- interpolation and geometry (pure functions) ----------------------------------------------------------------
def test_merge_rule():
    assert same_object("a white cat", "white cat")
    assert name_similarity("a white cat", "white cat") == pytest.approx(1.0)
    assert not same_object("a cat", "a dog")
    assert name_similarity("a cat", "a dog") == 0.0
    assert same_object("cat", "white cat")  # cos = 1/sqrt(2) ≈ 0.71 >= 0.5
    assert same_object("apple 2", "apple")  # instance numbers are not words


def test_interpolation_mean_and_sequential_weights():
    b1, b2, b3 = (0.0, 0.0, 0.4, 0.4), (0.2, 0.2, 0.6, 0.6), (0.4, 0.4, 0.8, 0.8)
    layouts = [
        Layout(objects=[("a white cat", b1)]),
        Layout(objects=[("white cat", b2)]),
        Layout(objects=[("cat", b3)]),
    ]
    mean = interpolate_layouts(layouts, mode="mean")
    assert [n for n, _ in mean.objects] == ["a white cat"]
    assert mean.objects[0][1] == pytest.approx((0.2, 0.2, 0.6, 0.6))
    seq = interpolate_layouts(layouts, mode="sequential")
    # LLM Blueprint's b = b1; b = b + 0.5 (bi - b): weights 0.25, 0.25, 0.5
    expect = tuple(0.25 * a + 0.25 * b + 0.5 * c for a, b, c in zip(b1, b2, b3))
    assert seq.objects[0][1] == pytest.approx(expect)
    assert combine_boxes([b1, b2, b3], "sequential") == pytest.approx(expect)


def test_interpolation_matching_union_instances_and_text_fields():
    layouts = [
        Layout(
            objects=[("apple 1", (0.1, 0.1, 0.2, 0.2)), ("apple 2", (0.7, 0.1, 0.8, 0.2)),
                     ("red car", (0.1, 0.5, 0.4, 0.8)), ("blue car", (0.5, 0.5, 0.9, 0.8))],
            texts=[("OPEN", (0.4, 0.0, 0.6, 0.1))],
            background="a long sunny street with shops", style="photo",
        ),
        Layout(
            objects=[("apple", (0.72, 0.12, 0.82, 0.22)), ("apple", (0.12, 0.12, 0.22, 0.22)),
                     ("a dog", (0.4, 0.8, 0.6, 1.0))],
            texts=[("OPEN", (0.42, 0.0, 0.62, 0.1)), ("open", (0.0, 0.0, 0.1, 0.1))],
            background="a street", style="watercolor",
        ),
        Layout(objects=[("apple", (0.1, 0.1, 0.2, 0.2))], background="", style="photo", negative_prompt="blur"),
    ]  # fmt: skip
    m = interpolate_layouts(layouts)
    names = [n for n, _ in m.objects]
    # two instances (most common count), matched by nearest centre, renumbered; cars stay apart; union keeps the dog
    assert names == ["apple 1", "apple 2", "red car", "blue car", "a dog"]
    apple1 = dict(m.objects)["apple 1"]
    # apple 1: layout 1's, layout 2's nearest and layout 3's only apple; apple 2: layouts 1 and 2
    assert apple1 == pytest.approx(((0.1 + 0.12 + 0.1) / 3,) * 2 + ((0.2 + 0.22 + 0.2) / 3,) * 2)
    assert dict(m.objects)["apple 2"] == pytest.approx((0.71, 0.11, 0.81, 0.21))
    assert [c for c, _ in m.texts] == ["OPEN", "open"]  # exact content: case matters
    assert m.background == "a street"  # shortest non-empty
    assert m.style == "photo"  # most common
    assert m.negative_prompt == "blur"


def test_fix_box_and_deoverlap():
    assert fix_box((0.5, 0.6, 0.2, 0.1)) == (0.2, 0.1, 0.5, 0.6)  # corners sorted
    x0, y0, x1, y1 = fix_box((0.3, 0.99, 0.3, 1.0), min_side=0.05)  # grown, kept inside
    assert x1 - x0 == pytest.approx(0.05) and y1 - y0 == pytest.approx(0.05) and y1 <= 1.0
    boxes = [(0.1, 0.1, 0.5, 0.5), (0.12, 0.1, 0.52, 0.5), (0.3, 0.3, 0.4, 0.4)]
    out = deoverlap(boxes, iou_threshold=0.5)
    from agent.blueprint import iou

    assert iou(list(out[0]), list(out[1])) <= 0.5  # the piled-up pair was separated
    assert out[2] == boxes[2]  # a small box nested in a big one stays (IoU 0.06)
    assert all(0 <= v <= 1 for b in out for v in b)
    # sizes are kept
    for a, b in zip(boxes, out):
        assert (a[2] - a[0], a[3] - a[1]) == pytest.approx((b[2] - b[0], b[3] - b[1]))
    # the code's any-overlap rule moves the nested box too
    assert deoverlap(boxes, iou_threshold=0.0)[2] != boxes[2]


def test_quoted_strings():
    prompt = 'a shop sign that says "OPEN 24/7" and “Café”, it\'s "OPEN 24/7"'
    assert quoted_strings(prompt) == ["OPEN 24/7", "Café"]
    assert quoted_strings("no quotes, it's fine") == []


def test_schema_is_bounded_for_xgrammar():
    def walk(node, path="$"):
        if isinstance(node, dict):
            t = node.get("type")
            if t == "string" and "enum" not in node:
                assert "pattern" in node, path
                assert not ({"maxLength", "minLength"} & node.keys()), f"{path}: pattern + length is rejected by vLLM"
                assert re.search(r"\{\d+,\d+\}", node["pattern"]), f"{path}: unbounded pattern"
            if t == "number":
                assert node["minimum"] == 0 and node["maximum"] == 1, path
            if t == "array":
                assert "maxItems" in node, path
            if t == "object":
                assert node.get("additionalProperties") is False, path
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(layout_schema(SchemaLimits()))
    walk(descriptions_schema(["cat", "dog"], SchemaLimits()))
    assert "multipleOf" not in json.dumps(layout_schema(SchemaLimits()))
    assert "multipleOf" in json.dumps(layout_schema(SchemaLimits(multiple_of=0.001)))
    # parse_layout is strict about what the schema allows
    lim = SchemaLimits(max_objects=1, name_chars=4, char_class="[a-z ]", first_char_class="[a-z]")
    with pytest.raises(ValueError, match="layout schema"):
        parse_layout(layout_json([("cats and dogs", (0, 0, 1, 1))]), lim)
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_layout('{"objects":[', lim)


def test_default_schemas_compile_in_xgrammar(tiny_llm_dir):
    """xgrammar 0.2.8 cannot compile a pattern repetition above 128 with a real tokenizer (vLLM then answers
    HTTP 500); the default limits (200-300 character strings) must still compile."""
    xgr = pytest.importorskip("xgrammar")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llm_dir)
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok)))
    names = ["a very long object name " * 2, "dog"]
    for schema in (layout_schema(SchemaLimits()), descriptions_schema(names, SchemaLimits())):
        compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
    with pytest.raises(RuntimeError, match="per_rule_fsm_hashes"):  # the bug, so we notice when it is fixed
        bad = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^[a-z]{0,129}$"}}}
        compiler.compile_json_schema(json.dumps(bad), any_whitespace=False)


def test_prompt_templates_versioned():
    for name in ("layout_system", "layout_user", "describe_system", "describe_user", "repair_user"):
        text, version = prompts.load(name)
        raw = (ROOT / "prompts" / "templates" / f"{name}.txt").read_bytes()
        assert version == hashlib.sha256(raw).hexdigest()[:12] and text == raw.decode()
    text, _ = prompts.render("layout_user", prompt="a cat", width=512, height=512)
    assert "a cat" in text and "$" not in text
    with pytest.raises(prompts.TemplateError):
        prompts.render("layout_user", prompt="a cat")
    system = prompts.render("layout_system", max_objects=3, max_texts=2)[0]
    assert "origin at the TOP-LEFT" in system and "[x0, y0, x1, y1]" in system


# --- planner logic with a fake client --------------------------------------------------------------------------
def test_plan_k_layouts_then_descriptions():
    rec = MemoryRecorder()
    client = FakeClient([CAT_DOG])
    planner = LLMPlanner(client, recorder=rec, layouts=3, repairs=2)
    bp = planner.plan("a cat and a dog in a park", seed=5, canvas=Canvas(width=768, height=512))
    assert isinstance(bp, Blueprint) and bp.seed == 5 and bp.canvas.width == 768
    assert [o.name for o in bp.objects] == ["a cat", "dog"]
    assert bp.objects[0].description == "A photo of a cat"
    assert bp.background == "a park"
    assert bp.objects[0].box == pytest.approx([0.1, 0.5, 0.4, 0.8933], abs=1e-3)  # the mean of 3
    assert semantic_errors(bp) == []
    assert rec.kinds() == [KIND_LAYOUT, KIND_DESCRIPTIONS]
    layout_req = rec.items[0][1]
    assert layout_req["n"] == 3 and layout_req["model"] == "fake-model" and layout_req["client"] == "fake"
    assert set(layout_req["templates"]) >= {"layout_system", "describe_system", "repair_user"}
    assert client.requests[1].schema["$defs"]["Description"]["properties"]["name"]["enum"] == ["a cat", "dog"]
    ident = planner.identity()
    assert ident["model"] == "fake-model" and ident["templates"]["layout_system"] == prompts.version("layout_system")


def test_repair_turn_fixes_missing_quoted_text():
    rec = MemoryRecorder()
    fixed = ok(layout_json([("shop", (0.1, 0.1, 0.9, 0.9))], texts=[("OPEN", (0.4, 0.2, 0.6, 0.3))]))
    client = FakeClient([[ok(layout_json([("shop", (0.1, 0.1, 0.9, 0.9))]))] * 3, [fixed]])
    bp = LLMPlanner(client, recorder=rec, repairs=2).plan('a shop with a sign that says "OPEN"')
    assert [t.content for t in bp.texts] == ["OPEN"]
    assert rec.kinds() == [KIND_LAYOUT, KIND_DESCRIPTIONS, KIND_REPAIR]
    repair_msgs = rec.items[2][1]["messages"]
    assert (
        repair_msgs[-2]["role"] == "assistant"
        and json.loads(repair_msgs[-2]["content"])["objects"][0]["name"] == "shop"
    )
    assert 'quotes "OPEN"' in repair_msgs[-1]["content"]


def test_repairs_are_bounded_and_the_error_is_one_line():
    rec = MemoryRecorder()
    same = [ok(layout_json([("shop", (0.1, 0.1, 0.9, 0.9))]))]
    client = FakeClient([same * 3, same, same])
    with pytest.raises(PlanningError) as err:
        LLMPlanner(client, recorder=rec, repairs=2).plan('a sign that says "OPEN"')
    msg = str(err.value)
    assert "\n" not in msg and "after 2 repairs" in msg and '"OPEN"' in msg
    assert rec.kinds().count(KIND_REPAIR) == 2


def test_truncated_answers_are_retried_with_more_tokens():
    rec = MemoryRecorder()
    cut = Completion('{"objects":[{"name":"ca', "length")
    client = FakeClient([[cut] * 3, CAT_DOG])
    bp = LLMPlanner(client, recorder=rec, max_tokens=64, repairs=1).plan("a cat and a dog")
    assert len(bp.objects) == 2
    assert [r.max_tokens for r in client.requests] == [64, 128, 64]  # layout, layout retry, descriptions
    assert rec.kinds() == [KIND_LAYOUT, KIND_LAYOUT, KIND_DESCRIPTIONS]
    # no budget left: a clean one-line error
    client = FakeClient([[cut] * 3])
    with pytest.raises(PlanningError, match="no usable layout .* cut off"):
        LLMPlanner(client, max_tokens=64, repairs=0).plan("a cat and a dog")


def test_invalid_json_gets_a_repair_turn():
    client = FakeClient([[ok('{"objects": "nope"}')] * 3, [CAT_DOG[0]]])
    rec = MemoryRecorder()
    bp = LLMPlanner(client, recorder=rec, repairs=1).plan("a cat and a dog")
    assert len(bp.objects) == 2 and rec.kinds()[:2] == [KIND_LAYOUT, KIND_REPAIR]
    assert "layout schema" in rec.items[1][1]["messages"][-1]["content"]


def test_replay_needs_no_llm():
    rec = MemoryRecorder()
    bp1 = LLMPlanner(FakeClient([CAT_DOG]), recorder=rec).plan("a cat and a dog", seed=3)
    replay = MemoryRecorder(replay=json.loads(json.dumps(rec.items)))  # as if read back from llm.jsonl
    bp2 = LLMPlanner(ExplodingClient(), recorder=replay).plan("a cat and a dog", seed=3)
    assert bp1.to_json() == bp2.to_json() and replay.hits == 2


def test_plan_many_batches_rounds():
    class Counting(FakeClient):
        def __init__(self):
            super().__init__([CAT_DOG, CAT_DOG, CAT_DOG])
            self.batches = []

        def complete_json_batch(self, requests):
            self.batches.append(len(requests))
            return super().complete_json_batch(requests)

    client = Counting()
    out = LLMPlanner(client).plan_many(["a", "b", "c"], seeds=[0, 1, 2])
    assert all(isinstance(b, Blueprint) for b in out)
    assert client.batches == [3, 3]  # one layout round, one descriptions round
    seeds = [r.seed for r in client.requests[:3]]
    assert len(set(seeds)) == 3 and all(b - a >= 16 for a, b in itertools.pairwise(seeds))


def test_build_planner_kinds(tmp_path):
    p = build_planner(PlannerConfig(kind="vllm-server", model="m", url="http://127.0.0.1:9/v1", layouts=2, repairs=1))
    assert isinstance(p, LLMPlanner) and p.layouts == 2 and p.repairs == 1
    assert p.identity()["client"]["url"] == "http://127.0.0.1:9/v1" and p.identity()["kind"] == "vllm-server"
    assert build_planner(PlannerConfig(kind="transformers", model=str(tmp_path))).identity()["kind"] == "transformers"
    assert build_planner(PlannerConfig(kind="vllm-local", model="x")).identity()["client"]["client"] == "vllm-local"


# --- HTTP error mapping and retry policy (mock transport: a real server cannot be made to answer 500) -------------
def _mock_client(handler, **kw):
    sleeps: list[float] = []
    c = OpenAIServerClient("http://llm.test/v1", "m", transport=httpx.MockTransport(handler), sleep=sleeps.append, **kw)
    return c, sleeps


def _chat_ok(content='{"a":1}', finish="stop"):
    return httpx.Response(
        200, json={"choices": [{"index": 0, "message": {"content": content}, "finish_reason": finish}]}
    )


def test_http_5xx_is_retried_with_backoff_then_fails():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503, json={"error": {"message": "engine\n overloaded"}})

    client, sleeps = _mock_client(handler)
    with pytest.raises(LLMServerError, match="HTTP 503.*engine overloaded") as err:
        client.complete_json([{"role": "user", "content": "x"}], {"type": "object"})
    assert len(calls) == 4 and sleeps == [1.0, 2.0, 4.0] and "\n" not in str(err.value)

    n = iter([503, 200])
    client, sleeps = _mock_client(lambda r: _chat_ok() if next(n) == 200 else httpx.Response(500, text="boom"))
    assert client.complete_json([{"role": "user", "content": "x"}], {"type": "object"})[0].text == '{"a":1}'
    assert sleeps == [1.0]


def test_timeout_is_retried_once():
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.ReadTimeout("slow", request=request)

    client, _ = _mock_client(handler, timeout_s=3)
    with pytest.raises(LLMTimeoutError, match="within 3s"):
        client.complete_json([{"role": "user", "content": "x"}], {"type": "object"})
    assert len(calls) == 2


def test_request_body_uses_response_format_not_guided_json():
    seen = {}

    def handler(request):
        seen.update(json.loads(request.content))
        return _chat_ok('{"objects":[', "length")

    client, _ = _mock_client(handler)
    with pytest.raises(TruncatedError) as err:
        client.complete_json([{"role": "user", "content": "x"}], {"type": "object"}, n=2, max_tokens=7, seed=4)
    assert seen["response_format"]["type"] == "json_schema" and seen["response_format"]["json_schema"]["strict"] is True
    assert "guided_json" not in seen and seen["n"] == 2 and seen["seed"] == 4 and seen["max_tokens"] == 7
    assert err.value.completions[0].text == '{"objects":['


# --- a real vLLM server ------------------------------------------------------------------------------------------
def tiny_limits() -> SchemaLimits:
    from tests.llm_fixtures import tiny_limits as limits

    return limits()


def test_server_enforces_the_bounded_schema(vllm_server):
    client = OpenAIServerClient(vllm_server.url, vllm_server.model)
    lim = tiny_limits()
    t0 = time.monotonic()
    comps = client.complete_json(
        [{"role": "user", "content": "Plan a scene with a cat."}],
        layout_schema(lim),
        n=4,
        temperature=1.0,
        max_tokens=256,
        seed=1,
    )
    dt = time.monotonic() - t0
    assert len(comps) == 4
    for c in comps:
        assert c.finish_reason == "stop", c
        parse_layout(c.text, lim)  # raises if the server did not enforce the schema
    # contract test: a schema a random model would never satisfy by chance
    pick = {"type": "string", "enum": ["alpha", "beta"]}
    enum = {"type": "object", "properties": {"pick": pick}, "required": ["pick"], "additionalProperties": False}
    for c in client.complete_json(
        [{"role": "user", "content": "hi"}], enum, n=3, temperature=1.0, max_tokens=32, seed=0
    ):
        assert json.loads(c.text)["pick"] in ("alpha", "beta")
    print(f"\n[timing] server healthy after {vllm_server.startup_s:.1f}s; 4 layout samples in one request {dt:.2f}s")


def test_server_accepts_the_default_schema(vllm_server):
    client = OpenAIServerClient(vllm_server.url, vllm_server.model)
    try:
        comps = client.complete_json([{"role": "user", "content": "x"}], layout_schema(SchemaLimits()), max_tokens=64)
        json.loads(comps[0].text)
    except TruncatedError:
        pass  # the grammar compiled and decoding ran; a random model just needs more tokens


def test_server_plain_chat(vllm_server):
    client = OpenAIServerClient(vllm_server.url, vllm_server.model)
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Is there a cat? Answer yes or no."}]}]
    comps = client.chat(msgs, n=2, temperature=1.0, max_tokens=8, seed=0)
    assert len(comps) == 2 and all(c.finish_reason in ("stop", "length") and isinstance(c.text, str) for c in comps)


def test_server_plan_valid_or_clean_error(vllm_server):
    rec = MemoryRecorder()
    client = OpenAIServerClient(vllm_server.url, vllm_server.model)
    planner = LLMPlanner(client, recorder=rec, limits=tiny_limits(), max_tokens=256, repairs=2, temperature=1.0)
    t0 = time.monotonic()
    try:
        bp = planner.plan("a cat and a dog in a park", seed=0)
    except PlanningError as err:
        assert "\n" not in str(err) and rec.kinds().count(KIND_REPAIR) == 2
    else:
        assert semantic_errors(bp) == [] and bp.prompt == "a cat and a dog in a park"
    dt = time.monotonic() - t0
    assert rec.kinds()[0] == KIND_LAYOUT and rec.items[0][1]["n"] == 3
    assert len(rec.items[0][2]["completions"]) == 3
    # a quoted text the random model will not write: the repair loop runs to its bound, then a one-line error
    rec2 = MemoryRecorder()
    planner2 = LLMPlanner(client, recorder=rec2, limits=tiny_limits(), max_tokens=256, repairs=2, temperature=1.0)
    try:
        planner2.plan('a shop sign that says "zq"', seed=1)
    except PlanningError as err:
        msg = str(err)
        assert "\n" not in msg and "after 2 repairs" in msg and '"zq"' in msg
        assert rec2.kinds().count(KIND_REPAIR) == 2
        last = [req for kind, req, _ in rec2.items if kind == KIND_REPAIR][-1]["messages"]
        assert last[-2]["role"] == "assistant" and 'quotes "zq"' in last[-1]["content"]
    print(f"\n[timing] full plan on the server {dt:.2f}s, {len(rec.items)} LLM calls: {planner.stats}")


def test_server_truncation_is_repaired_or_fails_cleanly(vllm_server):
    client = OpenAIServerClient(vllm_server.url, vllm_server.model)
    with pytest.raises(TruncatedError) as err:
        client.complete_json([{"role": "user", "content": "x"}], layout_schema(tiny_limits()), max_tokens=4, seed=0)
    assert err.value.completions and err.value.completions[0].finish_reason == "length"
    # the planner doubles max_tokens within its repair budget
    rec = MemoryRecorder()
    planner = LLMPlanner(client, recorder=rec, limits=tiny_limits(), max_tokens=16, repairs=4, temperature=1.0)
    try:
        planner.plan("a cat", seed=2)
    except PlanningError as e:
        assert "\n" not in str(e)
    tokens = [req["max_tokens"] for kind, req, _ in rec.items if kind == KIND_LAYOUT]
    assert tokens[:2] == [16, 32] and all(b == 2 * a for a, b in itertools.pairwise(tokens))
    # no budget to grow: a clean one-line error naming max_tokens
    tight = LLMPlanner(client, limits=tiny_limits(), max_tokens=16, max_tokens_cap=16, repairs=1, temperature=1.0)
    with pytest.raises(PlanningError, match="max_tokens=16"):
        tight.plan("a cat", seed=2)


def test_dead_server_fails_fast_with_a_clear_message():
    from tests.llm_fixtures import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    client = OpenAIServerClient(url, "tiny-llama")
    t0 = time.monotonic()
    with pytest.raises(LLMUnreachableError) as err:
        LLMPlanner(client).plan("a cat")
    dt = time.monotonic() - t0
    msg = str(err.value)
    assert dt < 10, dt
    assert f"no LLM server at {url}" in msg and "vllm.entrypoints.openai.api_server" in msg and "--vllm-url" in msg
    assert isinstance(err.value, PlanningError) and "\n" not in msg
    # model "" (ask the server) fails the same way
    with pytest.raises(LLMUnreachableError):
        OpenAIServerClient(url, "").complete_json([{"role": "user", "content": "x"}], {"type": "object"})


def test_unknown_model_lists_served_models(vllm_server):
    client = OpenAIServerClient(vllm_server.url, "no-such-model")
    with pytest.raises(ModelNotFoundError) as err:
        client.complete_json([{"role": "user", "content": "x"}], {"type": "object"})
    assert "no-such-model" in str(err.value) and "tiny-llama" in str(err.value) and err.value.served == ["tiny-llama"]
    assert OpenAIServerClient(vllm_server.url, "").model == "tiny-llama"  # "" = the one served model


def test_replay_against_a_dead_url_gives_the_same_blueprint(vllm_server):
    from tests.llm_fixtures import free_port

    rec = MemoryRecorder()
    live = LLMPlanner(OpenAIServerClient(vllm_server.url, vllm_server.model), recorder=rec, limits=tiny_limits(),
                      max_tokens=256, repairs=2, temperature=1.0)  # fmt: skip
    try:
        first: Blueprint | str = live.plan("a red car next to a tree", seed=11).to_json()
    except PlanningError as err:
        first = str(err)
    stored = json.loads(json.dumps(rec.items))
    dead = OpenAIServerClient(f"http://127.0.0.1:{free_port()}/v1", vllm_server.model)
    replay = MemoryRecorder(replay=stored)
    again = LLMPlanner(dead, recorder=replay, limits=tiny_limits(), max_tokens=256, repairs=2, temperature=1.0)
    try:
        second: Blueprint | str = again.plan("a red car next to a tree", seed=11).to_json()
    except PlanningError as err:
        second = str(err)
    assert first == second and replay.hits == len(stored)


def test_server_plan_many_concurrent(vllm_server):
    planner = LLMPlanner(OpenAIServerClient(vllm_server.url, vllm_server.model), limits=tiny_limits(), max_tokens=256,
                         repairs=1, temperature=1.0)  # fmt: skip
    t0 = time.monotonic()
    out = planner.plan_many([f"scene {i}: a cat" for i in range(4)], seeds=[0, 1, 2, 3])
    dt = time.monotonic() - t0
    assert len(out) == 4 and all(isinstance(r, (Blueprint, PlanningError)) for r in out)
    assert planner.stats[0]["batch"] == 4
    print(f"\n[timing] plan_many(4) on the server {dt:.2f}s: {planner.stats}")


def test_server_through_build_planner(vllm_server):
    cfg = PlannerConfig(kind="vllm-server", url=vllm_server.url, model="", layouts=2, repairs=1, max_tokens=256)
    planner = build_planner(cfg)
    planner.limits = tiny_limits()  # the profile schema is sized for real models; shrink it for the random one
    try:
        planner.plan("a cat")
    except PlanningError as err:
        assert "\n" not in str(err)
    assert planner.identity()["model"] == "tiny-llama"


# --- in-process engines ----------------------------------------------------------------------------------------
def test_vllm_local_batch_planning(tiny_llm_dir, tmp_path):
    """In-process ``vllm.LLM``: many prompts per batched ``chat`` call (run in a child process, see local_plan_many)."""
    from tests.conftest import _require_vllm

    _require_vllm()
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "tests.llm_fixtures", "local-plan", str(tiny_llm_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    from tests.llm_fixtures import RESULT_PREFIX

    line = next((ln for ln in r.stdout.splitlines() if ln.startswith(RESULT_PREFIX)), None)
    assert line, r.stdout[-3000:]
    data = json.loads(line[len(RESULT_PREFIX) :])
    assert len(data["outcomes"]) == 6
    assert data["batches"][0]["batch"] == 6 and data["batches"][0]["kinds"] == [KIND_LAYOUT] * 6
    for text, good in zip(data["outcomes"], data["ok"]):
        if good:
            Blueprint.model_validate_json(text)
        else:
            assert "\n" not in text and "PlanningError" in text
    print(
        f"\n[timing] vllm.LLM load {data['load_s']}s, plan_many(6) {data['plan_many_s']}s,"
        f" plan(1) {data['plan_one_s']}s, child process total {time.monotonic() - t0:.1f}s"
    )


def test_transformers_planner(tiny_llm_dir):
    pytest.importorskip("xgrammar")
    from planners.llm_client import TransformersClient

    client = TransformersClient(str(tiny_llm_dir), device="cpu")
    lim = tiny_limits()
    t0 = time.monotonic()
    comps = client.complete_json(
        [{"role": "user", "content": "Plan a scene."}], layout_schema(lim), n=2, temperature=1.0, max_tokens=256, seed=0
    )
    dt = time.monotonic() - t0
    for c in comps:
        assert c.finish_reason == "stop", c
        parse_layout(c.text, lim)
    rec = MemoryRecorder()
    planner = LLMPlanner(client, recorder=rec, limits=lim, layouts=2, max_tokens=256, repairs=1, temperature=1.0)
    t1 = time.monotonic()
    try:
        bp = planner.plan("a cat and a dog", seed=0)
        assert semantic_errors(bp) == []
    except PlanningError as err:
        assert "\n" not in str(err)
    assert rec.items[0][0] == KIND_LAYOUT and len(rec.items[0][2]["completions"]) == 2
    # same seed, same answer (replay of a transformers run needs no model either)
    replay = MemoryRecorder(json.loads(json.dumps(rec.items)))
    again = LLMPlanner(ExplodingClient(client.kind, client.model, like=client), recorder=replay, limits=lim, layouts=2,
                       max_tokens=256, repairs=1, temperature=1.0)  # fmt: skip
    try:
        again.plan("a cat and a dog", seed=0)
    except PlanningError:
        pass
    assert replay.hits == len(rec.items)
    print(f"\n[timing] transformers: 2 samples {dt:.2f}s (incl. load), plan {time.monotonic() - t1:.2f}s")
    assert math.isfinite(dt)


def test_stated_counts_are_checked_leniently_and_repaired():
    from planners.llm_planner import names_noun

    assert names_noun("green apple 2", "apple") and names_noun("apples", "apple") and names_noun("Red Apple", "apple")
    assert not names_noun("apple tree", "apple") and not names_noun("pineapple", "apple")
    two = ok(layout_json([("green apple 1", (0.1, 0.3, 0.3, 0.5)), ("green apple 2", (0.4, 0.3, 0.6, 0.5))]))
    three = ok(
        layout_json(
            [("green apple 1", (0.1, 0.3, 0.3, 0.5)), ("green apple 2", (0.4, 0.3, 0.6, 0.5)),
             ("green apple 3", (0.7, 0.3, 0.9, 0.5))]
        )
    )  # fmt: skip
    rec = MemoryRecorder()
    client = FakeClient([[two] * 3, [three]])
    bp = LLMPlanner(client, recorder=rec, expected_counts=lambda p: {"apple": 3}).plan("three green apples")
    assert len(bp.objects) == 3 and rec.kinds().count(KIND_REPAIR) == 1
    assert "asks for 3 'apple' but the layout has 2" in rec.items[2][1]["messages"][-1]["content"]
    planner = build_planner(PlannerConfig(kind="vllm-server", model="m"))
    if planner.expected_counts is not None:  # the rule-based helper is there
        assert planner.expected_counts("three green apples on a table") == {"apple": 3}


def test_an_empty_layout_for_a_prompt_that_names_objects_goes_to_repair():
    """Seen with a real vLLM server: "a cat and a dog in a garden" came back as 0 objects and was painted as
    background only. The prompt names two objects, so fewer is a validation error fed back for repair."""
    from planners.rule_based import named_objects

    assert named_objects("a cat and a dog in a garden") == ["cat", "dog"]
    assert named_objects("three apples and a plate") == ["apple", "apple", "apple", "plate"]
    empty = ok(layout_json([], background="a garden"))
    rec = MemoryRecorder()
    client = FakeClient([[empty] * 3, [CAT_DOG[0]]])
    bp = LLMPlanner(client, recorder=rec, expected_objects=named_objects).plan("a cat and a dog in a garden")
    assert len(bp.objects) == 2 and rec.kinds().count(KIND_REPAIR) == 1
    repair = next(req for kind, req, _ in rec.items if kind == KIND_REPAIR)
    assert "names 2 objects (cat, dog) but the layout has 0" in repair["messages"][-1]["content"]
    with pytest.raises(PlanningError, match="names 2 objects"):
        LLMPlanner(FakeClient([[empty] * 3, [empty], [empty]]), repairs=2,
                   expected_objects=named_objects).plan("a cat and a dog in a garden")
    assert build_planner(PlannerConfig(kind="vllm-server", model="m")).expected_objects is named_objects


def test_the_request_as_sent_is_recorded_with_each_exchange():
    rec = MemoryRecorder()
    client = OpenAIServerClient("http://llm.test/v1", "m", transport=httpx.MockTransport(
        lambda r: httpx.Response(200, json={"choices": [{"index": 0, "finish_reason": "stop", "message": {
            "content": json.loads(r.content)["response_format"] and layout_json([("cat", (0.1, 0.1, 0.5, 0.5))])}}]})))
    LLMPlanner(client, recorder=rec, layouts=1, temperature=0.0).plan("a cat")
    sent = rec.items[0][1]["sent"]
    assert sent["endpoint"] == "POST /chat/completions" and sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == rec.items[0][1]["schema"]


def test_the_profile_interpolation_reaches_the_planner(tmp_path):
    from agent.profiles import ProfileError, get_profile

    cfg = tmp_path / "p.toml"
    cfg.write_text('[profiles.seq.planner]\nkind = "vllm-server"\nmodel = "m"\ninterpolation = "sequential"\n')
    config = get_profile("seq", cfg).planner
    mean = build_planner(PlannerConfig(kind="vllm-server", model="m"), client=FakeClient([CAT_DOG]))
    seq = build_planner(config, client=FakeClient([CAT_DOG]))
    assert seq.identity()["interpolation"] == "sequential" != mean.identity()["interpolation"]
    a, b = (p.plan("a cat and a dog in a park", seed=5).objects[0].box for p in (mean, seq))
    assert a != pytest.approx(b, abs=1e-4)  # the 3 layouts' weights differ: 1/3 each vs 1/4, 1/4, 1/2
    cfg.write_text('[profiles.bad.planner]\nkind = "vllm-server"\ninterpolation = "median"\n')
    with pytest.raises(ProfileError) as err:
        get_profile("bad", cfg)
    assert "interpolation" in str(err.value) and "sequential" in str(err.value)


def test_the_llm_planner_marks_objects_that_need_a_reference():
    schema = layout_schema(SchemaLimits())
    assert schema["$defs"]["LayoutObject"]["properties"]["needs_reference"]["type"] == "boolean"  # bounded
    marked = json.loads(CAT_DOG[1].text)
    marked["objects"][1]["needs_reference"] = True  # one of the 3 layouts marks "a dog"
    answers = [[CAT_DOG[0], ok(json.dumps(marked)), CAT_DOG[2]]]
    bp = LLMPlanner(FakeClient(answers), layouts=3).plan("a cat and a dog in a park", seed=1)
    assert {o.name: o.needs_reference for o in bp.objects} == {"a cat": False, "dog": True}
    from agent.recipes.realrag import reference_queries

    assert list(reference_queries(bp)) == ["dog"]  # the RealRAG branch picks it up
    assert "needs_reference" in prompts.render("layout_system", max_objects=8, max_texts=4)[0]
