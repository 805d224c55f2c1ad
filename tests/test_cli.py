"""End to end through the command line on the preview profile: generate, plan, run, runs, show, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app

PROMPT = (
    "Three red apples on a wooden table to the left of a blue vase. A black cat sits under the table. "
    "A sign above the vase says \"FRESH FRUIT\". Watercolor style, in a sunny kitchen."
)


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, list(args), catch_exceptions=False)

    invoke.home = tmp_path / "home"
    return invoke


def pixels(path) -> str:
    """The pixel digest of a PNG (its bytes also hold the recipe, which names the run)."""
    from PIL import Image

    from agent.store import image_digest

    with Image.open(path) as im:
        return image_digest(im)


def run_count(home: Path) -> int:
    return len(list((home / "runs").iterdir())) if (home / "runs").exists() else 0


def test_generate_writes_png_and_record(cli):
    res = cli("generate", PROMPT, "--seed", "3", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {"run_id", "run_dir", "image", "total_nodes", "cached_nodes"} <= set(out)
    assert Path(out["image"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run_dir = Path(out["run_dir"])
    for name in ("request.json", "blueprint.json", "graph.json", "env.json", "events.jsonl", "result.json", "status.json"):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "done"
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    finished = {e["node"] for e in events if e["event"] == "finished"}
    assert "scene" in finished and "compose" in finished and "text" in finished
    assert out["total_nodes"] == len(finished) and out["cached_nodes"] == 0


def test_same_prompt_and_seed_is_byte_identical_and_fully_cached(cli):
    plan1 = cli("plan", PROMPT, "--json").stdout
    plan2 = cli("plan", PROMPT, "--json").stdout
    assert plan1 == plan2 and json.loads(plan1)["objects"]
    first = json.loads(cli("generate", PROMPT, "--seed", "5", "--json").stdout)
    second = json.loads(cli("generate", PROMPT, "--seed", "5", "--json").stdout)
    assert first["run_id"] != second["run_id"]
    assert pixels(first["image"]) == pixels(second["image"])  # the PNGs differ only in the run id they carry
    assert (Path(first["run_dir"]) / "blueprint.json").read_bytes() == (Path(second["run_dir"]) / "blueprint.json").read_bytes()
    assert second["cached_nodes"] == second["total_nodes"] == first["total_nodes"]
    other = json.loads(cli("generate", PROMPT, "--seed", "6", "--json").stdout)
    assert pixels(other["image"]) != pixels(first["image"])


def test_run_saved_blueprint_and_graph(cli, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(cli("plan", PROMPT, "--json").stdout)
    res = cli("run", str(plan), "--json", "--out", str(tmp_path / "out.png"))
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (tmp_path / "out.png").read_bytes() == Path(out["image"]).read_bytes()
    graph = Path(out["run_dir"]) / "graph.json"
    again = json.loads(cli("run", str(graph), "--json").stdout)
    assert again["cached_nodes"] == again["total_nodes"]


def test_runs_and_show(cli):
    out = json.loads(cli("generate", "a red ball", "--json").stdout)
    listing = json.loads(cli("runs", "--json").stdout)
    assert listing[0]["run_id"] == out["run_id"] and listing[0]["status"] == "done"
    shown = cli("show", out["run_id"], "--json")
    assert json.loads(shown.stdout)["result"]["image"] == out["image"]
    assert cli("show", out["run_id"]).exit_code == 0


BAD_FILES = {
    "malformed.json": b'{"objects": [',
    "empty.json": b"",
    "binary.json": bytes(range(256)) * 4,
    "nested.json": b"[" * 100_000 + b"]" * 100_000,
    "list.json": b"[1, 2, 3]",
    "outside.json": json.dumps({"objects": [{"name": "cat", "box": [0.5, 0.5, 1.2, 0.9]}]}).encode(),
    "inverted.json": json.dumps({"objects": [{"name": "cat", "box": [0.8, 0.5, 0.2, 0.9]}]}).encode(),
    "unknown_tool.json": json.dumps(
        {"nodes": [{"id": "x", "tool": "os.system", "inputs": {"cmd": "rm -rf /"}}], "output": "x.image"}
    ).encode(),
    "code.json": json.dumps({"objects": [], "__class__": "subprocess.Popen"}).encode(),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_plan_files_are_rejected_with_one_line(cli, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name])
    before = run_count(cli.home)
    res = cli("run", str(path))
    assert res.exit_code == 2
    assert "Traceback" not in res.output and res.stderr.count("\n") == 1 and "error:" in res.stderr
    assert run_count(cli.home) == before  # nothing executed


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", "/no/such/plan.json"), "does not exist"),
        (("generate", "   "), "prompt is empty"),
        (("plan", ""), "prompt is empty"),
        (("generate", "a cat", "--profile", "nope"), "unknown profile 'nope'"),
        (("show", "no-such-run"), "no run 'no-such-run'"),
        (("resume", "../etc"), "no run"),
    ],
)
def test_bad_arguments_are_rejected_with_one_line(cli, args, message):
    res = cli(*args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output


@pytest.mark.parametrize("prompt", ["🍎🍎🍎 🐱", "一只猫坐在桌子上", "!!!???...", "x" * 20_000, "42"])
def test_odd_prompts_still_produce_a_blueprint(cli, prompt):
    res = cli("plan", prompt, "--json")
    assert res.exit_code == 0, res.output
    json.loads(res.stdout)


def test_kill_9_then_resume_reuses_finished_nodes(tmp_path):
    home = tmp_path / "home"
    config = tmp_path / "slow.toml"
    config.write_text('[profiles.slow]\nbackend = "preview"\ndelay_ms = 400\n')
    env = {**os.environ, "SCENEWRIGHT_HOME": str(home)}
    cmd = [sys.executable, "-m", "agent.cli", "generate", PROMPT, "--profile", "slow", "--config", str(config), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    events = None
    while time.time() < deadline:
        runs = list((home / "runs").glob("*/events.jsonl")) if (home / "runs").exists() else []
        if runs and sum('"finished"' in line for line in runs[0].read_text().splitlines()) >= 2:
            events = runs[0]
            break
        time.sleep(0.05)
    assert events is not None, "the run never got going"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_id = events.parent.name
    done_before = {json.loads(l)["node"] for l in events.read_text().splitlines() if '"finished"' in l}
    assert json.loads((events.parent / "status.json").read_text())["status"] == "running"

    res = subprocess.run(
        [sys.executable, "-m", "agent.cli", "resume", run_id, "--config", str(config), "--json"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert Path(out["image"]).exists() and out["cached_nodes"] >= len(done_before) > 0
    assert json.loads((events.parent / "status.json").read_text())["status"] == "done"
    # the resumed image is the one an uninterrupted run makes
    fresh = subprocess.run(
        [sys.executable, "-m", "agent.cli", "generate", PROMPT, "--json"],
        env={**env, "SCENEWRIGHT_HOME": str(tmp_path / "fresh")}, capture_output=True, text=True, timeout=120,
    )
    assert pixels(json.loads(fresh.stdout)["image"]) == pixels(out["image"])
