"""A run: what belongs to one request, passed explicitly to the planner and the executor.

The :class:`~agent.api.Engine` lives long (registry, planner client, models, the scheduler and its resources); a
:class:`Run` lives for one request: its record, its LLM recorder, its event sink, its seed, its failure policy and
its cancellation flag. Nothing of a run is ever set on a shared object, so any number of runs can share one engine
at the same time: each run's events, ``llm.jsonl`` and cancellation are its own.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.store import RunRecord, canonical_json


class RunCancelled(Exception):
    """The run was cancelled (Ctrl-C, ``POST /api/runs/{id}/cancel``). Its record says ``cancelled``; finished nodes
    are cached, so ``scenewright resume RUN_ID`` finishes it with the same result."""

    def __init__(self, run_id: str | None):
        self.run_id = run_id
        super().__init__(f"run {run_id} was cancelled" if run_id else "the run was cancelled")


class RunRecorder:
    """Records LLM exchanges into the run's ``llm.jsonl``; replays them when given earlier exchanges."""

    def __init__(self, record: RunRecord | None, replay: list[dict] | None = None):
        self.record_dir = record
        self._replay = {(r["kind"], canonical_json(r["request"])): r["response"] for r in (replay or [])}
        self._lock = threading.Lock()

    def record(self, kind: str, request: dict, response: dict) -> None:
        if self.record_dir is not None:
            with self._lock:
                self.record_dir.append_jsonl("llm.jsonl", {"kind": kind, "request": request, "response": response})

    def lookup(self, kind: str, request: dict) -> dict | None:
        return self._replay.get((kind, canonical_json(request)))


@dataclass(eq=False)
class Run:
    """One request's context. ``emit`` is safe from any thread (per-step progress comes from a worker thread)."""

    record: RunRecord | None = None
    seed: int = 0
    on_event: Callable[[dict], None] | None = None
    recorder: object | None = None  # a planners.base.Recorder; default: this run's llm.jsonl
    keep_going: bool = False
    use_cache: bool = True
    write_cache: bool = True
    notices: list[str] = field(default_factory=list)  # what planning left out (cuts, caps): env.json, the outcome
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _t0: float = field(default_factory=time.perf_counter, repr=False)
    _wakeup: Callable[[], None] | None = field(default=None, repr=False)  # set by the executor while it waits
    _attached: object | None = field(default=None, repr=False)  # the scheduler this run counts as active on
    _committer: object | None = field(default=None, repr=False)  # the executor's cache-and-events commit

    def __post_init__(self) -> None:
        if self.recorder is None:
            self.recorder = RunRecorder(self.record)

    @property
    def id(self) -> str | None:
        return self.record.id if self.record is not None else None

    # --- cancellation ----------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the run to stop: no new node starts, an in-flight model call stops at its next step."""
        self._cancel.set()
        wake = self._wakeup
        if wake is not None:
            wake()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # --- events ----------------------------------------------------------------------------------------------
    def restart_clock(self) -> None:
        self._t0 = time.perf_counter()

    def emit(self, event: dict, *, flush: bool = False) -> None:
        """Append to ``events.jsonl`` (buffered; flushed whenever the executor waits) and call the sink."""
        event["t"] = round(time.perf_counter() - self._t0, 6)
        with self._lock:
            if self.record is not None:
                self.record.event(event, flush=flush)
            if self.on_event is not None:
                self.on_event(event)
        committer = self._committer
        if committer is not None and event["event"] == "progress" and committer.due():
            committer.commit()  # a long call: readers of events.jsonl see its steps (rows first, then events)

    def flush(self) -> None:
        if self.record is not None:
            with self._lock:
                self.record.flush()

    def log_exception(self, where: str, err: BaseException) -> None:
        """The whole traceback into the record's ``log`` file; the terminal and the event keep one line."""
        if self.record is None:
            return
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self._lock:
            with open(self.record.dir / "log", "a", encoding="utf-8") as fh:
                fh.write(f"--- {stamp} {where}\n{text}\n")
