"""The shared scheduler: one per engine, holding the ready nodes of *every* concurrent run.

Ready nodes that missed the cache arrive here from their run's executor as :class:`Entry` objects and wait in
per-(tool, batch key) queues, whichever run they belong to. Whenever a tool's resource has a free slot, up to
``max_batch`` queued entries go to the tool in one ``run`` call, so a GPU batch can hold nodes of several runs
(per-node seeds make each node's result independent of its neighbours). There is one set of resources per
process: ``gpu`` has one slot however many runs want it, ``cpu`` and ``io`` a few.

The batching window: when more than one run is attached and a queue holds fewer than ``max_batch`` entries, the
scheduler waits up to ``window_ms`` after the oldest entry arrived before it dispatches, so concurrent runs that
reach the same step a few milliseconds apart meet in one call. A lone run never waits.

Where calls run: model ("gpu") calls run on the thread of a run that has an entry in the batch and is waiting
(it waits for that batch anyway; the first such run, unless it is busy with a call of its own). torch keeps
per-thread state (CUDA handles, OpenMP teams): model calls from a fresh worker thread once measured up to 1.5×
slower on CPU than calls from the thread that loaded the model (on a heavily loaded 2-core machine it was the other
way round: the main thread's OpenMP team spun against other processes). ``cpu`` and ``io`` calls run on small
long-lived pools, except that a run about to wait runs one of its own CPU batches itself (a chain of small nodes
then never crosses threads). Dispatch happens inline, where the queues change (a submit, a call ending); a thread of
its own only wakes up when a batching window ends.

Results go back to each entry's own run (its inbox), grouped per run; the scheduler never touches run state.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from tools.base import Cancelled, Tool, ToolContext, TransientError

CANCELLED = "cancelled"  # the error text of a batch that stopped because every run in it was cancelled


@dataclass(frozen=True)
class EncodedOutput:
    """A node's outputs already as JSON-able values (images as artifact references in the store): what a remote
    worker (agent/ray_backend.py) returns; the executor records it as it is instead of encoding a tool Output."""

    value: dict


@dataclass(eq=False)
class Entry:
    """One node waiting for its tool: its run's handle (``owner``: run, inbox, decoder), id, encoded inputs, key."""

    owner: Any
    node_id: str
    inputs: dict
    key: str
    window: float | None = None  # seconds this entry may wait for company (its engine's setting; None: the default)
    enqueued: float = field(default_factory=time.monotonic)


class Scheduler:
    def __init__(self, *, gpu_slots: int = 1, cpu_slots: int = 4, io_slots: int = 2, window_ms: float = 5.0,
                 retries: int = 2):  # fmt: skip
        self.slots = {"gpu": gpu_slots, "cpu": cpu_slots, "io": io_slots}
        self.window = max(0.0, window_ms) / 1000
        self.retries = retries
        self._cond = threading.Condition()
        self._queues: OrderedDict[tuple, deque[Entry]] = OrderedDict()
        self._tools: dict[tuple, Tool] = {}
        self._busy: dict[str, int] = defaultdict(int)
        self._attached = 0
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._thread: threading.Thread | None = None
        self._wait: float | None = None  # seconds until the earliest batching window ends (None: none pending)
        self._closed = False
        # the last tool calls (tool, size, runs, ms): benchmarks and tests read it; bounded for long-lived servers
        self.batches: deque[dict] = deque(maxlen=10_000)

    # --- runs come and go ------------------------------------------------------------------------------------
    def attach(self, run) -> bool:
        """Count ``run`` as active (its nodes may come soon: worth a batching window); False if it already is."""
        with self._cond:
            if run._attached is self:
                return False
            run._attached = self
            self._attached += 1
            return True

    def detach(self, run) -> None:
        with self._cond:
            if run._attached is self:
                run._attached = None
                self._attached -= 1
                self._cond.notify()

    def submit(self, tool: Tool, batch_key: Hashable, entries: list[Entry], *, caller=None) -> None:
        """Queue entries and start every batch that may start now. ``caller``: the owner whose thread is calling
        (it is about to wait, so one CPU batch of its own runs on it instead of crossing to a pool thread)."""
        with self._cond:
            qkey = (id(tool), tool.name, batch_key)
            self._tools[qkey] = tool
            self._queues.setdefault(qkey, deque()).extend(entries)
            launch: list = []
            self._wait = self._take(launch)
            if self._wait is not None:
                self._ensure_timer()
        self._launch_all(launch, caller)

    def _ensure_timer(self) -> None:
        """The one thread that wakes up when a batching window ends (dispatch is otherwise done inline)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="scenewright-scheduler", daemon=True)
            self._thread.start()
        self._cond.notify()

    def withdraw(self, owner) -> int:
        """Take a stopped run's queued entries back; returns how many (those already dispatched will report)."""
        n = 0
        with self._cond:
            for q in self._queues.values():
                keep = [e for e in q if e.owner is not owner]
                n += len(q) - len(keep)
                if len(keep) != len(q):
                    q.clear()
                    q.extend(keep)
        return n

    def io(self, fn, done) -> None:
        """Run ``fn`` on the io pool; ``done(value, error)`` is called from that thread when it ends."""

        def job():
            try:
                value = fn()
            except Exception as err:  # noqa: BLE001 - handed to the caller (e.g. a full disk)
                done(None, err)
            else:
                done(value, None)

        self._pool("io").submit(job)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        self._pools.clear()

    # --- dispatching -----------------------------------------------------------------------------------------
    def _pool(self, resource: str) -> ThreadPoolExecutor:
        pool = self._pools.get(resource)
        if pool is None:
            with self._cond:
                pool = self._pools.get(resource)
                if pool is None:
                    pool = self._pools[resource] = ThreadPoolExecutor(
                        max_workers=self.slots.get(resource, 1), thread_name_prefix=f"scenewright-{resource}"
                    )
        return pool

    def _loop(self) -> None:
        while True:
            launch: list[tuple[Tool, list[Entry]]] = []
            with self._cond:
                while not launch:
                    if self._closed:
                        return
                    if self._wait is None:
                        self._cond.wait()
                    else:
                        self._cond.wait(self._wait)
                    self._wait = self._take(launch)
            self._launch_all(launch, None)

    def _launch_all(self, launch: list, caller) -> None:
        inline = caller is not None
        for tool, batch in launch:
            if tool.resource == "gpu":  # on a waiting run's thread (one not busy with a call of its own)
                owner = next((e.owner for e in batch if not e.owner.busy), batch[0].owner)
                owner.post(("job", lambda t=tool, b=batch: self._run_batch(t, b)))
            elif inline and batch[0].owner is caller:
                inline = False  # the caller runs one of its own CPU batches itself: no thread hand-off
                caller.post(("job", lambda t=tool, b=batch: self._run_batch(t, b)))
            else:
                self._pool(tool.resource).submit(self._run_batch, tool, batch)

    def _take(self, launch: list) -> float | None:
        """Move every batch that may start now into ``launch``; return how long to wait for the next one."""
        now, wait = time.monotonic(), None
        for qkey in list(self._queues):
            q = self._queues[qkey]
            if not q:
                del self._queues[qkey]
                continue
            tool = self._tools[qkey]
            limit = self.slots.get(tool.resource, 1)
            while q and self._busy[tool.resource] < limit:
                window = self.window if q[0].window is None else q[0].window
                if window and self._attached > 1 and len(q) < tool.max_batch:
                    due = q[0].enqueued + window
                    if now < due:  # let the other runs' nodes of this kind arrive
                        wait = due - now if wait is None else min(wait, due - now)
                        break
                batch = [q.popleft() for _ in range(min(tool.max_batch, len(q)))]
                self._busy[tool.resource] += 1
                launch.append((tool, batch))
        return wait

    # --- one tool call ---------------------------------------------------------------------------------------
    def _run_batch(self, tool: Tool, batch: list[Entry]) -> None:
        groups: dict[Any, list[int]] = {}
        for i, e in enumerate(batch):
            groups.setdefault(e.owner, []).append(i)
        interrupt = None
        t0 = time.perf_counter()
        try:
            outs, error = self._call(tool, batch, groups)
        except KeyboardInterrupt as err:  # Ctrl-C while this thread ran the call: the batch ends cancelled
            outs, error, interrupt = None, CANCELLED, err
        ms = (time.perf_counter() - t0) * 1000
        launch: list = []
        with self._cond:
            self._busy[tool.resource] -= 1
            self.batches.append({"tool": tool.name, "tool_id": id(tool), "size": len(batch), "runs": len(groups),
                                 "ms": round(ms, 3)})  # fmt: skip
            self._wait = self._take(launch)  # the freed slot may start the next batch at once
            if self._wait is not None:
                self._ensure_timer()
        self._launch_all(launch, None)
        for owner, idx in groups.items():
            owner.post(("done", tool, [batch[i] for i in idx], None if outs is None else [outs[i] for i in idx],
                        error, ms))  # fmt: skip
        if interrupt is not None:
            raise interrupt

    def _call(self, tool: Tool, batch: list[Entry], groups: dict) -> tuple[list | None, str | None]:
        owners = list(groups)
        runs = [o.run.id for o in owners if o.run.id] if len(owners) > 1 else None
        for owner, idx in groups.items():
            for i in idx:
                ev = {"event": "started", "node": batch[i].node_id, "tool": tool.name, "batch": len(batch)}
                if runs:
                    ev["runs"] = runs  # this call serves several runs at once
                owner.run.emit(ev)

        def progress(step: int, total: int) -> None:
            for owner, idx in groups.items():
                owner.run.emit({"event": "progress", "node": batch[idx[0]].node_id, "nodes": len(idx),
                                "tool": tool.name, "step": int(step), "total": int(total)})  # fmt: skip

        ctx = ToolContext(
            progress=progress,
            cancelled=lambda: all(o.run.cancelled for o in owners),
            recorders=[e.owner.run.recorder for e in batch],
        )
        attempt = 0
        while True:
            try:
                return self._invoke(tool, batch, ctx), None
            except Cancelled:
                return None, CANCELLED
            except TransientError as err:
                attempt += 1
                if attempt > self.retries:
                    return None, f"{_describe(err)} (gave up after {self.retries} retries)"
                for o in owners:
                    o.run.emit({"event": "retry", "tool": tool.name, "attempt": attempt, "error": _describe(err)})
                time.sleep(0.2 * 2**attempt)
            except Exception as err:  # noqa: BLE001 - a tool failure becomes a node failure, never a crash
                if type(err).__name__ == "OutOfMemoryError" and len(batch) > 1 and attempt == 0:
                    attempt += 1  # free what we can and retry once in halves
                    for o in owners:
                        o.run.emit({"event": "oom_retry", "tool": tool.name, "batch": len(batch),
                                    "halves": [len(batch) // 2, len(batch) - len(batch) // 2]})  # fmt: skip
                    tool.free_memory()
                    half = len(batch) // 2
                    try:
                        first = self._invoke(tool, batch[:half], ctx.part(range(half)))
                        second = self._invoke(tool, batch[half:], ctx.part(range(half, len(batch))))
                        return first + second, None
                    except Cancelled:
                        return None, CANCELLED
                    except Exception as err2:  # noqa: BLE001
                        err = err2
                for o, idx in groups.items():
                    o.run.log_exception(f"{tool.name} [{', '.join(batch[i].node_id for i in idx)}]", err)
                return None, _describe(err)

    @staticmethod
    def _invoke(tool: Tool, batch: list[Entry], ctx: ToolContext) -> list[BaseModel]:
        """Decode, validate, run: in a worker thread (or a waiting run's), never on the dispatcher."""
        inputs = []
        for e in batch:
            try:
                inputs.append(tool.Input.model_validate(e.owner.decode(e.inputs)))
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"input '{where}' of node '{e.node_id}': {first['msg']}") from None
        outs = tool.run(inputs, ctx)
        if len(outs) != len(inputs) or not all(isinstance(o, tool.Output) for o in outs):
            raise RuntimeError(
                f"tool '{tool.name}' returned {len(outs)} results of the wrong type for {len(inputs)} inputs"
            )
        return outs


_PROCESS: Scheduler | None = None
_PROCESS_LOCK = threading.Lock()


def process_scheduler() -> Scheduler:
    """The scheduler every engine of this process shares: one set of resources (one GPU slot) however many
    engines and runs there are, so nothing ever calls two models on one device at once."""
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None:
            _PROCESS = Scheduler()
        return _PROCESS


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
