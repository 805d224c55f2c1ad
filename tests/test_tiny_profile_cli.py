"""The whole LLM Blueprint recipe from the command line through real diffusers/transformers pipelines.

The tiny profile points at random-initialised models saved to disk and loaded with the same ``from_pretrained``
calls a real profile uses; only the sizes differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from agent.cli import app  # noqa: E402
from tests.tiny_models import TINY_SIZE, write_tiny_profile  # noqa: E402

PROMPT = 'Two red apples to the left of a blue vase on a table, a sign above that says "OPEN".'


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    return write_tiny_profile(tmp_path_factory.mktemp("tiny-cli"))


def test_generate_on_tiny_profile_runs_real_pipelines_and_caches(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    args = ["generate", PROMPT, "--profile", "tiny", "--config", str(tiny_config), "--seed", "2", "--json"]
    first = runner.invoke(app, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    with Image.open(out["image"]) as im:
        assert im.size == (TINY_SIZE, TINY_SIZE)
    run_dir = Path(out["run_dir"])
    env = json.loads((run_dir / "env.json").read_text())
    assert env["tools"]["layout_to_image"]["version"].startswith("diffusers")
    assert env["tools"]["regional_repaint"]["version"].startswith("diffusers")
    assert "local:" in json.dumps(env["tools"]["region_check"]["identity"])
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    ran = {e["node"] for e in events if e["event"] == "finished"}
    assert {"scene", "compose", "text"} <= ran and any(n.startswith("check.apple") for n in ran)

    second = json.loads(runner.invoke(app, args, catch_exceptions=False).stdout)
    assert second["cached_nodes"] == second["total_nodes"] == out["total_nodes"]
    from agent.store import image_digest

    with Image.open(second["image"]) as a, Image.open(out["image"]) as b:  # the bytes differ in the run id only
        assert image_digest(a) == image_digest(b)


def test_missing_weights_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    config = tmp_path / "p.toml"
    config.write_text(
        '[profiles.gone]\nbackend = "diffusers"\n[profiles.gone.models]\n'
        f'layout_to_image = "{tmp_path / "no-such-model"}"\n'
    )
    res = CliRunner().invoke(app, ["generate", "a red cube", "--profile", "gone", "--config", str(config)])
    assert res.exit_code in (1, 2)
    assert "no-such-model" in res.output and "Traceback" not in res.output
