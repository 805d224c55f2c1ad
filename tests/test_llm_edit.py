"""LLM chat edits: ``LLMPlanner.edit`` (bounded edit schema, repair loop, recorder) with fake clients, through a real
session turn, and the mechanism against the real vLLM server fixture (a tiny random model: schema-valid JSON or a
clean one-line PlanningError)."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from tests.chat_fixtures import scene_blueprint

import agent.api
from agent.api import Engine, UserError
from agent.edits import EditPlan, SceneState, apply_edits, parse_edit_plan
from agent.sessions import Sessions
from planners.base import PlanningError
from planners.llm_client import Completion, OpenAIServerClient
from planners.llm_planner import KIND_EDIT, LLMPlanner, SchemaLimits, edit_scene_summary, edit_schema


class Recorder:
    def __init__(self, replay=None):
        self.items: list[tuple[str, dict, dict]] = []
        self._replay = {(k, json.dumps(q, sort_keys=True)): r for k, q, r in (replay or [])}

    def record(self, kind, request, response):
        json.dumps(request, sort_keys=True)
        self.items.append((kind, request, response))

    def lookup(self, kind, request):
        return self._replay.get((kind, json.dumps(request, sort_keys=True)))


class ScriptedClient:
    """Answers each request with the next scripted completion."""

    kind, model = "fake", "fake-model"

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    def complete_json_batch(self, requests):
        out = []
        for req in requests:
            self.requests.append(req)
            out.append([self.answers.pop(0)])
        return out

    def identity(self):
        return {"client": self.kind, "model": self.model}


class ExplodingClient(ScriptedClient):
    def __init__(self):
        super().__init__([])

    def complete_json_batch(self, requests):
        raise AssertionError("this must not call the LLM")


def ok(data) -> Completion:
    return Completion(data if isinstance(data, str) else json.dumps(data), "stop")


def plan(*ops, action="edit"):
    return {"action": action, "ops": list(ops)}


BIGGER_CAT = plan({"op": "resize_object", "name": "cat", "scale": 1.4})


# --- the schema ------------------------------------------------------------------------------------------------
def test_edit_schema_is_bounded_and_names_come_from_the_blueprint():
    bp = scene_blueprint()
    schema = edit_schema(bp)

    def walk(node, path="$"):
        if isinstance(node, dict):
            t = node.get("type")
            if t == "string":
                assert "enum" in node or "pattern" in node, path
                assert not ({"maxLength", "minLength"} & node.keys()), path
                if "pattern" in node:
                    reps = re.findall(r"\{(\d+),(\d+)\}", node["pattern"])
                    assert reps and all(int(b) <= 128 for _, b in reps), path
                    assert ")?" not in node["pattern"], path
            if t in ("number", "integer"):
                assert "minimum" in node and "maximum" in node, path
            if t == "array":
                assert "maxItems" in node, path
            if t == "object":
                assert node.get("additionalProperties") is False and set(node["required"]) == set(node["properties"])
            assert "multipleOf" not in node and "discriminator" not in node, path
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(schema)
    branches = {b["properties"]["op"]["enum"][0]: b for b in schema["properties"]["ops"]["items"]["anyOf"]}
    assert len(branches) == 14  # every EditOp
    for op in ("remove_object", "move_object", "set_box", "resize_object", "describe_object"):
        assert branches[op]["properties"]["name"]["enum"] == ["cat", "bench", "lamp"]
    assert "enum" not in branches["add_object"]["properties"]["name"]
    assert branches["set_text"]["properties"]["old"]["enum"] == ["", "OPEN"]
    assert branches["resize_object"]["properties"]["scale"] == {"type": "number", "minimum": 0.2, "maximum": 5.0}
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(BIGGER_CAT)
    assert not validator.is_valid(plan({"op": "resize_object", "name": "kitty", "scale": 1.4}))
    assert not validator.is_valid(plan({"op": "resize_object", "name": "cat"}))  # every field required
    # no objects: the ops that target one are left out (an empty enum is not a schema)
    empty = edit_schema(bp.model_copy(update={"objects": []}))
    ops = {b["properties"]["op"]["enum"][0] for b in empty["properties"]["ops"]["items"]["anyOf"]}
    assert "resize_object" not in ops and "add_object" in ops


def test_edit_schema_compiles_in_xgrammar(tiny_llm_dir):
    xgr = pytest.importorskip("xgrammar")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llm_dir)
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok)))
    compiler.compile_json_schema(json.dumps(edit_schema(scene_blueprint(), SchemaLimits())), any_whitespace=False)


# --- the planner with fake clients -----------------------------------------------------------------------------
def test_valid_plan_is_returned_applied_and_recorded():
    rec = Recorder()
    client = ScriptedClient([ok(BIGGER_CAT)])
    bp = scene_blueprint()
    out = LLMPlanner(client, recorder=rec).edit(bp, "make the cat bigger", look=["warmer light"])
    assert isinstance(out, EditPlan) and out.ops[0].op == "resize_object" and out.ops[0].name == "cat"
    _, changes = apply_edits(SceneState(blueprint=bp), out.ops)
    assert changes[0].startswith("resized cat")
    assert [k for k, _, _ in rec.items] == [KIND_EDIT]
    req = client.requests[0]
    assert req.n == 1 and req.schema == edit_schema(bp)
    system, user = req.messages[0]["content"], req.messages[1]["content"]
    assert "origin at the TOP-LEFT" in system and "[x0, y0, x1, y1]" in system
    assert edit_scene_summary(bp, ["warmer light"]) in user and "make the cat bigger" in user
    assert '"name": "lamp"' in user and "OPEN" in user and "a quiet park" in user and "warmer light" in user


def test_unknown_name_gets_a_repair_turn():
    rec = Recorder()
    client = ScriptedClient(
        [
            ok(plan({"op": "describe_object", "name": "kitty", "description": "an orange cat"})),
            ok(plan({"op": "describe_object", "name": "cat", "description": "an orange cat"})),
        ]
    )
    out = LLMPlanner(client, recorder=rec).edit(scene_blueprint(), "make the cat orange")
    assert out.ops[0].name == "cat" and out.ops[0].description == "an orange cat"
    assert len(client.requests) == 2 and [k for k, _, _ in rec.items] == [KIND_EDIT, KIND_EDIT]
    msgs = client.requests[1].messages
    assert msgs[-2]["role"] == "assistant" and "kitty" in msgs[-2]["content"]
    assert "no object named 'kitty'" in msgs[-1]["content"] and "cat, bench, lamp" in msgs[-1]["content"]


def test_garbage_fails_cleanly_within_the_budget():
    client = ScriptedClient([ok("not json at all"), ok('{"action": "edit", "ops": [{"op": "fly"}]}'), ok("{}")])
    with pytest.raises(PlanningError) as exc:
        LLMPlanner(client, repairs=2).edit(scene_blueprint(), "make it fly")
    msg = str(exc.value)
    assert "\n" not in msg and "after 2 repairs" in msg and "'make it fly'" in msg and len(client.requests) == 3
    # an empty plan is not an edit either; truncated answers are retried with twice the tokens
    client = ScriptedClient([Completion('{"action":"ed', "length"), ok(plan())])
    with pytest.raises(PlanningError, match="asks for no change"):
        LLMPlanner(client, repairs=1, max_tokens=100).edit(scene_blueprint(), "hmm")
    assert [r.max_tokens for r in client.requests] == [100, 200]


def test_an_edit_that_breaks_the_picture_is_repaired():
    client = ScriptedClient(
        [
            ok(plan({"op": "add_object", "name": "cat", "description": "", "box": [0.1, 0.1, 0.3, 0.3]})),
            ok(plan({"op": "add_object", "name": "dog", "description": "a dog", "box": [0.5, 0.1, 0.7, 0.3]})),
        ]
    )
    out = LLMPlanner(client).edit(scene_blueprint(), "add a dog")
    assert out.ops[0].name == "dog"
    assert "already there" in client.requests[1].messages[-1]["content"]


def test_replay_needs_no_client_and_undo_needs_no_llm():
    rec = Recorder()
    first = LLMPlanner(ScriptedClient([ok(BIGGER_CAT)]), recorder=rec).edit(scene_blueprint(), "make the cat bigger")
    again = LLMPlanner(ExplodingClient(), recorder=Recorder(replay=rec.items)).edit(
        scene_blueprint(), "make the cat bigger"
    )
    assert again == first
    assert LLMPlanner(ExplodingClient()).edit(scene_blueprint(), "undo that").action == "undo"
    with pytest.raises(PlanningError, match="empty"):
        LLMPlanner(ExplodingClient()).edit(scene_blueprint(), "   ")


# --- through a real session turn -------------------------------------------------------------------------------
@pytest.fixture
def llm_sessions(tmp_path, monkeypatch):
    """A preview engine whose profile says "LLM planner", with the planner built on a scripted client."""
    engine = Engine("preview", home=tmp_path / "home")
    engine.profile = engine.profile.model_copy(
        update={"planner": engine.profile.planner.model_copy(update={"kind": "vllm-server"})}
    )
    answers: list[Completion] = []
    client = ScriptedClient([])
    client.answers = answers  # the engine builds its planner once: the test adds answers as it goes
    monkeypatch.setattr(
        agent.api,
        "build_planner",
        lambda profile, recorder=None, client=None, _c=client: LLMPlanner(_c, recorder=recorder),
    )
    return Sessions(engine), answers


def test_session_turn_uses_the_llm_edit(llm_sessions):
    sessions, answers = llm_sessions
    s = sessions.create(blueprint=scene_blueprint())
    answers.append(ok(plan({"op": "set_text", "old": "OPEN", "content": "CLOSED"})))
    t = s.send("the sign should read closed now")  # the rule parser would not read this one as "CLOSED"
    assert t.status == "done" and t.ops == [{"op": "set_text", "old": "OPEN", "content": "CLOSED"}]
    assert t.reran == ["text"] and t.blueprint.texts[0].content == "CLOSED"
    rows = sessions.engine.store.open_run(t.run_id).read_jsonl("llm.jsonl")
    assert [r["kind"] for r in rows] == [KIND_EDIT] and "CLOSED" in rows[0]["response"]["completions"][0]["text"]
    # a failure is a rejected turn with the planner's one-line error; the picture stays as it was
    answers.extend([ok("garbage")] * 3)
    with pytest.raises(UserError) as exc:
        s.send("do something odd")
    assert "\n" not in str(exc.value) and "could not turn the message" in str(exc.value)
    assert s.turns()[-1].status == "rejected" and s.head().index == t.index
    assert s.undo().kind == "undo"  # no LLM call: the answers list is empty now


# --- the mechanism against a real vLLM server (tiny random model) ----------------------------------------------
def test_server_edit_is_schema_valid_or_fails_cleanly(vllm_server):
    from tests.llm_fixtures import tiny_limits

    rec = Recorder()
    planner = LLMPlanner(
        OpenAIServerClient(vllm_server.url, vllm_server.model), recorder=rec, limits=tiny_limits(), max_tokens=256,
        repairs=1,
    )  # fmt: skip
    planner.edit_max_ops = 2
    bp = scene_blueprint()
    messages = ("make the cat bigger", "move the lamp to the left", "the sign should say CLOSED")
    for message in messages:
        try:
            out = planner.edit(bp, message)
        except PlanningError as err:
            assert "\n" not in str(err)
            print(f"\n[server edit] {message!r}: clean failure: {err}")
        else:
            assert out.action == "undo" or apply_edits(SceneState(blueprint=bp), out.ops)
            print(f"\n[server edit] {message!r}: {out.model_dump(mode='json')}")
    assert rec.items and all(k == KIND_EDIT for k, _, _ in rec.items) and len(rec.items) <= 2 * len(messages)
    validator = jsonschema.Draft202012Validator(rec.items[0][1]["schema"])
    for _, _, resp in rec.items:
        for c in resp["completions"]:
            if c["finish_reason"] == "stop":  # the server enforced the schema: names from the enum, bounded leaves
                validator.validate(json.loads(c["text"]))
                parse_edit_plan(c["text"])
    # the random model tends to answer "undo"; force the op branches through the server too (a schema contract test)
    forced = json.loads(json.dumps(rec.items[0][1]["schema"]))
    forced["properties"]["action"]["enum"] = ["edit"]
    forced["properties"]["ops"]["minItems"] = 1
    comps = planner.client.complete_json(
        rec.items[0][1]["messages"], forced, n=4, temperature=1.0, max_tokens=256, seed=3
    )
    stopped = [c for c in comps if c.finish_reason == "stop"]
    assert stopped
    for c in stopped:
        jsonschema.validate(json.loads(c.text), forced)
        assert parse_edit_plan(c.text).ops
    print(f"[server edit] forced ops: {[c.text for c in stopped][:2]}")
