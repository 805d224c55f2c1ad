"""LLM text-region planner (planners/text_regions.py): the SceneVTG two-turn protocol.

Fake-client tests check the logic (exact user texts, repair on overlapping quads, fallback after the budget,
recorder replay, wiring into the engine); one test runs against the real vLLM CPU server (tiny random model) and
asserts the mechanism only: schema-valid JSON per turn, then either valid quads or a clean fallback.
"""

from __future__ import annotations

import json

from tests.test_llm_planner import MemoryRecorder

from agent.blueprint import Blueprint
from planners.llm_client import Completion, LLMUnreachableError, OpenAIServerClient
from planners.text_regions import (
    KIND_TURN1,
    KIND_TURN2,
    TextRegionLimits,
    TextRegionPlanner,
    plan_text_regions,
    turn1_schema,
    turn2_schema,
)
from tools.scene_text import validate_regions


def make_bp(texts=(("OPEN", [0.1, 0.1, 0.4, 0.2]), ("Fresh Bread Daily", [0.5, 0.7, 0.95, 0.8])), seed=3):
    return Blueprint.model_validate({
        "prompt": "a bakery", "background": "a bakery street", "style": "photo", "seed": seed,
        "objects": [{"name": "shop front", "box": [0.0, 0.3, 1.0, 1.0]}],
        "texts": [{"content": c, "box": b, "style": "painted"} for c, b in texts],
    })


GOOD_Q = {"OPEN": [0.1, 0.1, 0.4, 0.1, 0.4, 0.2, 0.1, 0.2],
          "Fresh Bread Daily": [0.45, 0.7, 0.95, 0.7, 0.95, 0.78, 0.45, 0.78]}


def turn1(texts=("OPEN", "Fresh Bread Daily"), extra=()):
    lines = [{"text": t, "center": [0.3, 0.2], "size": [0.3, 0.1]} for t in texts]
    out = {"lines": lines}
    if extra:
        out["extra"] = [{"text": t, "center": [0.5, 0.5], "size": [0.2, 0.06]} for t in extra]
    return json.dumps(out)


def turn2(quads: dict, words: dict | None = None):
    regs = []
    for t, q in quads.items():
        r = {"text": t, "quad": q}
        if words and t in words:
            r["words"] = words[t]
        regs.append(r)
    return json.dumps({"regions": regs})


class ScriptClient:
    """Answers each call with the next scripted text; records the requests."""

    kind = "fake"
    model = "fake-model"

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    def complete_json_batch(self, requests):
        out = []
        for r in requests:
            self.requests.append(r)
            a = self.answers.pop(0)
            out.append(a if isinstance(a, Exception) else [Completion(a, "stop")])
        return out

    def identity(self):
        return {"client": self.kind, "model": self.model}


def test_schemas_fix_the_user_texts_and_are_bounded():
    lim = TextRegionLimits()
    s1 = turn1_schema(["OPEN", "Fresh Bread Daily"], lim, add_plausible=False)
    line = s1["properties"]["lines"]
    assert [it["properties"]["text"]["const"] for it in line["prefixItems"]] == ["OPEN", "Fresh Bread Daily"]
    assert line["items"] is False and line["minItems"] == line["maxItems"] == 2 and "extra" not in s1["properties"]
    s1p = turn1_schema(["OPEN"], lim, add_plausible=True)
    assert s1p["properties"]["extra"]["maxItems"] == lim.max_extra
    assert "pattern" in s1p["properties"]["extra"]["items"]["properties"]["text"]
    s2 = turn2_schema(["OPEN", "Fresh Bread Daily"], lim)
    one, three = (it["properties"] for it in s2["properties"]["regions"]["prefixItems"])
    assert one["text"]["const"] == "OPEN" and "words" not in one
    assert one["quad"]["minItems"] == one["quad"]["maxItems"] == 8 and one["quad"]["items"]["maximum"] == 1.0
    assert [w["properties"]["text"]["const"] for w in three["words"]["prefixItems"]] == ["Fresh", "Bread", "Daily"]


def test_two_turns_keep_texts_exactly_and_give_valid_quads():
    words = {"Fresh Bread Daily": [
        {"text": "Fresh", "quad": [0.46, 0.7, 0.6, 0.7, 0.6, 0.78, 0.46, 0.78]},
        {"text": "Bread", "quad": [0.62, 0.7, 0.77, 0.7, 0.77, 0.78, 0.62, 0.78]},
        {"text": "Daily", "quad": [0.79, 0.7, 0.94, 0.7, 0.94, 0.78, 0.79, 0.78]},
    ]}
    client = ScriptClient([turn1(), turn2(GOOD_Q, words)])
    rec = MemoryRecorder()
    plan = plan_text_regions(client, make_bp(), recorder=rec)
    assert plan.source == "llm" and plan.reason == "" and plan.repairs_used == 0
    assert [r.text for r in plan.regions] == ["OPEN", "Fresh Bread Daily"]
    assert [r.style for r in plan.regions] == ["painted", "painted"]
    assert validate_regions(plan.as_dicts(), 512, 512) == []
    assert [w["text"] for w in plan.regions[1].words] == ["Fresh", "Bread", "Daily"]
    assert rec.kinds() == [KIND_TURN1, KIND_TURN2]
    # turn 2 continues the conversation: turn 1's answer is the assistant's turn
    msgs = client.requests[1].messages
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert json.loads(msgs[2]["content"])["lines"][0]["text"] == "OPEN"


def test_wrong_or_missing_user_text_is_repaired_not_accepted():
    bad1 = turn1(texts=("open",))  # changed case, one missing
    client = ScriptClient([bad1, turn1(), turn2(GOOD_Q)])
    rec = MemoryRecorder()
    plan = plan_text_regions(client, make_bp(), recorder=rec)
    assert plan.source == "llm" and plan.repairs_used == 1
    assert [r.text for r in plan.regions] == ["OPEN", "Fresh Bread Daily"]
    assert rec.kinds() == [KIND_TURN1, KIND_TURN1, KIND_TURN2]
    repair = client.requests[1].messages
    assert repair[-2]["role"] == "assistant" and "'open' is not one of the given texts" in repair[-1]["content"]


def test_overlapping_quads_are_repaired():
    overlap = dict(GOOD_Q, OPEN=[0.45, 0.68, 0.9, 0.68, 0.9, 0.76, 0.45, 0.76])
    client = ScriptClient([turn1(), turn2(overlap), turn2(GOOD_Q)])
    rec = MemoryRecorder()
    plan = plan_text_regions(client, make_bp(), recorder=rec)
    assert plan.source == "llm" and plan.repairs_used == 1
    assert plan.regions[0].quad == GOOD_Q["OPEN"]
    assert rec.kinds() == [KIND_TURN1, KIND_TURN2, KIND_TURN2]
    last = client.requests[2].messages
    assert last[-2]["content"] == turn2(overlap) and "overlap" in last[-1]["content"]


def test_fallback_to_blueprint_boxes_after_the_budget():
    not_convex = dict(GOOD_Q, OPEN=[0.1, 0.1, 0.4, 0.2, 0.4, 0.1, 0.1, 0.2])  # crossed corners
    client = ScriptClient([turn1(), turn2(not_convex), turn2(not_convex), turn2(not_convex)])
    rec = MemoryRecorder()
    plan = plan_text_regions(client, make_bp(), recorder=rec, repairs=2)
    assert plan.source == "fallback" and "after 2 repairs" in plan.reason and "convex" in plan.reason
    assert [r.quad for r in plan.regions] == [[0.1, 0.1, 0.4, 0.1, 0.4, 0.2, 0.1, 0.2],
                                              [0.5, 0.7, 0.95, 0.7, 0.95, 0.8, 0.5, 0.8]]
    assert rec.kinds() == [KIND_TURN1] + [KIND_TURN2] * 3 and not client.answers


def test_transport_failure_and_garbage_fall_back_cleanly():
    plan = plan_text_regions(ScriptClient([LLMUnreachableError("no server at x")]), make_bp())
    assert plan.source == "fallback" and "no server" in plan.reason and len(plan.regions) == 2
    plan = plan_text_regions(ScriptClient(["{not json", "[]"]), make_bp(), repairs=1)
    assert plan.source == "fallback" and "turn 1" in plan.reason


def test_plausible_extras_are_added_separately_and_bounded():
    lim = TextRegionLimits(max_extra=1)
    extra_q = {"OPEN": GOOD_Q["OPEN"], "Fresh Bread Daily": GOOD_Q["Fresh Bread Daily"],
               "CAFE": [0.6, 0.1, 0.8, 0.1, 0.8, 0.18, 0.6, 0.18]}
    client = ScriptClient([turn1(extra=("CAFE", "TOO MANY")), turn2(extra_q)])
    plan = plan_text_regions(client, make_bp(), add_plausible=True, limits=lim)
    assert plan.source == "llm" and [r.text for r in plan.regions] == ["OPEN", "Fresh Bread Daily", "CAFE"]
    assert [r.plausible for r in plan.regions] == [False, False, True]
    assert client.requests[0].schema["properties"]["extra"]["maxItems"] == 1
    assert client.requests[1].schema["properties"]["regions"]["maxItems"] == 3


def test_bad_word_splits_are_dropped_with_a_note():
    words = {"Fresh Bread Daily": [{"text": "Fresh", "quad": GOOD_Q["Fresh Bread Daily"]}]}
    plan = plan_text_regions(ScriptClient([turn1(), turn2(GOOD_Q, words)]), make_bp())
    assert plan.source == "llm" and plan.regions[1].words == [] and any("word regions dropped" in n for n in plan.notes)


def test_recorder_replay_needs_no_client():
    rec = MemoryRecorder()
    first = plan_text_regions(ScriptClient([turn1(), turn2(GOOD_Q)]), make_bp(), recorder=rec)
    replay = MemoryRecorder(rec.items)
    again = plan_text_regions(ScriptClient([]), make_bp(), recorder=replay)  # an empty script would raise
    assert again.to_json() == first.to_json() and replay.hits == 2 and replay.items == []
    req = rec.items[0][1]
    assert req["client"] == "fake" and set(req["templates"]) >= {"text_regions_system", "text_regions_user1"}


def test_no_texts_is_a_no_op():
    client = ScriptClient([])
    plan = TextRegionPlanner(client).plan(make_bp(texts=()))
    assert plan.regions == [] and plan.source == "fallback" and client.requests == []


def test_engine_uses_llm_regions_when_the_profile_asks(monkeypatch, tmp_path):
    import planners
    from agent.api import Engine
    from agent.profiles import get_profile

    profile = get_profile("preview").model_copy(update={"scene_text": True, "text_planner": "llm"})
    profile = profile.model_copy(update={"planner": profile.planner.model_copy(update={"kind": "vllm-server"})})
    monkeypatch.setattr(planners, "build_client", lambda cfg: ScriptClient([turn1(), turn2(GOOD_Q)]))
    engine = Engine(profile, home=tmp_path)
    bp = make_bp()
    regions = engine.plan_text_regions(bp)
    assert [r["quad"] for r in regions] == [GOOD_Q["OPEN"], GOOD_Q["Fresh Bread Daily"]]
    graph = engine.compile(bp, text_regions=regions)
    glyphs = [n for n in graph.nodes if getattr(n, "tool", "") == "glyph_render" and n.id.endswith(".glyph")]
    if glyphs:  # the preview registry has the scene-text tools
        assert glyphs[1].inputs["text"]["quad"] == GOOD_Q["Fresh Bread Daily"]
    # the default profile keeps the blueprint's boxes and makes no LLM call
    assert Engine(get_profile("preview"), home=tmp_path).plan_text_regions(bp) is None


def test_server_two_turns_valid_or_clean_fallback(vllm_server):
    rec = MemoryRecorder()
    client = OpenAIServerClient(vllm_server.url, vllm_server.model)
    lim = TextRegionLimits(max_extra=1, extra_chars=6, char_class="[a-z]", first_char_class="[a-z]")
    texts = (("OPEN", [0.1, 0.1, 0.4, 0.2]), ("ab cd", [0.5, 0.7, 0.9, 0.8]))
    plan = plan_text_regions(client, make_bp(texts=texts), recorder=rec, limits=lim,
                             repairs=1, temperature=1.0, max_tokens=256, add_plausible=True)
    kinds = rec.kinds()
    assert kinds and kinds[0] == KIND_TURN1 and len(kinds) <= 3
    for kind, req, resp in rec.items:  # every answer that was not cut off is schema-valid JSON
        c = resp["completions"][0]
        if c["finish_reason"] == "stop":
            data = json.loads(c["text"])
            if kind == KIND_TURN1:
                assert [ln["text"] for ln in data["lines"]] == ["OPEN", "ab cd"]
            else:
                assert [r["text"] for r in data["regions"]][:2] == ["OPEN", "ab cd"]
                assert all(len(r["quad"]) == 8 and 0 <= min(r["quad"]) <= max(r["quad"]) <= 1
                           for r in data["regions"])
    if plan.source == "llm":
        assert validate_regions(plan.as_dicts(), 512, 512) == [] and plan.regions[0].text == "OPEN"
    else:
        assert plan.reason and "\n" not in plan.reason and [r.text for r in plan.regions] == ["OPEN", "ab cd"]
    print(f"\n[text regions] {plan.source}: {plan.reason or plan.as_dicts()} ({len(kinds)} calls)")
