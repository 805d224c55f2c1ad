"""Where everything is kept: content-addressed artifacts, the node cache, run records and the run index.

Layout under ``$SCENEWRIGHT_HOME`` (default ``./scenewright-runs``)::

    artifacts/ab/abcdef….png      images as PNG, named by the sha256 of their pixels (see ``image_digest``)
    index.sqlite                  tables ``cache`` (node cache key → outputs) and ``runs`` (the run index)
    runs/<run_id>/                request.json, blueprint.json, graph.json, env.json, events.jsonl,
                                  status.json, result.json, llm.jsonl, final.png

Files are written to a temporary name and renamed, and SQLite commits are atomic, so a crash loses at most the
node in flight. Nothing is ever pickled.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

from PIL import Image as PILImage


def default_home() -> Path:
    return Path(os.environ.get("SCENEWRIGHT_HOME", "scenewright-runs")).resolve()


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_PNG_INFO = None  # no text chunks, no timestamps: identical pixels give identical bytes


def encode_png(image: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6, pnginfo=_PNG_INFO)
    return buf.getvalue()


def image_digest(image: PILImage.Image) -> str:
    """An image's address: sha256 over mode, size and raw pixels. Hashing pixels rather than PNG bytes takes
    ~1 ms instead of a ~60 ms encode, and keeps addresses (and so cache keys) stable across PNG encoder versions."""
    h = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


class Store:
    """Artifacts, cache and run index under one home directory. Safe to share between threads and processes."""

    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else default_home()
        self.artifacts = self.home / "artifacts"
        self.runs_dir = self.home / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, tool TEXT, outputs TEXT, created TEXT);
            CREATE TABLE IF NOT EXISTS runs (
                run_id TEXT PRIMARY KEY, created TEXT, status TEXT, profile TEXT, prompt TEXT,
                image TEXT, nodes INTEGER, cached INTEGER, seconds REAL);
            """
        )

    def _db(self) -> "_Tx":
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.home / "index.sqlite", timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return _Tx(db)

    # --- artifacts -------------------------------------------------------------------------------------------
    def put_image(self, image: PILImage.Image, digest: str | None = None) -> str:
        digest = digest or image_digest(image)
        path = self.artifact_path(digest, ".png")
        if not path.exists():
            atomic_write(path, encode_png(image))
        return digest

    def artifact_path(self, digest: str, suffix: str = ".png") -> Path:
        if not (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise ValueError(f"'{digest}' is not an artifact hash")
        return self.artifacts / digest[:2] / f"{digest}{suffix}"

    def get_image(self, digest: str) -> PILImage.Image:
        path = self.artifact_path(digest, ".png")
        if not path.exists():
            raise FileNotFoundError(f"artifact {digest[:12]} is missing from {self.artifacts}; the store is incomplete")
        with PILImage.open(path) as im:
            im.load()
            return im.convert("RGB") if im.mode != "RGB" else im.copy()

    # --- cache -----------------------------------------------------------------------------------------------
    def cache_get(self, key: str) -> dict | None:
        row = self._db().conn.execute("SELECT outputs FROM cache WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def cache_put_many(self, rows: list[tuple[str, str, dict]]) -> None:
        now = _now()
        with self._db() as db:
            db.executemany(
                "INSERT OR REPLACE INTO cache (key, tool, outputs, created) VALUES (?, ?, ?, ?)",
                [(k, tool, canonical_json(out), now) for k, tool, out in rows],
            )

    # --- runs ------------------------------------------------------------------------------------------------
    def new_run(self, *, profile: str, prompt: str) -> "RunRecord":
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{secrets.token_hex(3)}"
        run = RunRecord(self, self.runs_dir / run_id)
        run.dir.mkdir(parents=True)
        with self._db() as db:
            db.execute(
                "INSERT INTO runs (run_id, created, status, profile, prompt) VALUES (?, ?, ?, ?, ?)",
                (run_id, _now(), "created", profile, prompt[:500]),
            )
        return run

    def open_run(self, run_id: str) -> "RunRecord":
        if not run_id or "/" in run_id or run_id.startswith(".") or not (self.runs_dir / run_id).is_dir():
            raise FileNotFoundError(f"no run '{run_id}' under {self.runs_dir}; `scenewright runs` lists them")
        return RunRecord(self, self.runs_dir / run_id)

    def update_run(self, run_id: str, **fields: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._db() as db:
            db.execute(f"UPDATE runs SET {cols} WHERE run_id = ?", (*fields.values(), run_id))

    def list_runs(self, limit: int = 50) -> list[dict]:
        cur = self._db().conn.execute(
            "SELECT run_id, created, status, profile, prompt, image, nodes, cached, seconds FROM runs"
            " ORDER BY created DESC, run_id DESC LIMIT ?",
            (limit,),
        )
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]


class _Tx:
    """``with store._db() as db:`` runs the block in one transaction; ``.conn`` for plain reads."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


class RunRecord:
    """One run's directory. Every file is written atomically; events are appended one line at a time."""

    def __init__(self, store: Store, path: Path):
        self.store = store
        self.dir = path
        self.id = path.name
        self._events = None
        self._pending: list[str] = []  # event lines not yet on disk

    def write_json(self, name: str, value: Any) -> None:
        atomic_write(self.dir / name, (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.dir / name, text.encode())

    def read_json(self, name: str) -> Any:
        return json.loads((self.dir / name).read_text())

    def exists(self, name: str) -> bool:
        return (self.dir / name).exists()

    def event(self, record: dict, *, flush: bool = True) -> None:
        """Append one event. ``flush=False`` keeps it in memory until :meth:`flush`: the executor flushes after it
        commits the cache rows of the same nodes, so a ``finished`` line on disk means the node is cached (a crash
        loses both or neither), without a write per event."""
        self._pending.append(json.dumps(record, separators=(",", ":")) + "\n")
        if flush:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        if self._events is None:
            self._events = open(self.dir / "events.jsonl", "a")
        self._events.write("".join(self._pending))
        self._events.flush()
        self._pending.clear()

    def append_jsonl(self, name: str, record: dict) -> None:
        with open(self.dir / name, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")

    def read_jsonl(self, name: str) -> list[dict]:
        path = self.dir / name
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash
                continue
        return rows

    def set_status(self, status: str, **fields: Any) -> None:
        self.write_json("status.json", {"status": status, "updated": _now(), **fields})
        self.store.update_run(self.id, status=status)

    def close(self) -> None:
        self.flush()
        if self._events is not None:
            self._events.close()
            self._events = None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
