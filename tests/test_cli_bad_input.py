"""Bad input on the command line ends in one line and exit 2, never a traceback (the campaign's Low findings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from tests.chat_fixtures import SCENE

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, **kw):
    return CliRunner().invoke(app, list(args), catch_exceptions=False, **kw)


def one_line(res, needle: str, code: int = 2):
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:") and needle in errors[0], res.stderr


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_undecodable_prompt_bytes_from_a_real_shell(tmp_path):
    """argv bytes that are not UTF-8 arrive as surrogates (PEP 383): one line, not a UnicodeEncodeError."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCENEWRIGHT_HOME": str(tmp_path / "home")}
    code = "import sys; from agent.cli import main; sys.argv[0] = 'scenewright'; main()"
    for cmd in ("plan", "generate"):
        res = subprocess.run([sys.executable, "-c", code, cmd, b"a cat \xff on a mat"], capture_output=True, env=env)
        assert res.returncode == 2 and b"Traceback" not in res.stderr
        assert b"not valid UTF-8" in res.stderr and b"0xff" in res.stderr
    chat = subprocess.run([sys.executable, "-c", code, "chat", "a black cat next to a bench"],
                          input=b"make the cat \xff bigger\nwarmer light\n", capture_output=True, env=env)
    assert chat.returncode == 0 and b"Traceback" not in chat.stderr
    assert b"not valid UTF-8" in chat.stderr and b"warmer light" in chat.stdout  # the next line still runs


def test_nul_in_a_prompt_or_message():
    one_line(cli("plan", "a cat\x00 on a mat"), "NUL")


def test_huge_integer_or_nan_in_a_plan_file(tmp_path):
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(SCENE).replace('"seed": 7', '"seed": ' + "9" * 5000))
    one_line(cli("run", str(f)), "4300 digits")
    f.write_text(json.dumps(SCENE).replace('"seed": 7', '"seed": NaN'))
    one_line(cli("run", str(f)), "NaN")
    f.write_text(json.dumps({**SCENE, "seed": 2**64}))
    one_line(cli("run", str(f)), "seed")


def test_a_loop_score_that_is_a_string(tmp_path):
    g = {"seed": 0, "output": "l.score", "nodes": [
        {"id": "s", "tool": "text_to_image", "inputs": {"prompt": "x"}},
        {"kind": "loop", "id": "l", "state": {"score": "high", "image": {"ref": "s.image"}},
         "body": [{"id": "b", "tool": "region_check",
                   "inputs": {"image": {"ref": "$state.image"}, "box": [0.1, 0.1, 0.5, 0.5], "text": "x"}}],
         "update": {"score": "b.score"}, "threshold": 0.5, "max_iters": 2}]}
    (tmp_path / "g.json").write_text(json.dumps(g))
    one_line(cli("run", str(tmp_path / "g.json")), "initial score")


def test_a_non_hash_artifact_in_a_graph_file(tmp_path):
    g = {"seed": 0, "output": "t.image", "nodes": [
        {"id": "t", "tool": "image_to_image", "inputs": {"image": {"$artifact": "../../etc/x", "kind": "image"}, "prompt": "x"}}]}
    (tmp_path / "g.json").write_text(json.dumps(g))
    one_line(cli("run", str(tmp_path / "g.json")), "not an artifact hash")


def test_unknown_planner_kind():
    one_line(cli("generate", "a cat", "--planner", "bogus"), "planner kind")
    one_line(cli("plan", "a cat", "--planner", "bogus"), "planner kind")
