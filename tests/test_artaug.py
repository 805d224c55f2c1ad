"""ArtAug: critique → apply → score → accept loop after any recipe, the pair dataset, and the LoRA distill."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.api import Engine
from agent.store import Store
from agent.cli import app
from tools.critique_tools import accept
from tools.roles import AcceptEditIn

APPLE = "a red apple on a red table, red wall"  # the preview critique suggests edits that raise the score


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    invoke.home = tmp_path / "home"
    return invoke


def test_accept_rule():
    im = Image.new("RGB", (8, 8))
    base = dict(before=im, after=im.copy(), before_score=0.5, before_clip=0.3, delta=0.01)
    assert accept(AcceptEditIn(**base, after_score=0.6, after_clip=0.295)).accepted  # small drop within delta
    r = accept(AcceptEditIn(**base, after_score=0.6, after_clip=0.25))
    assert not r.accepted and "alignment fell" in r.decision and r.image is im and r.score == 0.5
    r = accept(AcceptEditIn(**base, after_score=0.5, after_clip=0.4))
    assert not r.accepted and "did not rise" in r.decision


def test_generate_critique_preview_records_every_round_and_logs_pairs(cli):
    r = cli("generate", APPLE, "--critique", "--critique-rounds", 3, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    trace = json.loads(Path(out["run_dir"], "critique_trace.json").read_text())
    assert trace["stopped"] in ("budget", "threshold") and len(trace["rounds"]) <= 3
    loop = out["loops"]["artaug"]
    assert [t["kept"] for t in loop[1:]] == [rd["accepted"] for rd in trace["rounds"]]
    for rd in trace["rounds"]:
        assert rd["suggestions"] and rd["applied"] and rd["decision"].startswith(("accepted", "rejected"))
    scores = [trace["start"]["score"]] + [rd["aesthetic"] for rd in trace["rounds"] if rd["accepted"]]
    assert trace["best_score"] == max(scores) and scores == sorted(scores)  # only rises are kept
    accepted = [rd for rd in trace["rounds"] if rd["accepted"]]
    assert accepted, "the preview critique's edits should raise this image's score"
    rows = [json.loads(l) for l in (cli.home / "artaug-dataset" / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == len(accepted) and rows[0]["prompt"] == APPLE and rows[0]["suggestions"]
    for row in rows:
        assert (cli.home / "artaug-dataset" / row["before"]).exists() and (cli.home / "artaug-dataset" / row["after"]).exists()
    from agent.store import Store

    final = np.asarray(Image.open(out["image"]))
    best = np.asarray(Image.open(Store(cli.home).artifact_path(trace["best_image"])))
    assert (best == final).all()  # the run's image is the loop's best


def test_critique_loop_stops_on_its_threshold_or_budget(tmp_path):
    e = Engine("preview", home=tmp_path / "h", critique=True, critique_options={"threshold": 0.0, "rounds": 3})
    out = e.generate(APPLE, seed=1)
    trace = json.loads(Path(out.run_dir, "critique_trace.json").read_text())
    assert trace["stopped"] == "threshold" and trace["rounds"] == []
    e = Engine("preview", home=tmp_path / "h", critique=True, critique_options={"threshold": 1.0, "rounds": 2})
    out = e.generate("a grey elephant in grey fog", seed=1)
    trace = json.loads(Path(out.run_dir, "critique_trace.json").read_text())
    assert trace["stopped"] == "budget" and len(trace["rounds"]) == 2
    assert trace["best_score"] == trace["start"]["score"]  # every edit was rejected: the draft is kept


def test_run_blueprint_with_critique_and_graph_file_refused(cli, tmp_path):
    plan = tmp_path / "plan.json"
    r = cli("plan", APPLE, "--json")
    plan.write_text(r.stdout)
    assert cli("run", plan, "--critique", "--critique-rounds", 1).exit_code == 0
    run_dir = sorted((cli.home / "runs").iterdir())[-1]
    graph = run_dir / "graph.json"
    r = cli("run", graph, "--critique")
    assert r.exit_code == 2 and "--critique needs a blueprint" in r.output


def test_generate_critique_tiny_profile_then_distill_and_load_the_lora(cli, tmp_path):
    from tests.tiny_vlm import cached_tiny_critique_profile

    profile = cached_tiny_critique_profile()
    r = cli("generate", "a red cat on a blue car", "--profile", "tiny", "--config", profile, "--critique",
            "--critique-rounds", 1, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    trace = json.loads(Path(out["run_dir"], "critique_trace.json").read_text())
    assert len(trace["rounds"]) <= 1 and all("decision" in rd for rd in trace["rounds"])
    assert "vlm.critique" in Path(out["run_dir"], "llm.jsonl").read_text()

    # accepted pairs from the preview loop, then the differential LoRA on the tiny SD UNet
    assert cli("generate", APPLE, "--critique", "--critique-rounds", 1).exit_code == 0
    dataset = cli.home / "artaug-dataset"
    lora = tmp_path / "lora"
    r = cli("distill", dataset, "--profile", "tiny", "--config", profile, "--steps", 2, "--lr", 0.05,
            "--out", lora, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["pairs"] >= 1 and Path(summary["weights"]).name == "pytorch_lora_weights.safetensors"
    from safetensors.torch import load_file

    keys = list(load_file(summary["weights"]))
    assert keys and all(k.startswith("unet.") and "lora" in k for k in keys)

    # a profile that names the LoRA loads it into the SD pipelines, and the picture changes
    text = profile.read_text()
    with_lora = tmp_path / "lora.toml"
    with_lora.write_text(text + "\n" + text.replace("[profiles.tiny", "[profiles.tinylora").replace(
        "steps = 2\n", f'steps = 2\nlora = "{lora}"\n', 1))
    from agent.graph import Graph, ToolNode

    graph = Graph(seed=5, nodes=[ToolNode(id="t2i", tool="text_to_image",
                                          inputs={"prompt": "a red cat", "width": 64, "height": 64, "steps": 2})],
                  output="t2i.image")  # the LoRA is trained on (and loaded into) the text-to-image UNet
    imgs = []
    for name in ("tiny", "tinylora"):
        engine = Engine(name, config=with_lora, home=tmp_path / "lora-home")
        out = engine.run_graph(graph)
        assert out.ok
        imgs.append(np.asarray(Image.open(out.image), np.float64))
    assert engine.registry.get("text_to_image").identity()["lora"]
    assert np.abs(imgs[0] - imgs[1]).mean() > 0

    # ... and every other diffusion pipeline too: the GLIGEN global pass and the inpainting repaints change, and
    # the LoRA run is not served from the plain run's cache
    def node_images(outcome) -> dict[str, np.ndarray]:
        rows = [json.loads(line) for line in Path(outcome.run_dir, "events.jsonl").read_text().splitlines()]
        out = {}
        for ev in rows:
            if ev.get("event") == "finished" and ev["tool"] in ("layout_to_image", "regional_repaint"):
                sha = ev["outputs"]["image"]["$artifact"]
                out[ev["node"]] = np.asarray(Image.open(Store(tmp_path / "lora-home").artifact_path(sha)), np.float64)
        return out

    runs = [Engine(name, config=with_lora, home=tmp_path / "lora-home").generate("a red cat left of a blue dog", seed=5)
            for name in ("tiny", "tinylora")]
    assert all(r.ok for r in runs) and runs[1].cached_nodes == 0
    plain, fused = (node_images(r) for r in runs)
    assert "scene" in plain and any(".repaint" in n for n in plain) and set(plain) == set(fused)
    for node in plain:
        assert np.abs(plain[node] - fused[node]).mean() > 0, f"the LoRA did not reach {node}"
    from tools.roles import RegionalRepaintIn  # the same input through both inpainting pipelines

    same = RegionalRepaintIn(image=Image.new("RGB", (64, 64), (90, 120, 200)), box=[0.2, 0.2, 0.8, 0.8],
                             prompt="a red cat", steps=2, seed=1)
    a, b = (Engine(n, config=with_lora, home=tmp_path / "lora-home").registry.get("regional_repaint").run([same])[0]
            for n in ("tiny", "tinylora"))
    assert np.abs(np.asarray(a.image, np.float64) - np.asarray(b.image, np.float64)).mean() > 0


def test_distill_errors_are_one_line(cli, tmp_path):
    r = cli("distill", tmp_path / "nope")
    assert r.exit_code == 2 and "does not exist" in r.output and len(r.output.strip().splitlines()) == 1
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "pairs.jsonl").write_text('{"before": "images/a.png", "after": "images/b.png"}\n')
    r = cli("distill", tmp_path / "ds")
    assert r.exit_code == 2 and "line 1" in r.output


def test_distill_merges_loras_in_weight_space():
    """mean_i(B_i·A_i), exactly, as one stacked LoRA: two identical pairs give the same update as one, and the
    previous LoRA's update is kept on top (iterative enhancement). Averaging A and B separately would not."""
    import torch

    from agent.distill import merge_in_weight_space

    g = torch.Generator().manual_seed(0)

    def lora(out_dim=6, in_dim=5, r=2):
        return {"m.lora_A.weight": torch.randn(r, in_dim, generator=g), "m.lora_B.weight": torch.randn(out_dim, r, generator=g)}

    def delta(lo):
        return lo["m.lora_B.weight"] @ lo["m.lora_A.weight"]

    x, y, prev = lora(), lora(), lora(r=3)
    assert torch.allclose(delta(merge_in_weight_space([x, x])), delta(x), atol=1e-6)
    assert torch.allclose(delta(merge_in_weight_space([x, y])), (delta(x) + delta(y)) / 2, atol=1e-6)
    naive = (x["m.lora_B.weight"] + y["m.lora_B.weight"]) / 2 @ ((x["m.lora_A.weight"] + y["m.lora_A.weight"]) / 2)
    assert not torch.allclose(naive, (delta(x) + delta(y)) / 2, atol=1e-3)
    both = merge_in_weight_space([x, y], previous=prev)
    assert both["m.lora_A.weight"].shape[0] == 3 + 2 + 2
    assert torch.allclose(delta(both), delta(prev) + (delta(x) + delta(y)) / 2, atol=1e-5)


def test_after_a_rejected_round_the_critic_is_asked_again(cli, monkeypatch):
    """A rejected edit leaves the image as it was; the next round must not be the same (cached) question with
    the same answer: the rejected edits go into the critique's input and the critic proposes something else."""
    from tools import critique_tools

    real = critique_tools.accept

    def always_reject(b):
        out = real(b.model_copy(update={"after_score": b.before_score}))  # "did not rise"
        assert not out.accepted
        return out

    monkeypatch.setattr(critique_tools, "accept", always_reject)
    r = cli("generate", APPLE, "--critique", "--critique-rounds", 2, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert any(n.startswith("critique: the preview critic") for n in out["notices"])  # not a VLM, and it says so
    assert any("circular" in n for n in json.loads(Path(out["run_dir"], "env.json").read_text())["notices"])
    trace = json.loads(Path(out["run_dir"], "critique_trace.json").read_text())
    first, second = trace["rounds"]
    assert not first["accepted"] and not second["accepted"]
    tried = {s["edit"] for s in first["suggestions"]}
    assert tried and not tried & {s["edit"] for s in second["suggestions"]}
    events = [json.loads(line) for line in Path(out["run_dir"], "events.jsonl").read_text().splitlines()]
    done = {e["node"]: e["event"] for e in events if e.get("node", "").endswith(".critique")}
    assert done == {"artaug.i1.critique": "finished", "artaug.i2.critique": "finished"}
