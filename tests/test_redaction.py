"""Records never hold secrets: API keys and tokens are redacted wherever a run, a session or a suite is written."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from agent.cli import app
from agent.store import REDACTED, redact

KEYS = ("sk-live-PLANNER-0123456789", "sk-live-VLM-9876543210", "hunter2-password")


def _grep(folder) -> list[str]:
    """Every file under ``folder`` that holds one of the secrets (bytes, so SQLite and PNGs count too)."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and any(k.encode() in p.read_bytes() for k in KEYS)]


def _config(tmp_path):
    cfg = tmp_path / "profiles.toml"
    cfg.write_text(
        "[profiles.keyed]\nbackend = \"preview\"\n"
        f"planner = {{ kind = \"rule\", api_key = \"{KEYS[0]}\", url = \"http://user:{KEYS[2]}@127.0.0.1:9/v1\" }}\n"
        f"vlm = {{ kind = \"preview\", api_key = \"{KEYS[1]}\" }}\n"
    )
    return cfg


def test_no_key_reaches_a_run_record_or_a_suite(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(home))
    monkeypatch.setenv("SCENEWRIGHT_CONFIG", str(_config(tmp_path)))
    runner = CliRunner()
    res = runner.invoke(app, ["generate", "a red cube left of a blue sphere", "-p", "keyed", "--json"])
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout)["run_id"]
    chat = runner.invoke(app, ["chat", "a black cat next to a bench", "-p", "keyed", "-m", "make the cat bigger"])
    assert chat.exit_code == 0, chat.output
    assert _grep(home) == []
    env = json.loads((home / "runs" / run_id / "env.json").read_text())
    assert env["profile"]["planner"]["api_key"] == REDACTED and env["profile"]["vlm"]["api_key"] == REDACTED
    assert env["profile"]["planner"]["url"] == f"http://{REDACTED}@127.0.0.1:9/v1"
    suite = tmp_path / "suite"
    assert runner.invoke(app, ["suite", "add", run_id, "--suite", str(suite)]).exit_code == 0
    assert _grep(suite) == []
    assert runner.invoke(app, ["replay", str(suite)]).exit_code == 0
    assert KEYS[0] not in runner.invoke(app, ["profiles", "--json"]).stdout


def test_suite_add_redacts_a_record_written_before_redaction(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(home))
    runner = CliRunner()
    run_id = json.loads(runner.invoke(app, ["generate", "a red cube", "--json"]).stdout)["run_id"]
    env_path = home / "runs" / run_id / "env.json"
    env = json.loads(env_path.read_text())
    env["profile"]["planner"]["api_key"] = KEYS[0]  # as older versions wrote it
    env_path.write_text(json.dumps(env))
    with open(home / "runs" / run_id / "llm.jsonl", "a") as fh:
        fh.write(json.dumps({"kind": "plan", "request": {"authorization": f"Bearer {KEYS[1]}"}, "response": {}}) + "\n")
    suite = tmp_path / "suite"
    assert runner.invoke(app, ["suite", "add", run_id, "--suite", str(suite)]).exit_code == 0
    assert _grep(suite) == []
    shutil.rmtree(home)


def test_redact_names():
    value = {"api_key": "a", "vlm_api_key": "b", "token": "c", "access_token": "d", "hf_key": "e", "password": "f",
             "key": "0123abcd", "max_tokens": 5, "eos_token_id": 2, "empty_key": "EMPTY", "nested": [{"secret": "g"}]}
    out = redact(value)
    assert [out[k] for k in ("api_key", "vlm_api_key", "token", "access_token", "hf_key", "password")] == [REDACTED] * 6
    assert out["nested"][0]["secret"] == REDACTED
    assert out["key"] == "0123abcd" and out["max_tokens"] == 5 and out["eos_token_id"] == 2 and out["empty_key"] == "EMPTY"
