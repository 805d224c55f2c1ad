"""RealRAG: the reference library (index + catalogue, CLI), reflective re-ranking, the gate, and injection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.api import Engine
from agent.blueprint import Blueprint
from agent.executor import Executor
from agent.recipes.realrag import compile_realrag
from tools.retrieval import ClipEmbedder, Library, StatsEmbedder, reflective_score

COLORS = {"red": (210, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 210), "yellow": (235, 220, 30),
          "purple": (130, 40, 160), "orange": (240, 140, 20)}


def make_images(folder: Path, n: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    captions = {}
    names = list(COLORS)
    for i in range(n):
        color = names[i % len(names)]
        arr = np.clip(np.array(COLORS[color]) + rng.normal(0, 12, (48, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"img{i:03d}.png")
        captions[f"img{i:03d}.png"] = f"a {color} object number {i}"
    Image.new("RGB", (40, 40), (20, 20, 20)).save(folder / "cyber.png")
    captions["cyber.png"] = "a Tesla Cybertruck, angular steel pickup"
    (folder / "captions.json").write_text(json.dumps(captions))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return folder


def test_reflective_score_monotone_and_penalises_draft_duplicates():
    assert reflective_score(0.5, 0.1) < reflective_score(0.6, 0.1)  # monotone in relevance
    assert reflective_score(0.6, 0.9) < reflective_score(0.6, 0.3) < reflective_score(0.6, 0.1) + 1e-9
    assert reflective_score(0.6, 0.2) == 0.6  # below the margin: no penalty


def test_library_add_dedup_corrupt_search_remove_persist(tmp_path):
    imgs = make_images(tmp_path / "imgs")
    lib = Library(tmp_path / "lib", StatsEmbedder())
    rep = lib.add(imgs)
    assert len(rep.added) == 13 and rep.duplicates == [] and len(rep.skipped) == 1 and "broken.jpg" in rep.skipped[0]
    again = lib.add(imgs)
    assert again.added == [] and len(again.duplicates) == 13 and len(lib) == 13
    top = lib.search("Tesla Cybertruck", 3)
    assert top[0][0].caption.startswith("a Tesla Cybertruck")
    # reopened from disk: same results, embedder checked
    lib2 = Library(tmp_path / "lib", StatsEmbedder())
    assert lib2.search("Tesla Cybertruck", 1)[0][0].id == top[0][0].id
    gone = lib2.remove(top[0][0].sha256[:10])
    assert len(gone) == 1 and len(lib2) == 12
    assert all(e.caption != top[0][0].caption for e, _ in lib2.search("Tesla Cybertruck", 5))


def test_retrieve_floor_and_reasons(tmp_path):
    lib = Library(tmp_path / "lib", StatsEmbedder())
    lib.add(make_images(tmp_path / "imgs"))
    entry, reason, table = lib.retrieve("a red object", None, k=10)
    assert entry is not None and "red" in entry.caption and "relevance" in reason
    entry, reason, _ = lib.retrieve("a red object", None, k=10, floor=0.99)
    assert entry is None and "floor" in reason
    # the draft itself is red: red candidates are penalised as "already known", the ranking changes
    draft = Image.new("RGB", (48, 48), COLORS["red"])
    _, _, with_draft = lib.retrieve("a red object", draft, k=13, weight=2.0, margin=0.0)
    assert any(r["draft_similarity"] > 0.3 and r["score"] < r["relevance"] for r in with_draft)


def test_main_flow_retrieves_and_injects_on_preview(tmp_path):
    lib = Library(tmp_path / "library", StatsEmbedder())
    lib.add(make_images(tmp_path / "imgs"))
    engine = Engine("preview", home=tmp_path)
    assert "retrieve_reference" in engine.registry
    bp = Blueprint(prompt="a red Tesla Cybertruck", seed=1, objects=[
        {"name": "Tesla Cybertruck", "description": "a red Tesla Cybertruck", "box": [0.1, 0.3, 0.7, 0.8],
         "needs_reference": True}])
    graph = engine.compile(bp)
    ids = {n.id for n in graph.nodes}
    assert {"scene", "check.tesla_cybertruck", "retrieve.tesla_cybertruck", "refine.tesla_cybertruck", "compose"} <= ids
    # force the gate open (gate above 1) so the branch really retrieves and repaints with the reference
    graph = compile_realrag(bp, engine.registry, threshold=1.0, gate=1.5, max_iters=1)
    result = Executor(engine.registry, engine.store).run(graph)
    assert result.ok, result.failed
    out = result.outputs["retrieve.tesla_cybertruck"]
    assert out["chosen"] and "relevance" in out["reason"] and out["reference"] is not None
    # the repaint loop is wired to the reference, and the preview repaint pastes it into the box
    loop = next(n for n in graph.nodes if n.id == "refine.tesla_cybertruck")
    assert loop.body[0].inputs["reference"] == {"ref": "retrieve.tesla_cybertruck.reference"}
    from tools.roles import RegionalRepaintIn

    ex = Executor(engine.registry, engine.store)
    ref = ex.load_image(out["reference"])
    final = engine.registry.get("regional_repaint").run([RegionalRepaintIn(
        image=ex.load_image(result.outputs["scene"]["image"]), box=[0.1, 0.3, 0.7, 0.8], prompt="x",
        reference=ref, strength=1.0)])[0].image
    x0, y0, x1, y1 = 0.1 * 512, 0.3 * 512, 0.7 * 512, 0.8 * 512
    inside = np.asarray(final.crop((int(x0) + 8, int(y0) + 8, int(x1) - 8, int(y1) - 8))).reshape(-1, 3).mean(0)
    assert np.abs(inside - np.asarray(ref).reshape(-1, 3).mean(0)).max() < 40
    # the gate: a draft that already matches skips retrieval
    gated = compile_realrag(bp, engine.registry, threshold=0.0, max_iters=1)
    r2 = Executor(engine.registry, engine.store).run(gated)
    assert r2.outputs["retrieve.tesla_cybertruck"]["reason"].startswith("skipped") and r2.outputs[
        "retrieve.tesla_cybertruck"]["reference"] is None


def test_no_library_keeps_graph_unchanged(tmp_path):
    engine = Engine("preview", home=tmp_path)
    assert "retrieve_reference" not in engine.registry
    bp = Blueprint(objects=[{"name": "Cybertruck", "box": [0.1, 0.1, 0.5, 0.5], "needs_reference": True}])
    assert not any(n.id.startswith("retrieve.") for n in engine.compile(bp).nodes)


def test_cli_library_commands(tmp_path):
    imgs = make_images(tmp_path / "imgs", n=4)
    env = {"SCENEWRIGHT_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    cli = [sys.executable, "-m", "agent.cli", "library"]

    def run(*args):
        return subprocess.run(cli + list(args), capture_output=True, text=True, env=env, timeout=120)

    r = run("add", str(imgs), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert len(data["added"]) == 5 and len(data["skipped"]) == 1 and "skipped" in r.stderr
    assert len(json.loads(run("add", str(imgs), "--json").stdout)["duplicates"]) == 5
    hits = json.loads(run("search", "Tesla Cybertruck", "--json").stdout)
    assert hits[0]["caption"].startswith("a Tesla")
    assert run("remove", str(hits[0]["id"])).returncode == 0
    assert len(json.loads(run("list", "--json").stdout)) == 4
    bad = run("remove", "nothing-like-this")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    missing = run("add", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_tiny_clip_embedder_and_ip_adapter_injection(tmp_path):
    from tests.tiny_models import write_tiny_profile

    profile_file = write_tiny_profile(Path(__file__).parent / ".cache" / "tiny-models-scene-text")
    engine = Engine("tiny", config=profile_file, home=tmp_path)
    lib = Library(tmp_path / "library", ClipEmbedder(engine.profile.models["clip"]))
    lib.add(make_images(tmp_path / "imgs", n=6))
    probe = Image.open(tmp_path / "imgs" / "img003.png").convert("RGB").resize((44, 44))
    assert lib.search(probe, 1)[0][0].caption == "a yellow object number 3"  # image query finds its near-copy
    engine = Engine("tiny", config=profile_file, home=tmp_path)  # re-open: the library is now configured
    assert "retrieve_reference" in engine.registry
    assert engine.registry.get("regional_repaint").ip_adapter  # the tiny profile names an IP-Adapter
    bp = Blueprint(canvas={"width": 64, "height": 64}, seed=2, objects=[
        {"name": "Cybertruck", "description": "a Tesla Cybertruck", "box": [0.1, 0.1, 0.9, 0.9],
         "needs_reference": True}])
    graph = compile_realrag(bp, engine.registry, threshold=1.0, gate=1.5, max_iters=1, steps=2)
    result = Executor(engine.registry, engine.store).run(graph)
    assert result.ok, result.failed
    assert result.outputs["retrieve.cybertruck"]["chosen"]
    # the same graph on a profile without an image-prompt adapter would drop the reference: refused up front
    from agent.graph import GraphError, validate_graph
    from tools.diffusion import RegionalRepaint

    plain = RegionalRepaint(engine.registry.get("regional_repaint").manager, engine.profile.models["inpaint"])
    engine.registry.add(plain)
    with pytest.raises(GraphError, match="cannot use input.*reference.*ip_adapter"):
        validate_graph(graph, engine.registry)
