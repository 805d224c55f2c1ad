"""Where everything is kept: content-addressed artifacts, the node cache, run records and the run index.

Layout under ``$SCENEWRIGHT_HOME`` (default ``./scenewright-runs``)::

    artifacts/ab/abcdef….png      images as PNG, named by the sha256 of their pixels (see ``image_digest``)
    index.sqlite                  tables ``cache`` (node cache key → outputs) and ``runs`` (the run index)
    runs/<run_id>/                request.json, blueprint.json, graph.json, env.json, events.jsonl,
                                  status.json, result.json, llm.jsonl, final.png

Files are written to a temporary name and renamed, and SQLite commits are atomic, so a crash loses at most the
node in flight. Nothing is ever pickled.

Records never hold secrets: every JSON record a run writes passes through ``redact`` (API keys, tokens,
passwords, credentials in URLs), so a run folder or a suite made from it can be shared or committed.

Nothing on disk is trusted: an artifact is checked against its address when it is read (``get_image``,
``copy_artifact``). A file that is missing, truncated or holds other pixels raises ``ArtifactError`` and a damaged
file is removed, so the executor treats the cache row that named it as a miss and re-runs the producer, which
writes it again. A verified file is remembered by its (inode, size, mtime) for the life of the process, so a
long-lived server or a fully cached run decodes each artifact once.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import io
import json
import os
import re
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from agent.db import STORE_V1, SchemaTooNew, migrate_index


def default_home() -> Path:
    return Path(os.environ.get("SCENEWRIGHT_HOME", "scenewright-runs")).resolve()


class StoreError(RuntimeError):
    """The home cannot do what was asked: a damaged file, a read-only or full disk. The message is one line that
    names the file and what to do (the CLI prints it and exits 2; the server answers 503)."""


def disk_error(path: Path, err: OSError | sqlite3.Error) -> StoreError:
    """A write that failed, as one line a user can act on."""
    text = str(err)
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC or "disk is full" in text or "database or disk is full" in text:
        return StoreError(f"the disk holding {path} is full; free space, then `scenewright resume RUN_ID` continues a run")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text or "read-only" in text:
        return StoreError(
            f"{path} is read-only; this command writes to the store (runs, show, replay and doctor only read it)"
        )
    if isinstance(err, sqlite3.DatabaseError):
        return StoreError(f"{path} is damaged ({text}); `scenewright doctor --repair` rebuilds it")
    return StoreError(f"cannot write {path}: {err.strerror or text}" if isinstance(err, OSError) else f"{path}: {text}")


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise disk_error(path, err) from None


def connect_index(path: Path) -> sqlite3.Connection:
    """Open an index database (WAL, autocommit). A home on a read-only disk opens read-only, so read-only commands
    still work; a file that is not a database is a StoreError naming it."""
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db
    except sqlite3.OperationalError as err:
        if "readonly" not in str(err) and "unable to open" not in str(err):
            raise disk_error(path, err) from None
    except sqlite3.DatabaseError as err:
        raise disk_error(path, err) from None
    except UnicodeDecodeError as err:  # a damaged header can make SQLite hand back bytes that are not text
        raise StoreError(f"{path} is damaged ({err.reason}); `scenewright doctor --repair` rebuilds it") from None
    for mode in ("ro", "ro&immutable=1"):  # a WAL database without write access to its folder needs immutable
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=30, isolation_level=None)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.DatabaseError as err:
            last = err
    raise disk_error(path, last) from None


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


class ArtifactError(FileNotFoundError):
    """An artifact is missing or does not match its hash. A FileNotFoundError, so callers that report a missing
    file report this one too; the executor turns it into a cache miss."""

    def __init__(self, digest: str, path: Path, reason: str):
        self.digest, self.path, self.reason = digest, path, reason
        super().__init__(
            f"artifact {digest[:12]} ({path}) {reason}; the run that made it will write it again"
            " (`scenewright doctor` checks the whole store)"
        )


class Store:
    """Artifacts, cache and run index under one home directory. Safe to share between threads and processes."""

    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else default_home()
        self.artifacts = self.home / "artifacts"
        self.runs_dir = self.home / "runs"
        self.index_path = self.home / "index.sqlite"
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise disk_error(self.runs_dir, err) from None
        self._local = threading.local()
        self._verified: dict[str, tuple[int, int, int]] = {}  # digest -> (inode, size, mtime_ns) checked this process
        with self._guard():
            try:
                migrate_index(self._db().conn, self.index_path)
            except SchemaTooNew as err:
                raise StoreError(str(err)) from None

    def _db(self) -> "_Tx":
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect_index(self.index_path)
        return _Tx(db, self.index_path)

    def _guard(self):
        return _sqlite_errors(self.index_path)

    # --- artifacts -------------------------------------------------------------------------------------------
    def put_image(self, image: PILImage.Image, digest: str | None = None) -> str:
        digest = digest or image_digest(image)
        path = self.artifact_path(digest, ".png")
        if not path.exists():
            atomic_write(path, encode_png(image))
            self._mark_verified(digest, path)
        return digest

    def artifact_path(self, digest: str, suffix: str = ".png") -> Path:
        if not is_digest(digest):
            raise ValueError(f"'{str(digest)[:80]}' is not an artifact hash (64 lower-case hex digits)")
        return self.artifacts / digest[:2] / f"{digest}{suffix}"

    def get_image(self, digest: str) -> PILImage.Image:
        """The image stored under ``digest``, verified: its pixels must hash to its name (else ``ArtifactError``,
        and the damaged file is removed so the next write replaces it)."""
        path = self.artifact_path(digest, ".png")
        try:
            with PILImage.open(path) as im:
                im.load()
                image = im.convert("RGB") if im.mode != "RGB" else im.copy()
        except FileNotFoundError:
            raise ArtifactError(digest, path, "is missing") from None
        except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as err:
            raise self._damaged(digest, path, f"is not a readable PNG ({type(err).__name__})") from None
        if image_digest(image) != digest:
            raise self._damaged(digest, path, "holds other pixels than its hash says")
        self._mark_verified(digest, path)
        return image

    def check_artifact(self, digest: str) -> PILImage.Image | None:
        """Verify an artifact (``ArtifactError`` if it is bad). Returns the decoded image, or None when the file was
        already verified by this process and has not changed since (nothing to decode)."""
        path = self.artifact_path(digest, ".png")
        seen = self._verified.get(digest)
        if seen is not None:
            try:
                st = path.stat()
            except FileNotFoundError:
                raise ArtifactError(digest, path, "is missing") from None
            if (st.st_ino, st.st_size, st.st_mtime_ns) == seen:
                return None
        return self.get_image(digest)

    def copy_artifact(self, digest: str, dest: Path) -> None:
        """Copy a verified artifact to ``dest`` (atomically), so a damaged file never becomes a run's image."""
        self.check_artifact(digest)
        path = self.artifact_path(digest, ".png")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(digest, path, "is missing") from None
        atomic_write(Path(dest), data)

    def _mark_verified(self, digest: str, path: Path) -> None:
        try:
            self._verified[digest] = _stat_key(path.stat())
        except OSError:
            self._verified.pop(digest, None)

    def _damaged(self, digest: str, path: Path, reason: str) -> ArtifactError:
        self._verified.pop(digest, None)
        try:
            path.unlink()
            reason += "; removed it"
        except OSError:
            pass
        return ArtifactError(digest, path, reason)

    # --- cache -----------------------------------------------------------------------------------------------
    def cache_get(self, key: str) -> dict | None:
        """A cache row's outputs; a row that is not a JSON object (damage) is a miss, and is dropped."""
        with self._guard():
            row = self._db().conn.execute("SELECT outputs FROM cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            try:
                with self._db() as db:
                    db.execute("DELETE FROM cache WHERE key = ?", (key,))
            except StoreError:
                pass  # a read-only home: still a miss
            return None
        return value

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
        try:
            run.dir.mkdir(parents=True)
        except OSError as err:
            raise disk_error(run.dir, err) from None
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
        with self._guard():
            cur = self._db().conn.execute(
                "SELECT run_id, created, status, profile, prompt, image, nodes, cached, seconds FROM runs"
                " ORDER BY created DESC, run_id DESC LIMIT ?",
                (limit,),
            )
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]


SCHEMA = STORE_V1  # the store's own tables (doctor rebuilds them); the file's migrations are in agent/db.py


class _sqlite_errors:
    """``with _sqlite_errors(path):`` turns SQLite's errors (damage, a read-only or full disk) into one StoreError."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, sqlite3.Error) and not isinstance(exc, StoreError):
            raise disk_error(self.path, exc) from None
        return False


class _Tx:
    """``with store._db() as db:`` runs the block in one transaction; ``.conn`` for plain reads. SQLite's errors
    leave as one StoreError naming the index."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn, self.path = conn, path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise disk_error(self.path, err) from None
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        except sqlite3.Error as err:
            if exc_type is None:
                raise disk_error(self.path, err) from None
        if exc_type is not None and issubclass(exc_type, sqlite3.Error):
            raise disk_error(self.path, exc) from None


class RunRecord:
    """One run's directory. Every file is written atomically; events are appended one line at a time."""

    def __init__(self, store: Store, path: Path):
        self.store = store
        self.dir = path
        self.id = path.name
        self._events = None
        self._pending: list[str] = []  # event lines not yet on disk

    def write_json(self, name: str, value: Any) -> None:
        text = json.dumps(redact(value), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        atomic_write(self.dir / name, text.encode())

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.dir / name, text.encode())

    def read_json(self, name: str) -> Any:
        """A record file, parsed; a damaged one is a StoreError naming it (never a decode traceback)."""
        path = self.dir / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise StoreError(
                f"{path} is damaged ({type(err).__name__}); `scenewright doctor` lists damaged records"
            ) from None

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
        try:
            if self._events is None:
                self._events = open(self.dir / "events.jsonl", "a", buffering=1 << 16)
            self._events.write("".join(self._pending))
            self._events.flush()
        except OSError as err:
            raise disk_error(self.dir / "events.jsonl", err) from None
        self._pending.clear()

    def append_jsonl(self, name: str, record: dict) -> None:
        try:
            with open(self.dir / name, "a") as fh:
                fh.write(json.dumps(redact(record), sort_keys=True, ensure_ascii=False) + "\n")
        except OSError as err:
            raise disk_error(self.dir / name, err) from None

    def read_jsonl(self, name: str) -> list[dict]:
        path = self.dir / name
        if not path.exists():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):  # a line cut by a crash
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def set_status(self, status: str, **fields: Any) -> None:
        self.write_json("status.json", {"status": status, "updated": _now(), **fields})
        self.store.update_run(self.id, status=status)

    def close(self) -> None:
        self.flush()
        if self._events is not None:
            self._events.close()
            self._events = None


REDACTED = "<redacted>"
# api_key, vlm_api_key, token, access_token, password, secret, authorization, credentials, any *_key (not a bare "key":
# events name cache keys so)
_SECRET_NAME = re.compile(r"(?:^|_)(?:api_?key|secret|password|passwd|token|authorization|credentials?)$|^.+_key$", re.I)
_URL_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret replaced by ``"<redacted>"``: values under secret-looking keys (except
    the empty and vLLM's ``"EMPTY"``, which say no key was set) and the user:password part of URLs."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and _SECRET_NAME.search(k) and isinstance(v, str) and v not in ("", "EMPTY"):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and "@" in value and "://" in value:
        return _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", value)
    return value


def artifact_names(value):
    """Every ``$artifact`` name an encoded value (an input, an output, a recorded event) refers to."""
    if isinstance(value, dict):
        if "$artifact" in value:
            yield value["$artifact"]
        for v in value.values():
            yield from artifact_names(v)
    elif isinstance(value, list):
        for v in value:
            yield from artifact_names(v)


def is_digest(value: object) -> bool:
    """A sha256 hex digest, the only form an artifact name may take (never a path)."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
