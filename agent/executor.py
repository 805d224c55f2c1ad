"""The executor: runs a validated graph, batching compatible calls, caching by content, expanding loops.

How a run goes:

1. ``validate_graph`` checks the whole graph before any work (tools, versions, references, types, cycles).
2. A node becomes *ready* when every node it refers to has finished. Its inputs are resolved to their
   encoded form (artifacts by hash), its seed derived from the run seed and its id, and its cache key computed
   over tool, version, model identity, inputs and seed. A cache hit finishes it at once, once the store has
   verified the artifacts it names (a damaged or missing one makes it a miss: ``cache_invalid``, then it runs).
3. Ready misses queue per (tool, batch key). Whenever the tool's resource is free, up to ``max_batch`` queued
   nodes go to the tool in one ``run`` call, in a worker thread. Tools on the ``gpu`` resource run one call at
   a time, so while the GPU is busy the next batch fills up; ``cpu`` tools run beside it.
4. A loop node expands into its body, one iteration at a time (ids ``<loop>.i<k>.<local>``), until its score
   reaches the threshold or its budget ends; it finishes with the best state seen.

Every step is an event (started, finished, cached, cache_invalid, failed, skipped, loop_iteration) written to the run record
and passed to ``on_event`` (the progress bar, the HTTP event stream).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from PIL import Image as PILImage

from agent.graph import Graph, LoopNode, ToolNode, derive_seed, iter_refs, parse_ref, validate_graph
from agent.store import ArtifactError, RunRecord, Store, canonical_json, image_digest, sha256_hex
from tools.base import Registry, Tool


class TransientError(RuntimeError):
    """Raised by a tool for a failure worth retrying (a busy server, a dropped connection)."""


class NodeFailed(RuntimeError):
    def __init__(self, node_id: str, message: str):
        self.node_id = node_id
        super().__init__(f"node '{node_id}' failed: {message}")


@dataclass
class RunResult:
    output: Any
    outputs: dict[str, dict]
    total_nodes: int
    cached_nodes: int
    failed: dict[str, str]
    skipped: list[str]
    seconds: float
    loops: dict[str, list[dict]]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


@dataclass
class _Item:
    node_id: str
    inputs: dict  # encoded: artifacts as {"$artifact": sha, "kind": "image", "size": [w, h]}
    key: str


@dataclass
class _Loop:
    node: LoopNode
    best: dict
    best_score: float
    iteration: int = 0
    pending: int = 0
    trace: list[dict] = field(default_factory=list)


class Executor:
    def __init__(
        self,
        registry: Registry,
        store: Store,
        *,
        keep_going: bool = False,
        use_cache: bool = True,
        cpu_slots: int = 4,
        retries: int = 2,
        on_event: Callable[[dict], None] | None = None,
    ):
        self.registry = registry
        self.store = store
        self.keep_going = keep_going
        self.use_cache = use_cache
        self.slots = {"gpu": 1, "cpu": cpu_slots, "io": 2}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self.retries = retries
        self.on_event = on_event
        self._images: OrderedDict[str, PILImage.Image] = OrderedDict()
        self._images_lock = threading.Lock()
        self._unwritten: dict[str, PILImage.Image] = {}
        self._identity: dict[str, str] = {}

    def run(self, graph: Graph, record: RunRecord | None = None) -> RunResult:
        """Run the graph. Model ("gpu") calls run on *this* thread while the scheduler runs beside it: torch keeps
        per-thread state (CUDA handles, OpenMP teams), and calls from a fresh worker thread measured up to 1.5×
        slower on CPU than the same calls made directly."""
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        box: dict = {}

        def schedule() -> None:
            try:
                box["result"] = asyncio.run(self.run_async(graph, record, caller_jobs=jobs))
            except BaseException as err:  # noqa: BLE001 - re-raised on the calling thread
                box["error"] = err
            finally:
                jobs.put(None)

        threading.Thread(target=schedule, name="scenewright-scheduler", daemon=True).start()
        while (job := jobs.get()) is not None:
            job()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def close(self) -> None:
        """Stop the worker threads (they also end with the process)."""
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        self._pools.clear()

    # --- the scheduler ---------------------------------------------------------------------------------------
    async def run_async(self, graph: Graph, record: RunRecord | None = None, caller_jobs=None) -> RunResult:
        self._caller_jobs = caller_jobs
        dag = validate_graph(graph, self.registry)
        self._record, self._seed, self._t0 = record, graph.seed, time.perf_counter()
        self._nodes: dict[str, ToolNode | LoopNode] = {n.id: n for n in graph.nodes}
        self._waiting = {n: dag.in_degree(n) for n in dag.nodes}
        self._dependents: dict[str, list[str]] = {n: list(dag.successors(n)) for n in dag.nodes}
        self._outputs: dict[str, dict] = {}
        self._queues: dict[tuple, deque[_Item]] = OrderedDict()
        self._busy: dict[str, int] = defaultdict(int)
        self._loops: dict[str, _Loop] = {}
        self._owner: dict[str, str] = {}  # body node id -> loop id
        self._failed: dict[str, str] = {}
        self._skipped: list[str] = []
        self._stop = False
        self._total = self._cached = 0
        self._emit({"event": "run_started", "nodes": sum(isinstance(n, ToolNode) for n in graph.nodes)})

        self._ready = deque(n for n, d in self._waiting.items() if d == 0)
        inflight: set[asyncio.Task] = set()
        task_images: dict[asyncio.Task, list[str]] = {}  # artifact writes in flight → the images they hold
        while True:
            while self._ready and not self._stop:  # a queue, not recursion: cache hits can chain for 10^5 nodes
                self._make_ready(self._ready.popleft())
            if not self._stop:
                inflight |= self._dispatch()
            if not inflight:
                break
            done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                stage, tool, items, outs, error = task.result()
                if stage == "ran":
                    self._busy[tool.resource] -= 1
                    writer = self._finish_batch(tool, items, outs, error)
                    if writer is not None:
                        inflight.add(writer[0])
                        task_images[writer[0]] = writer[1]
                elif error is not None:  # the artifacts could not be written (a full disk): fail those nodes
                    for it in items:
                        self._fail(it.node_id, tool.name, error)
                else:
                    self.store.cache_put_many(outs)  # only now: a cache row never points at a missing file
                    for digest in task_images.pop(task, ()):
                        self._unwritten.pop(digest, None)

        seconds = time.perf_counter() - self._t0
        unfinished = [n for n in self._nodes if n not in self._outputs and n not in self._failed]
        if not self._failed and unfinished:  # cannot happen for a validated DAG; fail loudly if it does
            self._failed[unfinished[0]] = "never became ready"
        self._emit({"event": "run_finished", "ok": not self._failed, "seconds": round(seconds, 4)})
        out_ref = parse_ref({"ref": graph.output})
        output = self._outputs.get(out_ref[0], {}).get(out_ref[1]) if out_ref else None
        return RunResult(
            output=output,
            outputs=self._outputs,
            total_nodes=self._total,
            cached_nodes=self._cached,
            failed=dict(self._failed),
            skipped=[n for n in unfinished if n not in self._failed],
            seconds=seconds,
            loops={k: v.trace for k, v in self._loops.items()},
        )

    def _make_ready(self, node_id: str) -> None:
        node = self._nodes[node_id]
        if isinstance(node, LoopNode):
            self._loop_start(node)
            return
        tool = self.registry.get(node.tool)
        inputs = self._resolve(node.inputs)
        if "seed" in tool.Input.model_fields and "seed" not in inputs:
            inputs["seed"] = derive_seed(self._seed, node_id)
        key = self._cache_key(tool, inputs)
        self._total += 1
        if self.use_cache:
            hit = self.store.cache_get(key)
            if hit is not None and not self._hit_intact(node_id, tool.name, key, hit):
                hit = None  # a damaged or missing artifact: a miss, the node runs again and rewrites it
            if hit is not None:
                self._cached += 1
                self._emit({"event": "cached", "node": node_id, "tool": tool.name, "key": key[:16], "outputs": hit})
                self._complete(node_id, hit)
                return
        else:
            self._emit({"event": "cache_bypass", "node": node_id, "tool": tool.name})
        queue_key = (tool.name, tool.batch_key(inputs))
        self._queues.setdefault(queue_key, deque()).append(_Item(node_id, inputs, key))

    def _hit_intact(self, node_id: str, tool: str, key: str, outputs: dict) -> bool:
        """Accept a cache hit only if every artifact it names is on disk with the pixels its hash says (the store
        verifies; images already in memory were made or checked by this process). Otherwise one
        ``cache_invalid`` event, and the hit is refused."""
        for digest in _artifact_digests(outputs):
            if digest in self._unwritten or digest in self._images:
                continue
            try:
                image = self.store.check_artifact(digest)
            except (ArtifactError, ValueError) as err:
                self._emit({"event": "cache_invalid", "node": node_id, "tool": tool, "key": key[:16],
                            "artifact": str(digest)[:64], "error": str(err)})
                return False
            if image is not None:
                self._remember(digest, image)  # decoded anyway: consumers read it from memory
        return True

    def _dispatch(self) -> set[asyncio.Task]:
        tasks = set()
        for (name, _), group in self._queues.items():
            tool = self.registry.get(name)
            while group and self._busy[tool.resource] < self.slots.get(tool.resource, 1):
                items = [group.popleft() for _ in range(min(tool.max_batch, len(group)))]
                self._busy[tool.resource] += 1
                tasks.add(asyncio.create_task(self._run_batch(tool, items)))
        return tasks

    async def _run_batch(self, tool: Tool, items: list[_Item]):
        for it in items:
            self._emit({"event": "started", "node": it.node_id, "tool": tool.name, "batch": len(items)})
        attempt = 0
        while True:
            t0 = time.perf_counter()
            try:
                outs = await self._in_worker(tool.resource, self._call_tool, tool, items)
                ms = (time.perf_counter() - t0) * 1000
                return "ran", tool, items, [(o, ms) for o in outs], None
            except TransientError as err:
                attempt += 1
                if attempt > self.retries:
                    return "ran", tool, items, None, f"{err} (gave up after {self.retries} retries)"
                self._emit({"event": "retry", "tool": tool.name, "attempt": attempt, "error": str(err)})
                await asyncio.sleep(0.2 * 2**attempt)
            except Exception as err:  # noqa: BLE001 - a tool failure becomes a node failure, never a crash
                if type(err).__name__ == "OutOfMemoryError" and len(items) > 1 and attempt == 0:
                    attempt += 1  # free what we can and retry once in halves
                    tool.free_memory()
                    half = len(items) // 2
                    try:
                        first = await self._in_worker(tool.resource, self._call_tool, tool, items[:half])
                        second = await self._in_worker(tool.resource, self._call_tool, tool, items[half:])
                        ms = (time.perf_counter() - t0) * 1000
                        return "ran", tool, items, [(o, ms) for o in first + second], None
                    except Exception as err2:  # noqa: BLE001
                        err = err2
                return "ran", tool, items, None, _describe(err)

    async def _write_artifacts(self, tool: Tool, items: list[_Item], rows: list, images: dict):
        """PNG-encode and write new images off the critical path; the cache rows follow once they are on disk."""
        try:
            await self._in_worker("io", lambda: [self.store.put_image(im, digest) for digest, im in images.items()])
            return "written", tool, items, rows, None
        except Exception as err:  # noqa: BLE001 - e.g. a full disk: the nodes fail, the run reports it
            return "written", tool, items, None, _describe(err)

    async def _in_worker(self, resource: str, fn, *args):
        """Run ``fn`` off the event loop: model calls on the thread that called ``run`` (or, under ``run_async``,
        one long-lived thread per resource), everything else on the resource's own small pool."""
        if resource == "gpu" and self._caller_jobs is not None:
            loop = asyncio.get_running_loop()
            future = loop.create_future()

            def job() -> None:
                try:
                    value = fn(*args)
                except BaseException as err:  # noqa: BLE001 - handed back to the scheduler
                    loop.call_soon_threadsafe(future.set_exception, err)
                else:
                    loop.call_soon_threadsafe(future.set_result, value)

            self._caller_jobs.put(job)
            return await future
        pool = self._pools.get(resource)
        if pool is None:
            pool = self._pools[resource] = ThreadPoolExecutor(
                max_workers=self.slots.get(resource, 1), thread_name_prefix=f"scenewright-{resource}"
            )
        return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(*args))

    def _call_tool(self, tool: Tool, items: list[_Item]) -> list[BaseModel]:
        """Decode, validate, run — in a worker thread, so the event loop keeps scheduling."""
        batch = []
        for it in items:
            try:
                batch.append(tool.Input.model_validate(self._decode(it.inputs)))
            except ValidationError as err:
                e = err.errors()[0]
                where = ".".join(str(p) for p in e["loc"])
                raise ValueError(f"input '{where}' of node '{it.node_id}': {e['msg']}") from None
        outs = tool.run(batch)
        if len(outs) != len(batch) or not all(isinstance(o, tool.Output) for o in outs):
            raise RuntimeError(f"tool '{tool.name}' returned {len(outs)} results of the wrong type for {len(batch)} inputs")
        return outs

    def _finish_batch(self, tool: Tool, items: list[_Item], outs, error: str | None):
        """Hand a batch's outputs to the nodes waiting on them at once; PNG writing follows in the background.

        Images are addressed by a hash of their pixels, which is quick, so consumers never wait for PNG encoding
        (measured at 60–70 ms per 512 px image, on the critical path between a repaint and its check)."""
        if error is not None:
            for it in items:
                self._fail(it.node_id, tool.name, error)
            return None
        rows, images = [], {}
        for it, (out, ms) in zip(items, outs):
            encoded = self._encode(out, images)
            rows.append((it.key, tool.name, encoded))
            self._emit(
                {"event": "finished", "node": it.node_id, "tool": tool.name, "ms": round(ms, 3),
                 "batch": len(items), "key": it.key[:16], "outputs": encoded}
            )
            self._complete(it.node_id, encoded)
        if not images:
            self.store.cache_put_many(rows)
            return None
        self._unwritten.update(images)  # readable by consumers until the PNG is on disk
        return asyncio.create_task(self._write_artifacts(tool, items, rows, images)), list(images)

    def _complete(self, node_id: str, outputs: dict) -> None:
        self._outputs[node_id] = outputs
        for dep in self._dependents.get(node_id, ()):
            self._waiting[dep] -= 1
            if self._waiting[dep] == 0:
                self._ready.append(dep)
        loop_id = self._owner.get(node_id)
        if loop_id is not None:
            loop = self._loops[loop_id]
            loop.pending -= 1
            if loop.pending == 0:
                self._loop_iteration_done(loop)

    def _fail(self, node_id: str, tool: str, error: str) -> None:
        self._failed[node_id] = error
        self._emit({"event": "failed", "node": node_id, "tool": tool, "error": error})
        if not self.keep_going:
            self._stop = True
            return
        # keep going: everything downstream of the failure is skipped, independent branches go on
        stack = list(self._dependents.get(node_id, ()))
        owner = self._owner.get(node_id)
        if owner:
            self._failed[owner] = f"body node '{node_id}' failed"
            stack += self._dependents.get(owner, ())
        seen = set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            self._skipped.append(n)
            self._emit({"event": "skipped", "node": n, "because": node_id})
            stack.extend(self._dependents.get(n, ()))

    # --- loops -----------------------------------------------------------------------------------------------
    def _loop_start(self, node: LoopNode) -> None:
        state = self._resolve(node.state)
        loop = _Loop(node=node, best=state, best_score=float(state[node.score]))
        loop.trace.append({"iteration": 0, "score": loop.best_score, "kept": True})
        self._loops[node.id] = loop
        self._loop_continue(loop)

    def _loop_continue(self, loop: _Loop) -> None:
        node = loop.node
        if loop.best_score >= node.threshold or loop.iteration >= node.max_iters:
            self._emit({"event": "loop_finished", "node": node.id, "iterations": loop.iteration,
                        "best_score": loop.best_score})
            self._complete(node.id, {**loop.best, "iterations": loop.iteration, "trace": loop.trace})
            return
        loop.iteration += 1
        prefix = f"{node.id}.i{loop.iteration}."
        local = {b.id for b in node.body}
        new_ids = []
        for body in node.body:
            nid = prefix + body.id
            inputs = _rewrite(body.inputs, prefix, local, loop.best)
            self._nodes[nid] = ToolNode(id=nid, tool=body.tool, version=body.version, inputs=inputs)
            deps = {src for src, _ in iter_refs(inputs) if src.startswith(prefix)}
            self._waiting[nid] = len(deps)
            for d in deps:
                self._dependents.setdefault(d, []).append(nid)
            self._owner[nid] = node.id
            new_ids.append(nid)
        loop.pending = len(new_ids)
        self._emit({"event": "loop_expanded", "node": node.id, "iteration": loop.iteration, "nodes": len(new_ids)})
        self._ready.extend(nid for nid in new_ids if self._waiting[nid] == 0)

    def _loop_iteration_done(self, loop: _Loop) -> None:
        node, prefix = loop.node, f"{loop.node.id}.i{loop.iteration}."
        new = dict(loop.best)
        for key, target in node.update.items():
            src, _, out = target.partition(".")
            new[key] = self._outputs[prefix + src][out]
        score = float(new[node.score])
        kept = score > loop.best_score
        if kept:
            loop.best, loop.best_score = new, score
        else:  # the dropped iteration's memory stays (what was tried), its image and score do not
            loop.best = {**loop.best, **{k: new[k] for k in node.carry}}
        loop.trace.append({"iteration": loop.iteration, "score": score, "kept": kept})
        self._emit({"event": "loop_iteration", "node": node.id, "iteration": loop.iteration, "score": score,
                    "kept": kept})
        self._loop_continue(loop)

    # --- values ----------------------------------------------------------------------------------------------
    def _resolve(self, value: Any) -> Any:
        """Replace references by the producing node's (encoded) output value."""
        ref = parse_ref(value)
        if ref:
            return self._outputs[ref[0]][ref[1]]
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        return value

    def _cache_key(self, tool: Tool, inputs: dict) -> str:
        ident = self._identity.get(tool.name)
        if ident is None:
            ident = self._identity[tool.name] = canonical_json(tool.identity())
        return sha256_hex(f"{tool.name}\n{tool.version}\n{ident}\n{canonical_json(inputs)}".encode())

    def _encode(self, out: BaseModel, images: dict) -> dict:
        """Outputs as JSON-able values; each image becomes an artifact reference and is collected in ``images``."""
        return {k: self._encode_value(v, images) for k, v in out.model_dump().items()}

    def _encode_value(self, value: Any, images: dict) -> Any:
        if isinstance(value, PILImage.Image):
            value = value if value.mode == "RGB" else value.convert("RGB")
            digest = image_digest(value)
            images[digest] = value
            self._remember(digest, value)  # consumers read it from memory, not from the PNG
            return {"$artifact": digest, "kind": "image", "size": [value.width, value.height]}
        if isinstance(value, dict):
            return {k: self._encode_value(v, images) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._encode_value(v, images) for v in value]
        return value

    def _decode(self, value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("kind") == "image" and "$artifact" in value:
                return self._load_image(value["$artifact"])
            return {k: self._decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._decode(v) for v in value]
        return value

    def _load_image(self, digest: str) -> PILImage.Image:
        pending = self._unwritten.get(digest)
        if pending is not None:
            return pending.copy()
        with self._images_lock:
            image = self._images.get(digest)
            if image is not None:
                self._images.move_to_end(digest)
                return image.copy()
        image = self.store.get_image(digest)
        self._remember(digest, image)
        return image.copy()

    def _remember(self, digest: str, image: PILImage.Image) -> None:
        with self._images_lock:
            self._images[digest] = image
            self._images.move_to_end(digest)
            while len(self._images) > 64:
                self._images.popitem(last=False)

    def load_image(self, encoded: dict) -> PILImage.Image:
        return self._load_image(encoded["$artifact"])

    def _emit(self, event: dict) -> None:
        event["t"] = round(time.perf_counter() - self._t0, 6)
        if self._record is not None:
            self._record.event(event)
        if self.on_event is not None:
            self.on_event(event)


def _rewrite(value: Any, prefix: str, local: set[str], state: dict) -> Any:
    """Instantiate a loop body input: ``$state.k`` becomes the current best value, local refs get the prefix."""
    ref = parse_ref(value)
    if ref:
        src, out = ref
        if src == "$state":
            return state[out]
        if src in local:
            return {"ref": f"{prefix}{src}.{out}"}
        return value
    if isinstance(value, dict):
        return {k: _rewrite(v, prefix, local, state) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, prefix, local, state) for v in value]
    return value


def _artifact_digests(value: Any):
    """The artifact hashes an encoded value refers to."""
    if isinstance(value, dict):
        if "$artifact" in value:
            yield value["$artifact"]
        else:
            for v in value.values():
                yield from _artifact_digests(v)
    elif isinstance(value, list):
        for v in value:
            yield from _artifact_digests(v)


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
