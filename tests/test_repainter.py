"""ImageRepainter: describe → regenerate variants → score against the reference → revise; best of all rounds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.cli import app
from agent.recipes.image_repainter import description_to_blueprint, prefix_graph
from tools.roles import DescribedObject, ImageDescription


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def reference(cli, tmp_path):
    out = tmp_path / "ref.png"
    r = cli("generate", "a red apple left of a blue vase on a wooden table", "--seed", 3, "--out", out)
    assert r.exit_code == 0, r.output
    return out


def trace_of(result) -> dict:
    summary = json.loads(result.stdout)
    return summary, json.loads(open(f"{summary['run_dir']}/repaint_trace.json").read())


def test_repaint_preview_keeps_the_best_of_all_rounds(cli, reference, tmp_path):
    r = cli("repaint", reference, "--rounds", 3, "--variants", 2, "--json", "--out", tmp_path / "again.png")
    assert r.exit_code == 0, r.output
    summary, trace = trace_of(r)
    scores = trace["score_trace"]
    assert 1 <= len(trace["rounds"]) <= 3 and trace["stopped"] in ("budget", "threshold", "no revisions", "no effective revision")
    assert trace["best_score"] == max(scores) and trace["best_round"] == scores.index(max(scores)) + 1
    for entry in trace["rounds"]:
        assert len(entry["scores"]) == 2 and entry["best_score"] == max(entry["scores"])
    assert all("revisions" in e for e in trace["rounds"][:-1])  # every round but the last proposes revisions
    assert "revisions" not in trace["rounds"][-1] or trace["stopped"] != "budget"
    final = hashlib.sha256(Image.open(summary["image"]).tobytes()).hexdigest()
    best = [e for e in trace["rounds"] if e["round"] == trace["best_round"]][0]
    assert best["best_image"] == trace["best_image"]
    assert Image.open(tmp_path / "again.png").size == Image.open(summary["image"]).size
    run = summary["run_dir"]
    for name in ("rounds/r0.graph.json", "rounds/r0.description.json", "rounds/r1.blueprint.json", "result.json"):
        assert Path(run, name).exists(), name
    assert final == hashlib.sha256(Image.open(summary["image"]).convert("RGB").tobytes()).hexdigest()


def test_repaint_stops_on_its_threshold(cli, reference):
    r = cli("repaint", reference, "--rounds", 4, "--variants", 1, "--threshold", 0.0, "--json")
    assert r.exit_code == 0, r.output
    _, trace = trace_of(r)
    assert trace["stopped"] == "threshold" and len(trace["rounds"]) == 1


@pytest.mark.parametrize(
    "make, message",
    [(lambda p: None, "does not exist"), (lambda p: p.write_text("not an image"), "not an image"),
     (lambda p: p.mkdir(), "not a file")],
)  # fmt: skip
def test_repaint_bad_image_is_one_line_exit_2(cli, tmp_path, make, message):
    path = tmp_path / "ref.png"
    make(path)
    r = cli("repaint", path)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_description_becomes_a_blueprint_and_variants_get_their_own_ids():
    desc = ImageDescription(summary="a cat", style="oil painting", lighting="dim", palette="red, gold",
                            composition="centered", relations=["cat on mat"],
                            objects=[DescribedObject(name="cat", attributes={"color": "red"}, box=[0.1, 0.1, 0.5, 0.5])])
    bp = description_to_blueprint(desc, width=64, height=64, seed=2)
    assert bp.objects[0].description == "red cat" and "dim lighting" in bp.style and "cat on mat" in bp.prompt
    from agent.api import build_registry
    from agent.profiles import get_profile
    from agent.recipes.llm_blueprint import compile_llm_blueprint

    g = compile_llm_blueprint(bp, build_registry(get_profile("preview")))
    nodes, out = prefix_graph(g, "v1.")
    assert out == "v1." + g.output and all(n.id.startswith("v1.") for n in nodes)
    loop = [n for n in nodes if n.kind == "loop"][0]
    assert loop.state["image"] == {"ref": "v1.scene.image"} and loop.body[1].inputs["image"] == {"ref": "repaint.image"}


def test_repaint_on_the_tiny_profile(cli, tmp_path):
    from tests.tiny_vlm import cached_tiny_critique_profile

    profile = cached_tiny_critique_profile()
    ref = tmp_path / "ref.png"
    Image.new("RGB", (96, 80), (180, 60, 40)).save(ref)
    r = cli("repaint", ref, "--profile", "tiny", "--config", profile, "--rounds", 2, "--variants", 2, "--json")
    assert r.exit_code == 0, r.output
    summary, trace = trace_of(r)
    assert Image.open(summary["image"]).size == (64, 64)
    assert trace["best_score"] == max(trace["score_trace"]) and 0 <= trace["best_score"] <= 1
    kinds = [json.loads(l)["kind"] for l in open(f"{summary['run_dir']}/llm.jsonl")]
    assert kinds[0] == "vlm.describe"  # the tiny VLM's exchanges are recorded


def test_the_scene_prompts_are_rewrites_that_carry_the_summary_and_relations(cli, reference):
    r = cli("repaint", reference, "--rounds", 1, "--variants", 3, "--threshold", 1.0, "--json")
    assert r.exit_code == 0, r.output
    summary, trace = trace_of(r)
    run = Path(summary["run_dir"])
    desc = ImageDescription.model_validate_json((run / "rounds/r0.description.json").read_text())
    assert desc.relations, "the preview reference has two objects side by side"
    graph = json.loads((run / "rounds/r1.graph.json").read_text())
    scenes = {n["id"]: n["inputs"]["prompt"] for n in graph["nodes"] if n["id"].endswith(".scene")}
    assert sorted(scenes) == ["v0.scene", "v1.scene", "v2.scene"]
    for prompt in scenes.values():  # the VLM's summary and relations reach the text the generator reads
        assert desc.summary in prompt and all(rel in prompt for rel in desc.relations)
    assert len(set(scenes.values())) == 3  # variants are different prompts, not only different seeds
    assert trace["rounds"][0]["prompts"] == [scenes[f"v{i}.scene"] for i in range(3)]


def test_revisions_that_change_nothing_end_the_loop(tmp_path, reference):
    from agent.api import Engine
    from agent.recipes.image_repainter import repaint
    from tools.preview_vlm import PreviewCompareImages
    from tools.roles import CompareImagesOut, Revision

    class SameDescription(PreviewCompareImages):  # proposes a revision, returns the description unchanged
        version = "test-same-1"

        def one(self, inp):
            return CompareImagesOut(revisions=[Revision(aspect="style", change="warmer light")],
                                    description=inp.description)

    engine = Engine("preview", home=tmp_path / "h2")
    engine.registry.add(SameDescription())
    out = repaint(engine, reference, rounds=3, variants=1, threshold=1.0)
    assert out["stopped"] == "no effective revision" and out["rounds"] == 1
