"""Batch runs: many prompts or plan files, several at a time, one failure never stopping the rest.

    from agent.api import Engine
    from agent.batch import load_items, run_batch
    summary = run_batch(Engine("preview"), load_items("prompts.txt"), concurrency=4, out="results.jsonl")

Input is a text file (one prompt a line; blank lines and ``#`` comments skipped), a folder of plan files
(``*.json``: blueprints from ``plan --json`` or graphs from a run's ``graph.json``), in name order, or one plan
file (a ``.json`` file is never read as prompts). Each item is
one ordinary run (its own run record, so ``resume`` and ``replay`` work on it). Results go to a JSONL file, one
line per item as it finishes (``index`` says which), so a crash keeps every finished line.

Concurrency overlaps planning (LLM round trips), CPU tools and I/O, and lets items share model calls: every item
is a run on the one engine, whose scheduler batches ready nodes of all runs per tool (a GPU batch may hold nodes of
several items; the GPU is one resource, so concurrent items never race on it). Each item keeps its own graph and
seeds, so its images are the same as when it runs alone.
"""

from __future__ import annotations

import json
import threading
import time
import itertools
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from agent.api import Engine, UserError, load_plan_file
from agent.run import RunCancelled
from agent.blueprint import Blueprint

MAX_PROMPT_FILE_BYTES = 10 * 1024 * 1024
MAX_ITEMS = 100_000
MAX_PROMPT_CHARS = 8000


@dataclass
class BatchItem:
    index: int
    source: str  # "prompts.txt:12" or the plan file's path
    kind: str  # prompt | plan
    prompt: str = ""
    path: str = ""


@dataclass
class ItemResult:
    index: int
    source: str
    kind: str
    ok: bool
    run_id: str | None = None
    image: str | None = None
    seconds: float = 0.0
    total_nodes: int = 0
    cached_nodes: int = 0
    error: str | None = None
    failed_nodes: dict = field(default_factory=dict)


@dataclass
class BatchSummary:
    results: list[ItemResult]
    seconds: float
    out: str | None

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.ok

    @property
    def exit_code(self) -> int:
        return 0 if self.failed == 0 else 1

    def to_dict(self) -> dict:
        return {
            "items": len(self.results),
            "ok": self.ok,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "nodes": sum(r.total_nodes for r in self.results),
            "cached": sum(r.cached_nodes for r in self.results),
            "out": self.out,
        }


def load_items(path: str | Path) -> list[BatchItem]:
    """Read the batch input. Bad input (missing, binary, empty, too large) raises UserError."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p} does not exist; give a text file of prompts or a folder of plan files")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix == ".json" and not f.name.startswith("."))
        if not files:
            raise UserError(f"folder {p} has no *.json plan files")
        if len(files) > MAX_ITEMS:
            raise UserError(f"folder {p} has more than {MAX_ITEMS} plan files; split the batch")
        return [BatchItem(index=i, source=str(f), kind="plan", path=str(f)) for i, f in enumerate(files)]
    if not p.is_file():  # a pipe or a device would block or never end
        raise UserError(f"{p} is not a regular file (a pipe, a device?); give a text file of prompts or a folder")
    if p.suffix.lower() in (".json", ".png"):  # one plan file (or a PNG's recipe) is one item, checked now
        load_plan_file(p)
        return [BatchItem(index=0, source=str(p), kind="plan", path=str(p))]
    if p.stat().st_size > MAX_PROMPT_FILE_BYTES:
        raise UserError(f"{p} is larger than {MAX_PROMPT_FILE_BYTES // 1024 // 1024} MiB; split the batch")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{p} is not UTF-8 text; give one prompt a line") from None
    if "\x00" in text:
        raise UserError(f"{p} looks binary; give one prompt a line")
    items = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) > MAX_PROMPT_CHARS:
            raise UserError(f"{p}:{n}: the prompt is longer than {MAX_PROMPT_CHARS} characters")
        items.append(BatchItem(index=len(items), source=f"{p.name}:{n}", kind="prompt", prompt=line))
    if not items:
        raise UserError(f"{p} has no prompts (one a line; blank lines and # comments are skipped)")
    if len(items) > MAX_ITEMS:
        raise UserError(f"{p} has more than {MAX_ITEMS} prompts; split the batch")
    return items


def _run_item(engine: Engine, item: BatchItem, seed: int | None) -> ItemResult:
    t0 = time.perf_counter()
    res = ItemResult(index=item.index, source=item.source, kind=item.kind, ok=False)
    try:
        if item.kind == "prompt":
            outcome = engine.generate(item.prompt, seed=seed or 0)
        else:
            plan = load_plan_file(item.path)
            if isinstance(plan, Blueprint):
                outcome = engine.run_blueprint(plan, seed=seed)
            else:
                outcome = engine.run_graph(plan if seed is None else plan.model_copy(update={"seed": seed}))
        res.ok, res.run_id, res.image = outcome.ok, outcome.run_id, outcome.image
        res.total_nodes, res.cached_nodes, res.failed_nodes = outcome.total_nodes, outcome.cached_nodes, outcome.failed
        if not outcome.ok:
            res.error = "; ".join(f"{k}: {v}" for k, v in outcome.failed.items()) or "run failed"
    except RunCancelled as err:
        res.error, res.run_id = str(err), err.run_id
    except Exception as err:  # noqa: BLE001 - one item's failure (bad file, planner error, crash) is its own
        res.error = f"{type(err).__name__}: {err}" if not isinstance(err, UserError) else str(err)
        res.error = res.error.splitlines()[0][:500] if res.error else type(err).__name__
    res.seconds = round(time.perf_counter() - t0, 4)
    return res


def run_batch(
    engine: Engine,
    items: list[BatchItem],
    *,
    concurrency: int = 1,
    seed: int | None = None,
    out: str | Path | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
) -> BatchSummary:
    """Run every item; write one JSONL line per finished item to ``out``; return the summary."""
    if not 1 <= concurrency <= 64:
        raise UserError(f"concurrency {concurrency} is out of range 1..64")
    t0 = time.perf_counter()
    results: list[ItemResult] = []
    write_lock = threading.Lock()
    fh = None
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fh = open(out, "w", encoding="utf-8")
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="batch")
    futures: set = set()
    # back-pressure: at most `window` items admitted at once (each becomes a graph only when it starts), so a
    # 10,000-prompt batch never holds 10,000 graphs, futures or run records at a time
    window = 2 * concurrency  # one waiting item per worker: a worker never idles between items
    pending = iter(items)
    try:
        with pool:
            for item in itertools.islice(pending, window):
                futures.add(pool.submit(_run_item, engine, item, seed))
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for item in itertools.islice(pending, len(done)):
                    futures.add(pool.submit(_run_item, engine, item, seed))
                for fut in done:
                    _collect(fut.result(), results, write_lock, fh, on_result)
    except KeyboardInterrupt:  # Ctrl-C: items not started never start; running ones end cancelled
        for fut in futures:
            fut.cancel()
        for run_id in engine.active_runs():
            engine.cancel(run_id)
        pool.shutdown(wait=True)
        raise
    finally:
        if fh is not None:
            fh.close()
    results.sort(key=lambda r: r.index)
    return BatchSummary(results=results, seconds=time.perf_counter() - t0, out=str(out) if out else None)


def _collect(res: ItemResult, results: list, write_lock, fh, on_result) -> None:
    with write_lock:
        results.append(res)
        if fh is not None:
            fh.write(json.dumps(asdict(res), ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
    if on_result is not None:
        on_result(res)
