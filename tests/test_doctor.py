"""Store damage ends in one line naming the damaged file (never a traceback), and `scenewright doctor` checks and
repairs a home. Read-only and full disks are real mounts (a private mount namespace) where the machine allows it."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from agent.api import Engine
from agent.cli import app
from agent.server import create_app

ROOT = Path(__file__).resolve().parents[1]


def cli(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def one_line_error(res, *needles, code=2):
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    for n in needles:
        assert n in res.stderr, res.stderr


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def run_id(home):
    res = cli("generate", "a red cube left of a blue sphere", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["run_id"]


def _garble(path: Path) -> None:
    """Overwrite a database with noise, as another process would: first let this process's connections to it
    close (SQLite shares per-file state inside one process, so an open one would still see the old pages)."""
    gc.collect()
    for p in path.parent.glob(path.name + "-*"):
        p.unlink()
    path.write_bytes(os.urandom(4096))


def test_garbled_index_is_one_line_for_every_command(home, run_id):
    _garble(home / "index.sqlite")
    for args in (["runs"], ["show", run_id], ["plan", "a cat"], ["generate", "a cat"], ["chat", "--list"],
                 ["serve", "--port", "0"]):
        one_line_error(cli(*args), "index.sqlite", "doctor")


def test_garbled_records_are_one_line_naming_the_file(home, run_id):
    run = home / "runs" / run_id
    (run / "status.json").write_text("{nope")
    one_line_error(cli("show", run_id), "status.json")
    (run / "status.json").write_text('{"status": "done"}')
    (run / "request.json").write_bytes(b"\xff\xfe")
    one_line_error(cli("resume", run_id), "request.json")
    (run / "request.json").write_text('{"kind": "prompt", "profile": "preview"}')
    (run / "graph.json").write_text("[")
    one_line_error(cli("resume", run_id), "graph.json")


def test_garbled_records_over_http_are_503_naming_the_file(home, run_id):
    run = home / "runs" / run_id
    (run / "result.json").write_text("{nope")
    (run / "events.jsonl").write_bytes(b"\xff\xfe\n[1]\n5\n")
    with TestClient(create_app(Engine("preview", home=home), recover=False), base_url="http://127.0.0.1") as c:
        res = c.get(f"/api/runs/{run_id}")
        assert res.status_code == 503 and "result.json" in res.json()["detail"]
        assert c.get(f"/api/runs/{run_id}/events").status_code == 200


def test_garbled_cache_row_is_a_miss(home, run_id):
    db = sqlite3.connect(home / "index.sqlite")
    db.execute("UPDATE cache SET outputs = '{bad'")
    db.commit()
    db.close()
    res = cli("generate", "a red cube left of a blue sphere", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ok"] and out["cached_nodes"] == 0


def test_garbled_library_catalogue_is_one_line(home, run_id):
    (home / "library").mkdir()
    (home / "library" / "catalog.sqlite").write_bytes(os.urandom(4096))
    one_line_error(cli("generate", "a red cube"), "catalog.sqlite", "library add")
    assert cli("runs").exit_code == 0  # listing runs needs no library


def test_doctor_finds_and_repairs(home, run_id):
    assert cli("doctor").exit_code == 0
    art = sorted((home / "artifacts").glob("*/*.png"))[0]
    Image.new("RGB", (512, 512), (0, 255, 0)).save(art)
    old_tmp = home / "runs" / run_id / ".final.png.123.456.tmp"
    old_tmp.write_bytes(b"partial")
    os.utime(old_tmp, (time.time() - 7200, time.time() - 7200))
    fresh_tmp = home / "runs" / ".fresh.tmp"  # may be a write in progress: left alone
    fresh_tmp.write_bytes(b"partial")
    (home / "runs" / run_id / "status.json").write_text("{nope")
    res = cli("doctor", "--json")
    assert res.exit_code == 1
    kinds = sorted({f["kind"] for f in json.loads(res.stdout)["findings"]})
    assert kinds == ["artifact", "cache", "record", "tmp"]
    assert art.exists()  # checking never changes anything
    res = cli("doctor", "--repair", "--json")
    report = json.loads(res.stdout)
    assert res.exit_code == 1  # the damaged record is history: reported, not rewritten
    assert {f["kind"] for f in report["findings"] if not f["repaired"]} == {"record"}
    assert not art.exists() and not old_tmp.exists() and fresh_tmp.exists()
    (home / "runs" / run_id / "status.json").write_text('{"status": "done"}')
    assert cli("doctor").exit_code == 0
    again = json.loads(cli("generate", "a red cube left of a blue sphere", "--json").stdout)
    assert again["ok"]  # the removed artifact was made again


def test_doctor_rebuilds_a_garbled_index(home, run_id):
    _garble(home / "index.sqlite")
    res = cli("doctor", "--repair")
    assert res.exit_code == 0 and "index" in res.stdout
    assert list(home.glob("index.sqlite.damaged-*"))  # the damaged file is kept, not deleted
    rows = json.loads(cli("runs", "--json").stdout)
    assert [r["run_id"] for r in rows] == [run_id] and rows[0]["status"] == "done"


# --- real read-only and full disks -----------------------------------------------------------------------------------
def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs a private mount namespace (unshare -m, root)")


def _in_namespace(script: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)


def _sw(*args: str) -> str:
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)
    return f"{sys.executable} -c 'import sys; from agent.cli import main; sys.argv[0] = \"scenewright\"; main()' {quoted}"


@needs_mount
def test_read_only_home_still_serves_read_only_commands(home, run_id):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCENEWRIGHT_HOME": str(home)}
    script = (f"mount --bind {home} {home} && mount -o remount,bind,ro {home} && "
              f"{_sw('runs', '--json')} > {home.parent}/runs.out; echo runs=$?; "
              f"{_sw('show', run_id)} >/dev/null; echo show=$?; "
              f"{_sw('plan', 'a cat')} >/dev/null; echo plan=$?; "
              f"{_sw('replay', run_id)} >/dev/null; echo replay=$?; "
              f"{_sw('doctor')} >/dev/null; echo doctor=$?; "
              f"{_sw('chat', '--list')} >/dev/null; echo chatlist=$?; "
              f"{_sw('generate', 'a cat')}; echo generate=$?")
    res = _in_namespace(script, env)
    codes = dict(line.split("=") for line in res.stdout.splitlines() if "=" in line and line.split("=")[0].isalpha())
    assert codes == {"runs": "0", "show": "0", "plan": "0", "replay": "0", "doctor": "0", "chatlist": "0",
                     "generate": "2"}, res.stdout + res.stderr
    assert "read-only" in res.stderr and "Traceback" not in res.stderr
    assert json.loads((home.parent / "runs.out").read_text())[0]["run_id"] == run_id


@needs_mount
def test_full_disk_is_one_line_and_loses_nothing(tmp_path):
    home = tmp_path / "full"
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCENEWRIGHT_HOME": str(home)}
    gens = "; ".join(f"{_sw('generate', f'a red cube number {i} left of a green ball')} >/dev/null" for i in range(8))
    script = f"mount -t tmpfs -o size=300k tmpfs {home} && {gens}; {_sw('runs', '--json')}"
    res = _in_namespace(script, env)
    assert "is full" in res.stderr and "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors and all("is full" in line for line in errors)
    rows = json.loads(res.stdout)  # and the store still lists its runs
    assert any(r["status"] == "done" for r in rows)
