"""SceneVTG at depth (issue 10): the region planner sees the image, proposes plausible content, word quads reach
the renderer, the text pass renders locally at text scale, and scene text is on in the built-in real profiles."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from test_llm_planner import MemoryRecorder  # noqa: E402
from test_text_regions import GOOD_Q, ScriptClient, make_bp, turn1, turn2  # noqa: E402

from agent.blueprint import Blueprint  # noqa: E402
from planners.llm_client import image_part  # noqa: E402
from planners.text_regions import BLIND_NOTE, KIND_TURN1, asks_for_text, plan_text_regions  # noqa: E402


def _sha(image) -> str:
    return hashlib.sha256(image_part(image)["image_url"]["url"].encode()).hexdigest()


# --- 1. the planner sees the image; word quads are kept ---------------------------------------------------------
def test_with_an_image_turn_one_carries_it_and_the_record_holds_its_hash_only():
    scene = Image.new("RGB", (64, 64), (90, 140, 200))
    client, rec = ScriptClient([turn1(), turn2(GOOD_Q)]), MemoryRecorder()
    plan = plan_text_regions(client, make_bp(), image=scene, recorder=rec)
    sent = client.requests[0].messages[1]["content"]
    assert sent[0]["type"] == "image_url" and sent[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "before any text" in sent[1]["text"]
    assert plan.source == "llm" and plan.image_sha256 == _sha(scene) and BLIND_NOTE not in plan.notes
    recorded = rec.items[0][1]["messages"][1]["content"]
    assert recorded[0] == {"type": "image", "sha256": _sha(scene)} and "base64" not in json.dumps(rec.items)


def test_without_an_image_the_plan_says_it_was_planned_blind():
    client = ScriptClient([turn1(), turn2(GOOD_Q)])
    plan = plan_text_regions(client, make_bp())
    assert isinstance(client.requests[0].messages[1]["content"], str)
    assert plan.source == "llm" and plan.image_sha256 == "" and BLIND_NOTE in plan.notes


def test_word_quads_reach_the_glyph_render_and_the_pixels():
    from agent.recipes import compile_llm_blueprint
    from agent.api import build_registry
    from agent.profiles import get_profile
    from tools.scene_text import render_glyphs

    words = {"Fresh Bread Daily": [{"text": "Fresh", "quad": [0.45, 0.7, 0.6, 0.7, 0.6, 0.78, 0.45, 0.78]},
                                   {"text": "Bread", "quad": [0.62, 0.7, 0.77, 0.7, 0.77, 0.78, 0.62, 0.78]},
                                   {"text": "Daily", "quad": [0.8, 0.7, 0.95, 0.7, 0.95, 0.78, 0.8, 0.78]}]}
    plan = plan_text_regions(ScriptClient([turn1(), turn2(GOOD_Q, words)]), make_bp())
    assert [w["text"] for w in plan.regions[1].words] == ["Fresh", "Bread", "Daily"]
    registry = build_registry(get_profile("preview"))
    graph = compile_llm_blueprint(make_bp(), registry, scene_text=True, text_regions=plan.as_dicts())
    glyph = next(n for n in graph.nodes if getattr(n, "id", "").endswith("bread_daily.glyph"))
    assert [w["content"] for w in glyph.inputs["text"]["words"]] == ["Fresh", "Bread", "Daily"]
    # drawn per word: the gaps the planner left between word quads stay free of ink, unlike the line rendering
    base = Image.new("RGB", (256, 256), (200, 200, 200))
    q = GOOD_Q["Fresh Bread Daily"]
    as_words, _, _, _ = render_glyphs(base, "Fresh Bread Daily", q, words=[(w["text"], w["quad"]) for w in
                                                                             words["Fresh Bread Daily"]])
    as_line, _, _, _ = render_glyphs(base, "Fresh Bread Daily", q)
    gap = np.asarray(as_words)[180:200, int(0.6 * 256) + 1:int(0.62 * 256)]
    assert (np.abs(gap.astype(int) - 200) < 8).all()
    assert not np.array_equal(np.asarray(as_words), np.asarray(as_line))


@pytest.fixture(scope="module")
def tiny_vlm_profile(tmp_path_factory):
    from tiny_vlm import cached_tiny_critique_profile

    text = cached_tiny_critique_profile().read_text().replace(
        'backend = "diffusers"', 'backend = "diffusers"\nscene_text = true\ntext_planner = "llm"\ntext_iters = 0', 1)
    path = tmp_path_factory.mktemp("vtg") / "profiles.toml"
    path.write_text(text)
    return path


def test_tiny_vlm_profile_plans_regions_on_the_painted_scene(tiny_vlm_profile, tmp_path):
    from agent.api import Engine

    engine = Engine("tiny", config=tiny_vlm_profile, home=tmp_path)
    out = engine.generate('a shop front with a sign that says "OPEN"', seed=1)
    assert out.ok, out.failed
    d = Path(out.run_dir)
    plan = json.loads((d / "text_regions.json").read_text())
    bp = Blueprint.model_validate(json.loads((d / "blueprint.json").read_text()))
    scene = engine._scene_before_text(bp, None)  # the text-free scene, from the cache
    assert plan["image_sha256"] == _sha(scene)
    rows = [json.loads(line) for line in (d / "llm.jsonl").read_text().splitlines()]
    first = next(r for r in rows if r["kind"] == KIND_TURN1)
    assert first["request"]["client"] == "transformers"
    assert first["request"]["messages"][1]["content"][0] == {"type": "image", "sha256": plan["image_sha256"]}
    assert not any("planned blind" in n for n in out.notices)
    if plan["source"] == "fallback":  # a random VLM: its quads may be unusable, and the run says so
        assert any("were not usable" in n for n in out.notices)


def test_llm_without_vlm_plans_blind_and_the_run_says_so(monkeypatch, tmp_path):
    import planners
    from agent.api import Engine
    from agent.profiles import get_profile

    profile = get_profile("preview").model_copy(update={"scene_text": True, "text_planner": "llm"})
    profile = profile.model_copy(update={"planner": profile.planner.model_copy(update={"kind": "vllm-server"})})
    monkeypatch.setattr(planners, "build_client", lambda cfg: ScriptClient([turn1(), turn2(GOOD_Q)]))
    engine = Engine(profile, home=tmp_path)
    run = engine.start_run({"kind": "blueprint", "seed": 3}, prompt="a bakery")
    engine.plan_text_regions(make_bp(), run)
    assert any(n.startswith("scene text: text regions planned blind") for n in run.notices)
    engine.forget(run)


# --- 2. plausible text content -------------------------------------------------------------------------------
def test_asks_for_text_finds_carriers_without_quoted_text():
    assert asks_for_text("a shop sign on a brick wall") == ["shop sign"]
    assert asks_for_text("a poster for a jazz night") == ["poster for a jazz night"]
    assert asks_for_text('a bakery with a sign that says "OPEN"') == []  # the text is given
    assert asks_for_text("a cat and a dog in a garden") == []


def _no_text_bp(prompt="a poster for a jazz night"):
    return Blueprint.model_validate({"prompt": prompt, "background": "a brick wall", "style": "photo", "seed": 2,
                                     "objects": [{"name": "poster", "box": [0.2, 0.1, 0.8, 0.9]}]})


def test_the_llm_proposes_content_when_the_prompt_asks_for_text():
    quad = [0.25, 0.2, 0.75, 0.2, 0.75, 0.32, 0.25, 0.32]
    client = ScriptClient([json.dumps({"lines": []}),  # no proposal: sent back, not accepted
                           turn1(texts=(), extra=("JAZZ NIGHT",)), turn2({"JAZZ NIGHT": quad})])
    plan = plan_text_regions(client, _no_text_bp(), wanted=asks_for_text("a poster for a jazz night"))
    schema = client.requests[0].schema
    assert schema["properties"]["extra"]["minItems"] == 1 and schema["properties"]["lines"]["maxItems"] == 0
    assert "propose at least 1" in client.requests[1].messages[-1]["content"]
    assert "poster for a jazz night" in client.requests[0].messages[1]["content"]
    assert plan.source == "llm" and plan.proposed == ["JAZZ NIGHT"] and plan.regions[0].plausible
    assert any(n.startswith("text content proposed by the LLM") for n in plan.notes)
    assert plan.to_json()["proposed"] == ["JAZZ NIGHT"]


def test_engine_records_proposed_text_and_compiles_it(monkeypatch, tmp_path):
    import planners
    from agent.api import Engine
    from agent.profiles import get_profile

    quad = [0.25, 0.2, 0.75, 0.2, 0.75, 0.32, 0.25, 0.32]
    profile = get_profile("preview").model_copy(update={"scene_text": True, "text_planner": "llm"})
    profile = profile.model_copy(update={"planner": profile.planner.model_copy(update={"kind": "vllm-server"})})
    client = ScriptClient([turn1(texts=(), extra=("JAZZ NIGHT",)), turn2({"JAZZ NIGHT": quad})])
    monkeypatch.setattr(planners, "build_client", lambda cfg: client)
    engine = Engine(profile, home=tmp_path)
    run = engine.start_run({"kind": "blueprint", "seed": 2}, prompt="a poster for a jazz night")
    bp = _no_text_bp()
    regions = engine.plan_text_regions(bp, run)
    assert [r["text"] for r in regions] == ["JAZZ NIGHT"]
    assert run.record.read_json("text_regions.json")["proposed"] == ["JAZZ NIGHT"]
    assert any("text content proposed" in n for n in run.notices)
    graph = engine.compile(bp, text_regions=regions)
    assert graph.output == "text.image"
    assert any(n.id == "text.jazz_night.glyph" and n.inputs["text"]["content"] == "JAZZ NIGHT" for n in graph.nodes)
    engine.forget(run)


def test_the_rule_path_says_it_cannot_propose_text(tmp_path):
    from agent.api import Engine
    from agent.profiles import get_profile

    engine = Engine(get_profile("preview").model_copy(update={"scene_text": True, "text_planner": "llm"}),
                    home=tmp_path)
    out = engine.generate("a shop sign on a brick wall", seed=0)
    assert out.ok and any("cannot propose text content" in n and "shop sign" in n for n in out.notices)
    # a prompt that quotes its text needs no proposal
    out = engine.generate('a shop sign that says "OPEN" on a brick wall', seed=0)
    assert not any("cannot propose" in n for n in out.notices)
