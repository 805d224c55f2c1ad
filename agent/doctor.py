"""``scenewright doctor``: check a home (``$SCENEWRIGHT_HOME``) and, with ``repair``, fix what can be fixed safely.

What it looks at, and what repair does:

- ``index``: ``index.sqlite`` passes SQLite's ``integrity_check``. Repair keeps the damaged file beside it
  (``index.sqlite.damaged-<time>``) and builds a fresh index: the run list is rebuilt from the run folders; the
  node cache starts empty (it is only a cache); chat sessions in the damaged file are not recovered (their runs
  are).
- ``artifact``: every file under ``artifacts/`` is named by a sha256 and holds pixels that hash to it. Repair
  removes a damaged one; the next run that needs it makes it again.
- ``cache``: every cache row is a JSON object whose artifacts are present and intact. Repair deletes the row.
- ``tmp``: ``.*.tmp`` files older than an hour (an interrupted write; younger ones may be a write in progress).
  Repair deletes them.
- ``record``: a run folder's JSON records parse. Not repaired (a record is history): the finding names the file.
- ``library``: the reference library's catalogue passes ``integrity_check``. Not repaired: move it aside and
  rebuild it with ``scenewright library add``.

Checking never writes, so it runs on a read-only home.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image as PILImage

from agent.store import SCHEMA, connect_index, image_digest, is_digest

TMP_AGE_S = 3600.0
RECORDS = ("request.json", "status.json", "result.json", "graph.json", "blueprint.json", "env.json")


@dataclass
class Finding:
    kind: str  # index | artifact | cache | tmp | record | library
    path: str
    problem: str
    action: str  # what repair does (or what to do by hand)
    repaired: bool = False

    def line(self) -> str:
        done = "repaired: " if self.repaired else ""
        return f"{self.kind:8s} {self.path}: {self.problem} ({done}{self.action})"

    def to_dict(self) -> dict:
        return asdict(self)


def check_home(home: Path, *, repair: bool = False, tmp_age_s: float = TMP_AGE_S) -> list[Finding]:
    home = Path(home)
    if not home.is_dir():
        return [Finding("home", str(home), "is not a folder", "nothing to check; runs create it")]
    findings: list[Finding] = []
    bad_artifacts = _check_artifacts(home, findings, repair)
    index_ok = _check_index(home, findings, repair)
    if index_ok:
        _check_cache(home, findings, repair, bad_artifacts)
    _check_tmp(home, findings, repair, tmp_age_s)
    _check_records(home, findings)
    _check_library(home, findings)
    return findings


def _integrity(path: Path) -> str | None:
    """None when SQLite finds the file sound, else what is wrong (opened read-only: checking never writes)."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        return str(err)
    return None if rows == ["ok"] else "; ".join(rows[:3])


def _check_index(home: Path, findings: list[Finding], repair: bool) -> bool:
    path = home / "index.sqlite"
    if not path.exists():
        return False
    problem = _integrity(path)
    if problem is None:
        return True
    f = Finding("index", str(path), f"damaged ({problem})",
                "kept aside as index.sqlite.damaged-*, run list rebuilt from the run folders; the cache starts empty")
    if repair:
        _rebuild_index(home)
        f.repaired = True
    findings.append(f)
    return f.repaired


def _rebuild_index(home: Path) -> None:
    path = home / "index.sqlite"
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            p.rename(Path(f"{path}.damaged-{stamp}{suffix}"))
    db = connect_index(path)
    db.executescript(SCHEMA)
    rows = []
    for run in sorted((home / "runs").glob("*")) if (home / "runs").is_dir() else []:
        if not run.is_dir():
            continue
        req, status, result = (_json_or_none(run / n) or {} for n in ("request.json", "status.json", "result.json"))
        rows.append((run.name, str(status.get("updated") or run.name), str(status.get("status") or "unknown"),
                     str(req.get("profile") or ""), str(req.get("prompt") or req.get("message") or "")[:500],
                     result.get("image"), result.get("total_nodes"), result.get("cached_nodes"), result.get("seconds")))
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT OR REPLACE INTO runs (run_id, created, status, profile, prompt, image, nodes, cached, seconds)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    db.close()


def _json_or_none(path: Path):
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _check_artifacts(home: Path, findings: list[Finding], repair: bool) -> set[str]:
    bad: set[str] = set()
    root = home / "artifacts"
    if not root.is_dir():
        return bad
    for path in sorted(root.glob("*/*")):
        if path.name.endswith(".tmp") or not path.is_file():
            continue  # interrupted writes are the tmp check's
        digest = path.name[: -len(".png")] if path.name.endswith(".png") else ""
        if not is_digest(digest) or path.parent.name != digest[:2]:
            findings.append(Finding("artifact", str(path), "is not named by a sha256 in its folder", "remove it by hand"))
            continue
        problem = _image_problem(path, digest)
        if problem is None:
            continue
        bad.add(digest)
        f = Finding("artifact", str(path), problem, "removed; the run that needs it makes it again")
        if repair:
            path.unlink(missing_ok=True)
            f.repaired = True
        findings.append(f)
    return bad


def _image_problem(path: Path, digest: str) -> str | None:
    try:
        with PILImage.open(path) as im:
            im.load()
            image = im.convert("RGB") if im.mode != "RGB" else im
            ok = image_digest(image) == digest
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as err:
        return f"is not a readable PNG ({type(err).__name__})"
    return None if ok else "holds other pixels than its hash says"


def _check_cache(home: Path, findings: list[Finding], repair: bool, bad: set[str]) -> None:
    db = connect_index(home / "index.sqlite")
    try:
        dangling = []
        for key, outputs in db.execute("SELECT key, outputs FROM cache").fetchall():
            why = _cache_row_problem(home, outputs, bad)
            if why:
                dangling.append(key)
                findings.append(Finding("cache", f"index.sqlite cache row {str(key)[:16]}", why, "row deleted: a miss"))
        if repair and dangling:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("DELETE FROM cache WHERE key = ?", [(k,) for k in dangling])
            db.execute("COMMIT")
            for f in findings[-len(dangling):]:
                f.repaired = True
    finally:
        db.close()


def _cache_row_problem(home: Path, outputs, bad: set[str]) -> str | None:
    try:
        value = json.loads(outputs)
    except (TypeError, ValueError, RecursionError):
        return "is not JSON"
    if not isinstance(value, dict):
        return "is not a JSON object"
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            sha = v.get("$artifact")
            if sha is not None:
                if not is_digest(sha):
                    return "names an artifact that is not a sha256"
                if sha in bad:
                    return f"names damaged artifact {sha[:12]}"
                if not (home / "artifacts" / sha[:2] / f"{sha}.png").exists():
                    return f"names missing artifact {sha[:12]}"
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def _check_tmp(home: Path, findings: list[Finding], repair: bool, age_s: float) -> None:
    now = time.time()
    for path in sorted(home.rglob(".*.tmp")):
        try:
            if not path.is_file() or now - path.stat().st_mtime < age_s:
                continue
        except OSError:
            continue
        f = Finding("tmp", str(path), "is an interrupted write", "deleted")
        if repair:
            path.unlink(missing_ok=True)
            f.repaired = True
        findings.append(f)


def _check_records(home: Path, findings: list[Finding]) -> None:
    runs = home / "runs"
    if not runs.is_dir():
        return
    for run in sorted(runs.iterdir()):
        if not run.is_dir():
            continue
        for name in RECORDS:
            p = run / name
            if p.exists() and _json_or_none(p) is None:
                findings.append(Finding("record", str(p), "is not a JSON object",
                                        "not repaired: re-run it, or delete the run folder"))
        events = run / "events.jsonl"
        if events.exists():
            try:
                events.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                findings.append(Finding("record", str(events), "is not UTF-8 text",
                                        "not repaired: re-run it, or delete the run folder"))


def _check_library(home: Path, findings: list[Finding]) -> None:
    folder = Path(os.environ.get("SCENEWRIGHT_LIBRARY") or home / "library")
    cat = folder / "catalog.sqlite"
    if cat.is_file():
        problem = _integrity(cat)
        if problem:
            findings.append(Finding("library", str(cat), f"damaged ({problem})",
                                    f"not repaired: move {folder} aside and rebuild it with `scenewright library add`"))
