"""The schema of a home's ``index.sqlite``, as numbered migrations (see ``tools/db.py`` for the mechanism).

Why one list for two owners: the store (``cache``, ``runs``) and the chat sessions (``sessions``,
``session_turns``) share the file, and ``PRAGMA user_version`` is one number per file, so the file's schema is
written here once and both open it through :func:`migrate_index`.

Version 1 is exactly what the releases before migrations created. Append, never edit a shipped script.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tools.db import SchemaTooNew, migrate

STORE_V1 = """
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, tool TEXT, outputs TEXT, created TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created TEXT, status TEXT, profile TEXT, prompt TEXT,
    image TEXT, nodes INTEGER, cached INTEGER, seconds REAL);
"""

SESSIONS_V1 = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, created TEXT, updated TEXT, title TEXT, profile TEXT,
    parent_session TEXT, parent_turn INTEGER);
CREATE TABLE IF NOT EXISTS session_turns (
    session_id TEXT NOT NULL, idx INTEGER NOT NULL, created TEXT, updated TEXT, kind TEXT, message TEXT,
    status TEXT, error TEXT, prev INTEGER, state TEXT, scene TEXT, ops TEXT, changes TEXT, run_id TEXT,
    reran TEXT, cached TEXT, result TEXT, seed INTEGER,
    PRIMARY KEY (session_id, idx));
"""

INDEX_MIGRATIONS: tuple[str, ...] = (STORE_V1 + SESSIONS_V1,)


def migrate_index(conn: sqlite3.Connection, path: Path) -> int:
    """Bring a home's index up to date; a file from a newer release raises ``SchemaTooNew`` naming it."""
    return migrate(conn, INDEX_MIGRATIONS, name=str(path))


__all__ = ["INDEX_MIGRATIONS", "STORE_V1", "SESSIONS_V1", "SchemaTooNew", "migrate_index"]
