"""The Ray backend: the shared scheduler's tool calls go to pools of Ray actors instead of this process.

Why this shape (``shared/notes/anchors.md`` §B5): a Ray *actor* keeps a model resident, so each model-backed tool
family gets a pool of actors (``num_gpus`` each from the profile's ``[ray]`` table, 0 on the CPU), every actor
loading its models once, on its first call. The driver keeps everything that makes a run reproducible: the graph,
the cache, the run record, the batching (:class:`~agent.scheduler.Scheduler` is unchanged; only where a batch
runs differs). Ray Workflows is deprecated, so durability stays in our store: a lost driver is ``resume``.

- **Routing with model affinity**: a batch goes to an idle actor of its pool that already ran its tool (its model
  is loaded), else to an idle actor, else queues behind the least busy actor that holds the model. CPU tools go
  to the CPU pool (or stay in the driver with ``cpu_actors = 0``).
- **Artifact references only**: inputs and outputs cross as canonical JSON strings; images as
  ``{"$artifact": sha256, …}`` in a :class:`~agent.shared_store.SharedArtifacts` store every worker reaches.
  Nothing we send is a pickled object (Ray transports the strings).
- **Faults**: an actor that dies mid-batch (``ray.kill``, a crashed node) is replaced and the batch goes to
  another actor; per-node seeds make the retried result the same image.
- What a remote call cannot do: stream per-step progress (a batch reports when it ends) or stop mid-call on
  cancel (a cancelled run's queued nodes never start; a call in flight finishes). A VLM tool's LLM exchanges come
  back with its outputs and go into the run's ``llm.jsonl`` as on the local executor.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.api import UserError
from agent.scheduler import EncodedOutput, Entry, Scheduler
from agent.shared_store import SharedArtifacts
from agent.store import artifact_names, atomic_write, canonical_json
from tools.base import Cancelled, Tool, ToolContext, TransientError

ROOT = str(Path(__file__).resolve().parent.parent)  # the checkout actors import agent/ and tools/ from


class RayUnavailable(UserError):
    """Ray is not installed, its cluster cannot be reached or cannot place an actor: one line from the CLI."""


class ActorLost(RuntimeError):
    pass


class OutOfMemoryError(RuntimeError):
    """An actor ran out of device memory: named like torch's, so the scheduler retries the batch in halves."""


def parse_executor(spec: str | None) -> tuple[str, str | None]:
    """``local`` | ``ray`` | ``ray=ADDRESS`` → (kind, address or None). ValueError for anything else."""
    if spec is None or spec == "":
        return "", None
    kind, sep, address = spec.partition("=")
    kind = kind.strip().lower()
    if kind not in ("local", "ray") or (kind == "local" and sep) or (sep and not address.strip()):
        raise ValueError(f"--executor {spec!r}: use local, ray or ray=ADDRESS (e.g. ray=auto, ray=ray://head:10001)")
    return kind, address.strip() or None


def _remote_error(kind: str, message: str) -> Exception:
    """The exception a tool raised in an actor, as the scheduler would see it raised here."""
    if kind == "TransientError":
        return TransientError(message)
    if kind == "Cancelled":
        return Cancelled(message)
    if kind == "OutOfMemoryError":
        return OutOfMemoryError(message)
    if kind == "ValueError":
        return ValueError(message)
    return type(kind if kind.isidentifier() else "RemoteToolError", (RuntimeError,), {})(message)


# --- the actor -----------------------------------------------------------------------------------------------
class _Collect:
    """An actor-side recorder: a tool's LLM exchanges go back with the outputs to the run's own recorder."""

    def __init__(self, index: int, into: list):
        self.index, self.into = index, into

    def record(self, kind: str, request: dict, response: dict) -> None:
        self.into.append([self.index, kind, request, response])

    def lookup(self, kind: str, request: dict) -> dict | None:
        return None


class ToolActor:
    """One Ray actor: the profile's tools (models load on first use and stay), artifacts through the shared store.

    Arguments and results are JSON strings, so what crosses Ray's wire is plain values, never our objects."""

    def __init__(self, profile_json: str, home: str, artifacts: str, pool: str, threads: int):
        if threads:
            try:
                import torch

                torch.set_num_threads(threads)
            except ImportError:
                pass
        from agent.profiles import Profile

        profile = Profile.model_validate_json(profile_json)
        self.profile = profile.model_copy(update={"executor": "local"})  # an actor runs its tools itself
        self.home, self.pool = home, pool
        self.shared = SharedArtifacts(artifacts)
        self.held: list[str] = []  # tools this actor has run: their models are loaded here
        self.calls = 0
        self._engine = None

    def info(self) -> str:
        return json.dumps({"pid": os.getpid(), "pool": self.pool, "held": self.held, "calls": self.calls,
                           "node": _node_ip()})  # fmt: skip

    def run(self, tool_name: str, payload: str) -> str:
        t0 = time.perf_counter()
        try:
            if self._engine is None:
                from agent.api import Engine

                self._engine = Engine(self.profile, home=self.home)
            tool = self._engine.registry.get(tool_name)
            inputs = json.loads(payload)["inputs"]
            batch = [tool.Input.model_validate(self._decode(x)) for x in inputs]
            llm: list = []
            ctx = ToolContext(recorders=[_Collect(i, llm) for i in range(len(batch))])
            outs = tool.run(batch, ctx)
            if len(outs) != len(batch) or not all(isinstance(o, tool.Output) for o in outs):
                raise RuntimeError(f"tool '{tool_name}' returned {len(outs)} results of the wrong type for {len(batch)} inputs")
            encoded = [{k: self._encode(v) for k, v in o.model_dump().items()} for o in outs]
        except Exception as err:  # noqa: BLE001 - the driver turns it back into the tool's failure
            import traceback

            return json.dumps({"error": {"type": type(err).__name__, "message": str(err).strip()[:2000],
                                         "traceback": traceback.format_exc()[-8000:]}})  # fmt: skip
        if tool_name not in self.held:
            self.held.append(tool_name)
        self.calls += 1
        return canonical_json({"outputs": encoded, "llm": llm, "ms": round((time.perf_counter() - t0) * 1000, 3),
                               "held": self.held, "pid": os.getpid()})  # fmt: skip

    def _decode(self, value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("kind") == "image" and "$artifact" in value:
                return self.shared.get_image(value["$artifact"])
            return {k: self._decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._decode(v) for v in value]
        return value

    def _encode(self, value: Any) -> Any:
        from PIL import Image as PILImage

        if isinstance(value, PILImage.Image):
            value = value if value.mode == "RGB" else value.convert("RGB")
            return {"$artifact": self.shared.put_image(value), "kind": "image", "size": [value.width, value.height]}
        if isinstance(value, dict):
            return {k: self._encode(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._encode(v) for v in value]
        return value


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001
        return ""


# --- the driver's side: pools, routing -----------------------------------------------------------------------
@dataclass(eq=False)
class _Actor:
    handle: Any
    name: str
    pool: str
    held: set[str] = field(default_factory=set)
    inflight: int = 0
    calls: int = 0
    alive: bool = True
    pid: int | None = None


class RayPools:
    """The actor pools of one engine, created on the first batch each needs; routes batches with model affinity."""

    def __init__(self, profile, home: Path, *, address: str | None = None):
        self.profile, self.cfg = profile, profile.ray
        self.home = Path(home)
        self.address = address if address is not None else (self.cfg.address or None)
        local_dir = str((self.home / "artifacts").resolve())
        self.shared = SharedArtifacts(self.cfg.store or local_dir)
        self.same_store = not self.cfg.store or (not self.shared.remote and self.shared._root == local_dir)
        gpu = 1.0 if profile.device.startswith("cuda") else 0.0
        self.num_gpus = gpu if self.cfg.num_gpus is None else self.cfg.num_gpus
        self._lock = threading.Condition()
        self._pools: dict[str, list[_Actor]] = {}
        self._serial = 0
        self.lost = 0  # actors that died under a batch (status, tests)
        self.on_dispatch = None  # test hook: called (actor, tool name) once a call is sent
        self._ray = None

    # --- Ray itself ----------------------------------------------------------------------------------------
    def ray(self):
        if self._ray is None:
            try:
                import ray
            except ImportError:
                raise RayUnavailable("executor ray needs Ray: pip install 'scenewright[ray]'") from None
            if not ray.is_initialized():
                try:
                    ray.init(address=self.address, include_dashboard=False, ignore_reinit_error=True,
                             log_to_driver=False, logging_level="ERROR")  # fmt: skip
                except Exception as err:  # noqa: BLE001 - a cluster that is not there is one line
                    raise RayUnavailable(f"cannot reach Ray at {self.address or 'a new local cluster'}: "
                                         f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__}") from None
            self._ray = ray
        return self._ray

    def pool_of(self, tool: Tool) -> str | None:
        """The pool a tool's batches go to; None: it runs in the driver (CPU tools with ``cpu_actors = 0``)."""
        name = self.cfg.pools.get(tool.name)
        if name:
            return name
        if tool.resource == "gpu":
            return "gpu"
        return "cpu" if self.cfg.cpu_actors > 0 else None

    def _size(self, pool: str) -> int:
        return self.cfg.cpu_actors if pool == "cpu" else self.cfg.actors

    def _spawn(self, pool: str) -> _Actor:
        ray = self.ray()
        threads = self.cfg.threads or _driver_threads()
        env = {"PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)}
        opts: dict = {"num_cpus": self.cfg.cpu_actor_cpus if pool == "cpu" else self.cfg.num_cpus,
                      "num_gpus": 0 if pool == "cpu" else self.num_gpus, "max_restarts": 0,
                      "runtime_env": {"env_vars": env}}  # fmt: skip
        self._serial += 1
        name = f"{pool}-{self._serial}"
        handle = ray.remote(ToolActor).options(**opts).remote(
            self.profile.model_dump_json(), str(self.home.resolve()), self.shared.spec, pool, threads
        )
        return _Actor(handle=handle, name=name, pool=pool)

    def _members(self, pool: str) -> list[_Actor]:
        """The pool's live actors, topped up to its size (new ones replace the dead)."""
        actors = self._pools.setdefault(pool, [])
        actors[:] = [a for a in actors if a.alive]
        new = [self._spawn(pool) for _ in range(self._size(pool) - len(actors))]
        actors.extend(new)
        if new:
            self._wait_ready(new)
        return actors

    def _wait_ready(self, new: list[_Actor]) -> None:
        ray = self.ray()
        refs = [a.handle.info.remote() for a in new]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.cfg.start_timeout_s)
        if len(ready) < len(refs):
            need = f"num_cpus={self.cfg.num_cpus}, num_gpus={self.num_gpus}"
            raise RayUnavailable(f"Ray could not start {len(refs) - len(ready)} actor(s) within "
                                 f"{self.cfg.start_timeout_s:.0f}s (each needs {need}; cluster has "
                                 f"{ray.cluster_resources()}); lower [ray] actors or the per-actor resources")
        for a, ref in zip(new, refs):
            a.pid = json.loads(ray.get(ref)).get("pid")

    def pick(self, pool: str, tool: str, exclude: set[str]) -> _Actor:
        """Model affinity: idle and holding the model, else idle, else the least busy holder, else least busy."""
        with self._lock:
            actors = [a for a in self._members(pool) if a.name not in exclude] or self._members(pool)

            def rank(a: _Actor):
                return (a.inflight > 0, tool not in a.held, a.inflight, a.calls)

            best = min(actors, key=rank)
            best.inflight += 1
            return best

    def call(self, actor: _Actor, tool: str, payload: str) -> dict:
        ray = self.ray()
        from ray import exceptions as rex

        lost = tuple(getattr(rex, n) for n in ("RayActorError", "ActorDiedError", "ActorUnavailableError",
                                                 "WorkerCrashedError", "NodeDiedError") if hasattr(rex, n))  # fmt: skip
        try:
            ref = actor.handle.run.remote(tool, payload)
            if self.on_dispatch is not None:
                self.on_dispatch(actor, tool)
            reply = json.loads(ray.get(ref))
        except lost as err:
            with self._lock:
                actor.alive = False
                self.lost += 1
            raise ActorLost(f"actor {actor.name} died ({type(err).__name__})") from None
        finally:
            with self._lock:
                actor.inflight -= 1
        if "error" not in reply:
            with self._lock:
                actor.held.add(tool)
                actor.calls += 1
        return reply

    # --- artifacts between the driver's store and the shared one -----------------------------------------
    def stage(self, entries: list[Entry]) -> None:
        """Every artifact a batch reads must be in the shared store before an actor looks for it."""
        for e in entries:
            ex = getattr(e.owner, "executor", None)
            for digest in artifact_names(e.inputs):
                pending = ex._unwritten.get(digest) if ex is not None else None
                if pending is not None:  # made by a driver-side tool a moment ago; its PNG write may not have run
                    ex.store.put_image(pending, digest)
                if not self.same_store and not self.shared.exists(digest):
                    self.shared.put_bytes(digest, ex.store.artifact_path(digest).read_bytes())

    def fetch(self, outputs: list[dict], store) -> None:
        """Bring a batch's output artifacts into the driver's store (the record and final.png read them there)."""
        if self.same_store:
            return
        for digest in artifact_names(outputs):
            path = store.artifact_path(digest)
            if not path.exists():
                self.shared.get_image(digest)  # verified before it becomes ours
                atomic_write(path, self.shared.get_bytes(digest))

    # --- what is running where -------------------------------------------------------------------------------
    def status(self, queued: dict[str, int] | None = None) -> dict:
        with self._lock:
            pools = {
                name: [{"actor": a.name, "pid": a.pid, "alive": a.alive, "held": sorted(a.held), "inflight": a.inflight,
                        "calls": a.calls} for a in actors if a.alive]  # fmt: skip
                for name, actors in self._pools.items()
            }
        out = {"executor": "ray", "address": self.address or "local", "store": self.shared.spec,
               "num_gpus_per_actor": self.num_gpus, "pools": pools, "actors_lost": self.lost}  # fmt: skip
        if queued is not None:
            out["queued"] = queued
        if self._ray is not None and self._ray.is_initialized():
            try:
                out["cluster"] = {k: v for k, v in self._ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")}
            except Exception:  # noqa: BLE001 - status never fails for a cluster hiccup
                pass
        return out

    def close(self) -> None:
        with self._lock:
            actors = [a for pool in self._pools.values() for a in pool if a.alive]
            self._pools.clear()
        if self._ray is not None and self._ray.is_initialized():
            for a in actors:
                try:
                    self._ray.kill(a.handle)
                except Exception:  # noqa: BLE001
                    pass


def _driver_threads() -> int:
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:
        return os.cpu_count() or 1


class RayScheduler(Scheduler):
    """The shared scheduler with Ray actors behind it: queues, batching windows and retries are the base class's;
    a batch runs on an actor (a thread of a small pool waits for it), never on a run's thread."""

    def __init__(self, pools: RayPools, *, window_ms: float = 5.0, retries: int = 2):
        cfg = pools.cfg
        gpu = max(1, cfg.actors * (1 + len(set(cfg.pools.values()) - {"gpu", "cpu"})))
        cpu = max(1, cfg.cpu_actors) * 2 if cfg.cpu_actors else 4
        super().__init__(gpu_slots=gpu, cpu_slots=cpu, io_slots=2, window_ms=window_ms, retries=retries)
        self.slots["ray"] = gpu + cpu
        self.pools = pools

    def _launch_all(self, launch: list, caller) -> None:
        for tool, batch in launch:
            if self.pools.pool_of(tool) is None:  # a driver-side CPU tool: as the local scheduler does it
                super()._launch_all([(tool, batch)], caller)
            else:
                self._pool("ray").submit(self._run_batch, tool, batch)

    def _invoke(self, tool: Tool, batch: list[Entry], ctx: ToolContext) -> list:
        pool = self.pools.pool_of(tool)
        if pool is None:
            return super()._invoke(tool, batch, ctx)
        self.pools.stage(batch)
        payload = canonical_json({"inputs": [e.inputs for e in batch]})
        tried: set[str] = set()
        while True:
            actor = self.pools.pick(pool, tool.name, tried)
            for o in {id(e.owner): e.owner for e in batch}.values():
                o.run.emit({"event": "dispatched", "tool": tool.name, "pool": pool, "actor": actor.name,
                            "nodes": [e.node_id for e in batch if e.owner is o]})  # fmt: skip
            try:
                reply = self.pools.call(actor, tool.name, payload)
                break
            except ActorLost as err:
                tried.add(actor.name)
                for o in {id(e.owner): e.owner for e in batch}.values():
                    o.run.emit({"event": "actor_lost", "tool": tool.name, "actor": actor.name, "error": str(err)})
                if len(tried) > self.pools.cfg.actor_retries:
                    raise RuntimeError(f"{err}; gave up after {len(tried)} actors") from None
        if "error" in reply:
            e = reply["error"]
            raise _remote_error(e["type"], e["message"])
        for index, kind, request, response in reply["llm"]:
            rec = ctx.recorder(index)
            if rec is not None:
                rec.record(kind, request, response)
        self.pools.fetch(reply["outputs"], batch[0].owner.executor.store)
        return [EncodedOutput(o) for o in reply["outputs"]]

    def queued(self) -> dict[str, int]:
        with self._cond:
            out: dict[str, int] = {}
            for (_, name, _), q in self._queues.items():
                if q:
                    out[name] = out.get(name, 0) + len(q)
            return out

    def status(self) -> dict:
        return self.pools.status(self.queued())

    def close(self) -> None:
        super().close()
        self.pools.close()
