"""A home written by the release before migrations opens after the upgrade, with its runs, cache and sessions;
a home from a newer release is refused in one line; migrations are all-or-nothing."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.db import INDEX_MIGRATIONS
from agent.sessions import SessionDB
from agent.store import Store
from tools.db import SchemaTooNew, migrate, user_version

# The exact CREATE statements of the last release without migrations (`git show 9e0059a:agent/store.py` and
# `:agent/sessions.py`), copied here so that later edits to agent/db.py cannot make this test pass by themselves.
OLD_RELEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, tool TEXT, outputs TEXT, created TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created TEXT, status TEXT, profile TEXT, prompt TEXT,
    image TEXT, nodes INTEGER, cached INTEGER, seconds REAL);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, created TEXT, updated TEXT, title TEXT, profile TEXT,
    parent_session TEXT, parent_turn INTEGER);
CREATE TABLE IF NOT EXISTS session_turns (
    session_id TEXT NOT NULL, idx INTEGER NOT NULL, created TEXT, updated TEXT, kind TEXT, message TEXT,
    status TEXT, error TEXT, prev INTEGER, state TEXT, scene TEXT, ops TEXT, changes TEXT, run_id TEXT,
    reran TEXT, cached TEXT, result TEXT, seed INTEGER,
    PRIMARY KEY (session_id, idx));
"""


@pytest.fixture
def old_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    db = sqlite3.connect(home / "index.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_RELEASE_SCHEMA)
    db.execute("INSERT INTO runs VALUES ('20260101-000000-abcd', '2026-01-01T00:00:00', 'done', 'preview',"
               " 'a red cube', NULL, 5, 2, 0.5)")
    db.execute("INSERT INTO cache VALUES ('k1', 'preview.render', '{\"image\": \"x\"}', '2026-01-01')")
    db.execute("INSERT INTO sessions VALUES ('old-session', '2026-01-01', '2026-01-01', 'cubes', 'preview', NULL, NULL)")
    db.execute("INSERT INTO session_turns (session_id, idx, kind, message, status, seed)"
               " VALUES ('old-session', 0, 'first', 'a red cube', 'done', 7)")
    assert user_version(db) == 0  # what every pre-migration home holds
    db.close()
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(home))
    return home


def test_old_home_opens_and_keeps_its_rows(old_home):
    store = Store(old_home)
    assert [r["run_id"] for r in store.list_runs()] == ["20260101-000000-abcd"]
    assert store.cache_get("k1") is not None
    sessions = SessionDB(old_home)
    assert not sessions.empty
    assert sessions.session("old-session")["title"] == "cubes"
    assert [(t.index, t.message, t.seed) for t in sessions.turns("old-session")] == [(0, "a red cube", 7)]
    with sqlite3.connect(old_home / "index.sqlite") as db:
        assert user_version(db) == len(INDEX_MIGRATIONS)


def test_old_home_through_the_cli(old_home):
    runner = CliRunner()
    runs = runner.invoke(app, ["runs", "--json"], catch_exceptions=False)
    assert runs.exit_code == 0, runs.output
    assert [r["run_id"] for r in json.loads(runs.stdout)] == ["20260101-000000-abcd"]
    chats = runner.invoke(app, ["chat", "--list", "--json"], catch_exceptions=False)
    assert chats.exit_code == 0, chats.output
    assert [s["session_id"] for s in json.loads(chats.stdout)] == ["old-session"]


def test_home_from_a_newer_release_is_one_line(old_home):
    with sqlite3.connect(old_home / "index.sqlite") as db:
        db.execute(f"PRAGMA user_version = {len(INDEX_MIGRATIONS) + 1}")
    res = CliRunner().invoke(app, ["runs"], catch_exceptions=False)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "newer than this scenewright" in lines[0] and "Traceback" not in res.output


def test_a_later_migration_applies_once_and_a_failing_one_changes_nothing(tmp_path):
    db = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    v1 = "CREATE TABLE IF NOT EXISTS t (a INTEGER);"
    assert migrate(db, [v1]) == 1
    db.execute("INSERT INTO t VALUES (1)")
    v2 = "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x';\nCREATE INDEX t_b ON t (b);"
    assert migrate(db, [v1, v2]) == 2
    assert migrate(db, [v1, v2]) == 2  # already there: nothing re-runs (a second ALTER would fail)
    assert db.execute("SELECT a, b FROM t").fetchall() == [(1, "x")]
    bad = "ALTER TABLE t ADD COLUMN c TEXT;\nINSERT INTO no_such_table VALUES (1);"
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, [v1, v2, bad])
    assert user_version(db) == 2
    assert [c[1] for c in db.execute("PRAGMA table_info(t)")] == ["a", "b"]  # the half-done step rolled back
    with pytest.raises(SchemaTooNew):
        migrate(db, [v1])
