"""Numbered schema migrations for the SQLite files a home keeps, recorded in ``PRAGMA user_version``.

Why: the store's ``index.sqlite`` (cache, runs, sessions) and a library's ``catalog.sqlite`` outlive the code
that wrote them. Each file's schema is a list of scripts; script ``i`` takes the file from version ``i`` to
``i + 1``. Opening a file runs the scripts it has not seen yet in one transaction, so a home written by an older
release opens after an upgrade, and a crash mid-migration leaves the old version, not half of the new one.

Rules for adding a migration: append a script, never edit one that has shipped (homes out there already ran it).
Version 1 of every file is the schema the releases before migrations wrote, as ``CREATE TABLE IF NOT EXISTS``, so
a pre-migration file (``user_version`` 0, tables present) passes through it unchanged.

This module imports nothing of ours, so every layer (the store, the sessions, the tools' library) may use it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence


class SchemaTooNew(RuntimeError):
    """The file was written by a newer release (its version is past the last migration this code knows)."""


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[str], name: str = "database") -> int:
    """Bring ``conn``'s file up to ``len(migrations)``; returns the version it is at afterwards.

    A file newer than this code raises :class:`SchemaTooNew` (reading it could misread columns). A file on a
    read-only disk is left at its version and read as it is (read-only commands still work on an old home).
    SQLite's other errors propagate for the caller to word.
    """
    latest = len(migrations)
    current = user_version(conn)
    if current > latest:
        raise SchemaTooNew(
            f"{name} has schema version {current}, newer than this scenewright knows ({latest}); upgrade scenewright"
        )
    if current == latest:
        return current
    in_tx = conn.in_transaction
    try:
        if not in_tx:
            conn.execute("BEGIN IMMEDIATE")
        current = user_version(conn)  # another process may have migrated while we waited for the lock
        for version in range(current, latest):
            for statement in _statements(migrations[version]):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {int(latest)}")
        if not in_tx:
            conn.execute("COMMIT")
    except sqlite3.OperationalError as err:
        if not in_tx and conn.in_transaction:
            conn.execute("ROLLBACK")
        if "readonly" in str(err) or "read-only" in str(err):
            return user_version(conn)
        raise
    except BaseException:
        if not in_tx and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return latest


def _statements(script: str) -> list[str]:
    """Split a script into statements (``executescript`` would commit our transaction first)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
