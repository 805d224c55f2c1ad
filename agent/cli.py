"""The ``scenewright`` command. Every user mistake ends in one line on stderr and exit code 2; a run that fails
ends with exit code 1 and its record kept for ``resume``."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from agent.api import Engine, RunOutcome


def _load() -> None:
    """Import the engine's modules when a command runs, not for ``--help``: pydantic models, the executor and rich's
    progress bars are most of the start-up time (``scenewright --help`` stays under 0.3 s). Called on entering
    :func:`user_errors`, which every command does first."""
    global Engine, RunCancelled, RunOutcome, UserError, load_plan_file, Blueprint, BlueprintError, json_schema
    global GraphError, ProfileError, load_profiles, PlanningError, Progress, BarColumn, MofNCompleteColumn
    global TextColumn, TimeElapsedColumn, Table, Text, Store, StoreError, default_home, ModelNotFound
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from rich.text import Text

    from agent.api import Engine, RunCancelled, RunOutcome, UserError, load_plan_file
    from agent.blueprint import Blueprint, BlueprintError, json_schema
    from agent.graph import GraphError
    from agent.profiles import ProfileError, load_profiles
    from agent.store import Store, StoreError, default_home
    from planners.base import PlanningError
    from tools.models import ModelNotFound

EXAMPLES = """
Examples:

  scenewright generate "three red apples on a wooden table, a sign that says 'FRESH'"

  scenewright plan "a cat to the left of a blue vase" --json > plan.json

  scenewright run plan.json --seed 3 --out apples.png

  scenewright run apples.png      (a PNG a run wrote carries its recipe)

  scenewright runs; scenewright show RUN_ID; scenewright resume RUN_ID
"""

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="scenewright",
    help="Plan first, paint second: LLM-orchestrated image generation.\n" + EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)
err = Console(stderr=True)

# the extra that installs a module a command imports (pyproject.toml's optional-dependencies)
EXTRAS = {
    "uvicorn": "serve", "fastapi": "serve", "starlette": "serve", "httpx": "llm", "torch": "gpu",
    "diffusers": "gpu", "transformers": "gpu", "accelerate": "gpu", "safetensors": "gpu", "peft": "train",
    "easyocr": "ocr", "faiss": "rag", "vllm": "vllm", "swagger_ui_bundle": "serve",
}


def cell(value) -> Text:
    """A table cell that shows user or model text as it is (a ``[/]`` in a prompt is not markup)."""
    return Text("" if value is None else str(value))


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            print(f"scenewright {metadata.version('scenewright')}")
        except metadata.PackageNotFoundError:
            print("scenewright (not installed; running from a source tree)")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print the version and exit.")):
    """Plan first, paint second: LLM-orchestrated image generation."""

SeedOpt = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Run seed; every node's seed derives from it.")
ProfileOpt = typer.Option("preview", "--profile", "-p", help="Profile name (see `scenewright profiles`).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
ConfigOpt = typer.Option(None, "--config", help="Extra profiles TOML file.")
ExecutorOpt = typer.Option(None, "--executor", metavar="local|ray[=ADDRESS]",
                           help="Where nodes run: this process, or Ray actor pools (ray=auto joins a cluster). "
                                "Default: the profile's `executor`.")
OutOpt = typer.Option(None, "--out", "-o", metavar="FILE.png|DIR/", help="Also save the image here: a .png file, or a folder (NEW/ is created) where it is named <run id>.png.")
KeepGoingOpt = typer.Option(False, "--keep-going", help="Keep running independent branches after a node fails.")
PLANNERS = ("rule", "vllm-server", "vllm-local", "transformers")


def _planner_kind(value: Optional[str]) -> Optional[str]:
    if value is not None and value not in PLANNERS:
        fail(f"--planner '{value}' is not a planner kind; use one of {', '.join(PLANNERS)}")  # one line, exit 2
    return value


PlannerOpt = typer.Option(None, "--planner", callback=_planner_kind,
                          help="Planner kind: rule, vllm-server, vllm-local, transformers.")
UrlOpt = typer.Option(None, "--vllm-url", help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1")
ModelOpt = typer.Option(None, "--llm", help="LLM model id or folder for the planner.")
CritiqueOpt = typer.Option(False, "--critique", help="ArtAug: let the VLM critique the image and keep edits that raise the aesthetic score.")
CritiqueRoundsOpt = typer.Option(2, "--critique-rounds", min=0, max=8, help="Most critique rounds with --critique.")


def fail(message: str, code: int = 2, as_json: bool = False) -> None:
    """One line on stderr (and, under ``--json``, ``{"error": ...}`` on stdout), then exit ``code``."""
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}, ensure_ascii=False))
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def missing_extra(e: ImportError) -> str:
    """'serve needs uvicorn: pip install ...' for a module an optional extra installs."""
    module = (e.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        return f"a Python package is missing: {e}"
    return (f"this needs the Python package '{module}', which is not installed; install it with"
            f" pip install 'scenewright[{extra}]' (from a checkout: pip install -e '.[{extra}]')")


@contextmanager
def user_errors(as_json: bool = False):
    """Turn the errors a user can cause into one line and the right exit code; never a traceback."""
    _load()
    try:
        yield
    except (UserError, BlueprintError, GraphError, ProfileError, FileNotFoundError, StoreError, ModelNotFound) as e:
        fail(str(e), 2, as_json)
    except sqlite3.DatabaseError as e:  # a read the store did not wrap: still one line, naming the file
        fail(f"the store's index {default_home() / 'index.sqlite'} is damaged ({e}); `scenewright doctor --repair`",
             2, as_json)
    except ImportError as e:  # an optional extra is not installed: name it
        fail(missing_extra(e), 2, as_json)
    except PlanningError as e:
        fail(str(e), 1, as_json)
    except RunCancelled as e:  # Ctrl-C during a run: the record says "cancelled", finished nodes are cached
        if e.run_id:
            fail(f"cancelled run {e.run_id}; `scenewright resume {e.run_id}` continues it", 130, as_json)
        fail("cancelled", 130, as_json)
    except KeyboardInterrupt:  # before any run existed
        fail("interrupted", 130, as_json)


@contextmanager
def progress_events(enabled: bool):
    """A progress bar over node events (rich turns itself off when stderr is not a terminal)."""
    if not enabled or not err.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("running", total=None)

        def on_event(ev: dict) -> None:
            kind = ev["event"]
            if kind == "run_started":
                bar.update(task, total=ev["nodes"])
            elif kind == "loop_expanded":
                bar.update(task, total=(bar.tasks[0].total or 0) + ev["nodes"])
            elif kind in ("finished", "cached", "failed", "skipped"):
                bar.update(task, advance=1, description=escape(f"{ev.get('tool', '')} {ev['node']}"[:48]))
            elif kind == "progress":  # a model call's denoising steps: "step 12/20 of repaint.cat"
                bar.update(task, description=escape(f"step {ev['step']}/{ev['total']} of {ev['node']}"[:48]))

        yield on_event


WindowOpt = typer.Option(5.0, "--batch-window-ms", min=0.0, max=1000.0,
                         help="How long concurrent runs wait for each other to share a model call.")


def make_engine(profile, config, keep_going, on_event, planner=None, url=None, llm=None, critique=None,
                window_ms: float = 5.0, executor: Optional[str] = None) -> Engine:  # fmt: skip
    return Engine(
        profile, config=config, keep_going=keep_going, on_event=on_event, batch_window_ms=window_ms, executor=executor,
        planner={"kind": planner, "url": url, "model": llm},
        **({"critique": True, "critique_options": critique} if critique is not None else {}),
    )


def out_target(out: Optional[str]) -> Optional[Path]:
    """Check ``--out`` before anything runs: a folder (existing, or ``NEW/`` whose parent exists) or a ``.png``
    file in an existing folder. Returns the folder or file; bad values are one line, exit 2, nothing run."""
    if not out:
        return None
    p = Path(out).expanduser()
    if p.is_dir():
        return p
    if out.endswith(("/", os.sep)):
        if not p.parent.is_dir():
            raise UserError(f"--out {out}: folder {p.parent} does not exist; create it first")
        if p.exists():
            raise UserError(f"--out {out}: {p} exists and is not a folder")
        p.mkdir()  # asked for with the slash; one level only
        return p
    if p.suffix.lower() != ".png":
        raise UserError(f"--out {out}: the image is a PNG; give a file name ending in .png or a folder (end it with /)")
    if not p.parent.is_dir():
        raise UserError(f"--out {out}: folder {p.parent} does not exist; create it first (or end --out with /)")
    return p


def save_copy(image: str, run_id: str, target: Path) -> Path:
    """Copy a run's PNG to ``--out``: into a folder as ``<run id>.png`` (never overwriting another run's), or to
    the file named. The copy keeps the recipe chunks, so ``scenewright run`` reproduces it."""
    if target.is_dir():
        target = target / f"{run_id}.png"
    shutil.copyfile(image, target)
    return target.resolve()


def print_notices(notices) -> None:
    for notice in notices:
        err.print(f"[yellow]note:[/] {escape(notice)}", highlight=False, soft_wrap=True)


def report(outcome: RunOutcome, as_json: bool, out: Optional[Path]) -> None:
    saved = save_copy(outcome.image, outcome.run_id, out) if out and outcome.image else None
    if as_json:
        print(json.dumps({**outcome.to_dict(), "saved": str(saved) if saved else None}, indent=2))
    else:
        print_notices(outcome.notices)
        status = "[green]done[/]" if outcome.ok else "[red]failed[/]"
        err.print(f"{status} run {outcome.run_id}: {outcome.total_nodes} nodes, {outcome.cached_nodes} from cache, {outcome.seconds:.2f}s")
        for node, message in outcome.failed.items():
            err.print(f"  [red]{escape(node)}[/]: {escape(message)}", highlight=False)
        if outcome.image:
            print(f"image: {outcome.image}")
        if saved:
            print(f"saved: {saved}")
        print(f"run:   {outcome.run_dir}")
    if not outcome.ok:
        if not as_json:
            err.print(f"resume with: scenewright resume {outcome.run_id}")
        raise typer.Exit(1)


@app.command(epilog='Example: scenewright generate "a red cube left of a blue sphere, a sign reading OPEN" --seed 7')
def generate(
    prompt: str = typer.Argument(..., help="What to paint; long, detailed prompts are welcome."),
    seed: int = SeedOpt, profile: str = ProfileOpt, out: Optional[str] = OutOpt, as_json: bool = JsonOpt,
    keep_going: bool = KeepGoingOpt, config: Optional[Path] = ConfigOpt,
    planner: Optional[str] = PlannerOpt, vllm_url: Optional[str] = UrlOpt, llm: Optional[str] = ModelOpt,
    critique: bool = CritiqueOpt, critique_rounds: int = CritiqueRoundsOpt, executor: Optional[str] = ExecutorOpt,
):
    """Plan a prompt into a blueprint and paint it."""
    with user_errors(as_json), progress_events(not as_json) as on_event:
        target = out_target(out)
        engine = make_engine(profile, config, keep_going, on_event, planner, vllm_url, llm,
                             {"rounds": critique_rounds} if critique else None, executor=executor)
        outcome = engine.generate(prompt, seed=seed)
    report(outcome, as_json, target)


@app.command(epilog='Example: scenewright plan "two dogs under a tree, a banner saying HELLO" --json > plan.json')
def plan(
    prompt: str = typer.Argument(..., help="The request to plan."),
    seed: int = SeedOpt, profile: str = ProfileOpt, as_json: bool = JsonOpt, config: Optional[Path] = ConfigOpt,
    planner: Optional[str] = PlannerOpt, vllm_url: Optional[str] = UrlOpt, llm: Optional[str] = ModelOpt,
):
    """Show the blueprint for a prompt without painting it."""
    with user_errors():
        said: list[str] = []
        engine = make_engine(profile, config, False, None, planner, vllm_url, llm)
        bp = engine.plan(prompt, seed=seed, notices=said)
    print_notices(engine.notices() + said)
    if as_json:
        sys.stdout.write(bp.to_json())
        return
    Console().print(blueprint_table(bp))


def blueprint_table(bp: Blueprint, title: str | None = None) -> Table:
    """Objects and texts with their boxes; background and style in the title. Every cell is plain text."""
    head = Text(title or f"background: {bp.background or '-'}   style: {bp.style or '-'}")
    table = Table("object", escape("box [x0, y0, x1, y1]"), "description", title=head, title_justify="left")
    for o in bp.objects:
        table.add_row(cell(o.name), cell(", ".join(f"{v:.2f}" for v in o.box)), cell(o.description))
    for t in bp.texts:
        table.add_row(cell(f'text "{t.content}"'), cell(", ".join(f"{v:.2f}" for v in t.box)), cell(t.style))
    return table


@app.command(epilog="Example: scenewright run plan.json --seed 3 --json")
def run(
    file: Path = typer.Argument(..., help="A saved blueprint (plan --json), a graph (a run's graph.json) or a PNG a run wrote (its recipe)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=2**32 - 1, help="Override the file's seed."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Profile name (default: the PNG's, else preview)."),
    out: Optional[str] = OutOpt, as_json: bool = JsonOpt,
    keep_going: bool = KeepGoingOpt, config: Optional[Path] = ConfigOpt,
    critique: bool = CritiqueOpt, critique_rounds: int = CritiqueRoundsOpt, executor: Optional[str] = ExecutorOpt,
):
    """Execute a saved blueprint or graph file, or reproduce a PNG from the recipe it carries."""
    with user_errors(as_json), progress_events(not as_json) as on_event:
        target = out_target(out)
        plan_obj = load_plan_file(file)
        if profile is None:
            profile = png_profile(file) or "preview"
        if critique and not isinstance(plan_obj, Blueprint):
            raise UserError("--critique needs a blueprint file (a graph file is run as it is); use plan --json")
        engine = make_engine(profile, config, keep_going, on_event, critique={"rounds": critique_rounds} if critique else None,
                             executor=executor)
        if isinstance(plan_obj, Blueprint):
            outcome = engine.run_blueprint(plan_obj, seed=seed)
        else:
            if seed is not None:
                plan_obj = plan_obj.model_copy(update={"seed": seed})
            outcome = engine.run_graph(plan_obj)
    report(outcome, as_json, target)


def png_profile(file: Path) -> Optional[str]:
    """The profile a scenewright PNG was made on (None for other files)."""
    from agent.png_recipe import PNG_MAGIC, read_recipe

    with open(file, "rb") as fh:
        if fh.read(8) != PNG_MAGIC:
            return None
    found = read_recipe(file).get("profile")
    return found if isinstance(found, str) else None


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="The run to continue (see `scenewright runs`)."),
    as_json: bool = JsonOpt, out: Optional[str] = OutOpt, keep_going: bool = KeepGoingOpt,
    config: Optional[Path] = ConfigOpt,
):
    """Continue a run that crashed or was interrupted; finished nodes are reused from the cache."""
    with user_errors(as_json), progress_events(not as_json) as on_event:
        target = out_target(out)
        record = Store().open_run(run_id)  # the run's own profile is used below
        profile = record.read_json("request.json").get("profile", "preview") if record.exists("request.json") else "preview"
        outcome = make_engine(profile, config, keep_going, on_event).resume(run_id)
    report(outcome, as_json, target)


@app.command()
def runs(limit: int = typer.Option(20, min=1, max=10_000), as_json: bool = JsonOpt):
    """List recent runs."""
    with user_errors():
        rows = Store().list_runs(limit)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    Console().print(fitted_table(
        ("run", "status", "profile", "nodes", "cached", "seconds"), "prompt",
        [((r["run_id"], r["status"], r["profile"], r["nodes"], r["cached"],
           f"{r['seconds']:.2f}" if r["seconds"] is not None else None), r["prompt"]) for r in rows],
        right=("nodes", "cached", "seconds"),
    ))


def fitted_table(names, last: str, rows, right=()) -> Table:
    """A table whose columns are never cut (ids: every other command takes them) and whose last column (a prompt,
    a title) gets the width that is left, shortened with an ellipsis. Every cell is plain text."""
    cells = [[cell(v) for v in fixed] for fixed, _ in rows]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name, width in zip(names, widths):
        table.add_column(name, no_wrap=True, min_width=width, justify="right" if name in right else "left")
    room = max(Console().width - sum(widths) - 3 * len(names) - 1, 8)
    table.add_column(last, no_wrap=True, max_width=room)
    for c, (_, text) in zip(cells, rows):
        text = " ".join((text or "").split())
        table.add_row(*c, cell(text if len(text) <= room else text[: room - 1] + "…"))
    return table


@app.command()
def show(run_id: str = typer.Argument(...), as_json: bool = JsonOpt):
    """Show a run: status, blueprint summary, result and the refinement trace."""
    with user_errors():
        record = Store().open_run(run_id)
        info = {
            "run_id": run_id,
            "run_dir": str(record.dir),
            "status": record.read_json("status.json") if record.exists("status.json") else None,
            "request": record.read_json("request.json") if record.exists("request.json") else None,
            "result": record.read_json("result.json") if record.exists("result.json") else None,
            "notices": record.read_json("env.json").get("notices", []) if record.exists("env.json") else [],
        }
    if as_json:
        print(json.dumps(info, indent=2))
        return
    out = Console(highlight=False, soft_wrap=True, markup=False)
    status = (info["status"] or {}).get("status", "unknown")
    req = info["request"] or {}
    out.print(f"{run_id}  {status}  ({record.dir})")
    out.print(f"{req.get('kind', '?')} run, profile {req.get('profile', '?')}, seed {req.get('seed', '?')}")
    if req.get("prompt"):
        out.print(f"prompt: {req['prompt']}")
    for notice in info["notices"]:
        out.print(f"note: {notice}")
    if record.exists("blueprint.json"):
        from agent.blueprint import parse_blueprint

        try:
            bp = parse_blueprint(record.read_json("blueprint.json"), check=False)
        except (BlueprintError, ValueError) as e:  # a damaged record: say so, show the rest
            out.print(f"blueprint.json is damaged: {str(e).splitlines()[0]}")
        else:
            Console(soft_wrap=False).print(blueprint_table(bp))
    res = info["result"]
    if res:
        out.print(f"image: {res['image']}\nnodes: {res['total_nodes']} ({res['cached_nodes']} from cache), {res['seconds']}s")
        for node, message in (res.get("failed") or {}).items():
            out.print(f"  failed {node}: {message}")
        if res.get("loops"):
            out.print("refinement loops (score per try, * the one kept):")
        for loop, trace in res.get("loops", {}).items():
            scores = " → ".join(f"{t['score']:.3f}{'*' if t['kept'] else ''}" for t in trace)
            out.print(f"  {loop}: {scores}")
    out.print(f"all of it as JSON: scenewright show {run_id} --json")


@app.command()
def profiles(config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt):
    """List the profiles (built-in and from your profiles.toml)."""
    with user_errors():
        found = load_profiles(config)
    if as_json:
        from agent.store import redact

        print(json.dumps(redact({k: v.model_dump(mode="json") for k, v in found.items()}), indent=2))
        return
    table = Table("profile", "backend", "planner", "description")
    for name, p in sorted(found.items()):
        table.add_row(cell(name), cell(p.backend), cell(p.planner.kind), cell(p.description))
    Console().print(table)


@app.command()
def schema():
    """Print the Blueprint JSON schema: the format of plan files (`plan --json`, `run FILE`)."""
    _load()
    print(json.dumps(json_schema(), indent=2))


# === chat, serve, batch, replay, suite ============================================================================
# (sessions: agent/sessions.py · HTTP API + web page: agent/server.py, agent/web/ · batch: agent/batch.py ·
#  regression replay and suites: agent/replay.py)

CHAT_HELP = """Commands inside a chat: any edit ("make the cat bigger", "move the lamp to the left",
"the sign should say CLOSED", "add a dog next to the bench", "warmer light"), undo, /branch N (continue in a
new session from turn N), /history, /quit."""


def _print_turn(turn, as_json: bool) -> None:
    from agent.sessions import describe_turn

    if as_json:
        print(json.dumps({"session_id": turn.session_id, **describe_turn(turn)}, ensure_ascii=False))
        return
    out = Console(highlight=False, soft_wrap=True)
    colour = {"done": "green", "failed": "red", "rejected": "red"}.get(turn.status, "yellow")
    out.print(f"[bold]turn {turn.index}[/] [{colour}]{turn.status}[/] {escape(repr(turn.message))}")
    for change in turn.changes:
        out.print(f"  • {escape(change)}")
    if turn.error:
        out.print(f"  [red]{escape(turn.error)}[/]")
    if turn.run_id:
        if turn.reran:
            out.print(f"  re-ran: {escape(', '.join(turn.reran))}   [dim]({len(turn.cached)} from cache)[/]")
        elif turn.cached:
            out.print(f"  re-ran: nothing (all {len(turn.cached)} nodes from cache)")
        else:
            out.print(f"  re-ran: nothing (the picture of turn {turn.prev} as it is)" if turn.prev is not None
                      else "  re-ran: nothing")
    if turn.image:
        print(f"  image: {turn.image}")


@app.command(epilog='Example: scenewright chat "a black cat next to a bench, a sign that says OPEN" -m "make the cat bigger"\n\n' + CHAT_HELP)
def chat(
    prompt: Optional[str] = typer.Argument(None, help="Start a new session from this prompt."),
    session_id: Optional[str] = typer.Option(None, "--session", "-s", help="Continue this session (see --list)."),
    blueprint: Optional[Path] = typer.Option(None, "--blueprint", help="Start a new session from a blueprint file."),
    message: Optional[list[str]] = typer.Option(None, "--message", "-m", help="Send this message (repeatable); no prompt loop."),
    branch: Optional[int] = typer.Option(None, "--branch", min=0, help="With --session: continue in a new session from turn N."),
    list_sessions: bool = typer.Option(False, "--list", help="List sessions and exit."),
    seed: int = SeedOpt, profile: str = ProfileOpt, config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt,
):
    """Edit a picture in conversation: each message becomes edit operations, and only the nodes they touch re-run."""
    from agent.sessions import Sessions

    with user_errors(as_json):
        engine = make_engine(profile, config, False, None)
        sessions = Sessions(engine)
        if list_sessions:
            rows = sessions.list()
            if as_json:
                print(json.dumps(rows, indent=2))
                return
            table = fitted_table(("session", "turns", "updated"), "title",
                                 [((r["session_id"], r["turns"], r["updated"][:19].replace("T", " ")), r["title"])
                                  for r in rows], right=("turns",))
            Console().print(table)
            return
        if session_id and (prompt or blueprint):
            raise UserError("give either --session (to continue) or a prompt/--blueprint (to start), not both")
        if branch is not None and not session_id:
            raise UserError("--branch needs --session: the session to branch from")
        with progress_events(not as_json) as on_event:
            if session_id:
                session = sessions.open(session_id)
                if branch is not None:
                    session = session.branch(branch)
                    err.print(f"branched into session {session.id}")
                for t in sessions.recover(on_event, session_id=session.id):  # a turn a crash left pending
                    _print_turn(t, as_json)
            elif prompt or blueprint:
                if blueprint:
                    plan_obj = load_plan_file(blueprint)
                    if not isinstance(plan_obj, Blueprint):
                        raise UserError(f"{blueprint} is a graph; a session starts from a blueprint or a prompt")
                    session = sessions.create(blueprint=plan_obj, on_event=on_event)
                else:
                    session = sessions.create(prompt, seed=seed, on_event=on_event)
            else:
                raise UserError("give a prompt to start a session, or --session ID to continue one (--list shows them)")
        if not (session_id and branch is None):
            _print_turn(session.turns()[-1], as_json)
        err.print(f"session {session.id}", highlight=False)
        if message:  # every message is sent; one the session cannot apply is a rejected turn (exit 2 at the end)
            statuses = []
            for text in message:
                with progress_events(not as_json) as on_event:
                    try:
                        turn = session.process(session.submit(text).index, on_event)
                    except UserError as e:  # not even queued (empty, too long): say so, go on
                        if as_json:
                            print(json.dumps({"session_id": session.id, "status": "rejected", "message": text,
                                              "error": str(e)}, ensure_ascii=False))
                        else:
                            err.print(f"[red]rejected:[/] {escape(repr(text))}: {escape(str(e))}", highlight=False)
                        statuses.append("rejected")
                        continue
                _print_turn(turn, as_json)
                statuses.append(turn.status)
            if "failed" in statuses:
                raise typer.Exit(1)
            if "rejected" in statuses:
                raise typer.Exit(2)
            return
    if hasattr(sys.stdin, "reconfigure"):  # bytes that are not UTF-8 reach check_text as surrogates: one line each
        sys.stdin.reconfigure(errors="surrogateescape")
    interactive = sys.stdin.isatty()
    if interactive:
        err.print(CHAT_HELP)
    while True:
        if interactive:
            err.print("[bold]>[/] ", end="")
        line = sys.stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit", "quit", "exit"):
            break
        if text == "/help":
            err.print(CHAT_HELP)
            continue
        if text == "/history":
            for t in session.turns():
                _print_turn(t, as_json)
            continue
        if text.startswith("/branch"):
            arg = text.split()[1:] or [""]
            if not arg[0].isdigit():
                err.print("[red]error:[/] /branch needs a turn number, e.g. /branch 2")
                continue
            try:
                session = session.branch(int(arg[0]))
            except UserError as e:
                err.print(f"[red]error:[/] {escape(str(e))}", highlight=False)
                continue
            err.print(f"branched into session {session.id}", highlight=False)
            continue
        try:
            with progress_events(not as_json) as on_event:
                turn = session.send("undo" if text == "/undo" else text, on_event)
        except UserError as e:
            err.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            continue
        _print_turn(turn, as_json)


@app.command(epilog="Example: scenewright serve --port 8765   (then open http://127.0.0.1:8765/)")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but the loopback needs --token."),
    port: int = typer.Option(8765, "--port", min=0, max=65535),
    token: Optional[str] = typer.Option(None, "--token", help="Require this bearer token (default: $SCENEWRIGHT_TOKEN)."),
    max_body: int = typer.Option(1024 * 1024, "--max-body", min=1024, max=64 * 1024 * 1024, help="Request body limit, bytes."),
    profile: str = ProfileOpt, config: Optional[Path] = ConfigOpt, window_ms: float = WindowOpt,
    executor: Optional[str] = ExecutorOpt,
):
    """Serve the HTTP API (OpenAPI at /docs) and the chat web page."""
    with user_errors():
        import uvicorn  # the serve extra; a missing one is a line naming it

        from agent.http_guard import GuardedH11Protocol
        from agent.server import create_app, resolve_token

        need = resolve_token(host, token)
        engine = make_engine(profile, config, False, None, window_ms=window_ms, executor=executor)
        application = create_app(engine, token=need, max_body=max_body, port=port or None)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"scenewright serving http://{shown}:{port}/  (API docs: /docs; profile {engine.profile.name};"
              f" store {engine.store.home}){'  token required' if need else ''}", highlight=False, markup=False)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False, http=GuardedH11Protocol)


@app.command(epilog="Example: scenewright batch prompts.txt --concurrency 4 --out results.jsonl")
def batch(
    file: Path = typer.Argument(..., help="A text file (one prompt a line) or a folder of plan files (*.json)."),
    concurrency: int = typer.Option(2, "--concurrency", "-j", min=1, max=64, help="Items run at the same time."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Results JSONL (default: <FILE>.results.jsonl)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=2**32 - 1, help="Seed for every item (prompts: 0)."),
    profile: str = ProfileOpt, config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt,
    window_ms: float = WindowOpt, executor: Optional[str] = ExecutorOpt,
):
    """Run many prompts or plan files; one item's failure never stops the others. Exit 1 if any failed."""
    from agent.batch import load_items, run_batch

    with user_errors():
        items = load_items(file)
        engine = make_engine(profile, config, False, None, window_ms=window_ms, executor=executor)
        target = out or file.with_name(file.name.rstrip("/") + ".results.jsonl")
        if target.is_dir():
            raise UserError(f"--out {target} is a folder; give the results file, e.g. {target / 'results.jsonl'}")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True, disable=as_json or not err.is_terminal) as bar:
            task = bar.add_task("batch", total=len(items))

            def on_result(res) -> None:
                bar.update(task, advance=1, description=f"{'ok' if res.ok else 'FAILED'} {res.source}"[:48])

            summary = run_batch(engine, items, concurrency=concurrency, seed=seed, out=target, on_result=on_result)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        table = Table("items", "ok", "failed", "nodes run", "from cache", "seconds", "items/s", title=f"batch {file}")
        s = summary.to_dict()
        table.add_row(str(s["items"]), str(s["ok"]), str(s["failed"]), str(s["nodes"] - s["cached"]), str(s["cached"]),
                      f"{s['seconds']:.2f}", f"{s['items'] / s['seconds']:.2f}" if s["seconds"] else "-")
        Console().print(table)
        for r in [r for r in summary.results if not r.ok][:10]:
            err.print(f"  [red]{escape(r.source)}[/]: {escape(str(r.error))}", highlight=False, soft_wrap=True)
        print(f"results: {summary.out}")
    raise typer.Exit(summary.exit_code)


cluster_app = typer.Typer(help="Where nodes run (the Ray backend's actor pools).", no_args_is_help=True,
                          rich_markup_mode=None)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("status", epilog="Example: scenewright cluster status --executor ray=auto --json")
def cluster_status_cmd(
    profile: str = ProfileOpt, config: Optional[Path] = ConfigOpt, executor: Optional[str] = ExecutorOpt,
    as_json: bool = JsonOpt,
):
    """Actors per pool, the models each holds, calls in flight, queued nodes, the cluster's resources.
    A fresh process sees its own engine: pools appear once a run has used them (serve's /api/health shows a
    long-lived engine's)."""
    with user_errors(as_json):
        engine = make_engine(profile, config, False, None, executor=executor)
        if engine.profile.executor == "ray":
            engine.executor  # connects to the cluster (one line if it is not there)
        status = engine.cluster_status()
    if as_json:
        print(json.dumps(status, indent=2))
        return
    print(f"executor: {status['executor']}" + (f"  address: {status.get('address')}  store: {status.get('store')}"
                                               if status["executor"] == "ray" else ""))
    if "cluster" in status:
        print("cluster:  " + ", ".join(f"{k} {v:g}" for k, v in status["cluster"].items()))
    table = Table("pool", "actor", "pid", "models held", "in flight", "calls")
    for pool, actors in status.get("pools", {}).items():
        for a in actors:
            table.add_row(cell(pool), cell(a["actor"]), cell(a["pid"]), cell(", ".join(a["held"]) or "-"),
                          cell(a["inflight"]), cell(a["calls"]))
    if status.get("pools"):
        Console().print(table)
    print("queued:   " + (", ".join(f"{k} {v}" for k, v in status.get("queued", {}).items()) or "nothing"))


@app.command(epilog="Example: scenewright replay RUN_ID   ·   scenewright replay tests/golden --junit replay.xml --html replay.html")
def replay(
    target: str = typer.Argument(..., help="A run id, a run folder, or a suite folder (see `scenewright suite add`)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write a JUnit XML report here."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write an HTML report (recorded vs new images) here."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Replay on this profile instead of the recorded one."),
    as_json: bool = JsonOpt,
):
    """Re-execute recorded runs (recorded LLM responses, cache bypassed) and compare every node. Exit 0 match, 1 regression, 2 bad input."""
    from agent.replay import replay as do_replay

    with user_errors():
        report = do_replay(target, profile=profile)
        if junit:
            report.to_junit(junit)
        if html_out:
            report.to_html(html_out)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        out = Console(highlight=False, soft_wrap=True)
        for c in report.cases:
            colour = {"pass": "green", "fail": "red", "error": "yellow"}[c.status]
            out.print(f"[{colour}]{c.status.upper()}[/] {escape(c.name)}: {escape(c.summary())}")
            for d in c.diffs[1:6] if c.status == "fail" else []:
                out.print(f"    {'(downstream) ' if d.downstream else ''}{escape(d.line())}")
        out.print(f"{sum(c.status == 'pass' for c in report.cases)}/{len(report.cases)} match ({report.seconds:.2f}s)")
    for c in report.cases:
        if c.status == "error":
            err.print(f"[bold red]error:[/] {escape(c.name)}: {escape(str(c.error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(report.exit_code)


suite_app = typer.Typer(help="Golden-case suites for `scenewright replay`.", no_args_is_help=True, rich_markup_mode=None,
                        context_settings=HELP_OPTIONS)
app.add_typer(suite_app, name="suite")


@suite_app.command("add", epilog="Example: scenewright suite add RUN_ID --suite tests/golden --name apples")
def suite_add_cmd(
    run_id: str = typer.Argument(..., help="The finished run to pin (see `scenewright runs`)."),
    suite: Path = typer.Option(Path("scenewright-suite"), "--suite", help="The suite folder (created if missing)."),
    name: Optional[str] = typer.Option(None, "--name", help="Case name (default: the run id)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing case of that name."),
):
    """Pin a run as a golden case: its record and images are copied into the suite folder."""
    from agent.replay import suite_add

    with user_errors():
        dest = suite_add(run_id, suite, name=name, force=force)
    print(f"pinned {run_id} as {dest}")


@suite_app.command("list", epilog="Example: scenewright suite list tests/golden")
def suite_list_cmd(
    folder: Optional[Path] = typer.Argument(None, help="The suite folder (as `replay` takes it)."),
    suite_opt: Optional[Path] = typer.Option(None, "--suite", help="The suite folder (same as the argument)."),
):
    """List a suite's cases."""
    suite = folder or suite_opt or Path("scenewright-suite")
    with user_errors():
        cases = suite / "cases"
        if not cases.is_dir():
            raise UserError(f"{suite} is not a suite (no cases/ folder)")
        for p in sorted(cases.iterdir()):
            if p.is_dir():
                req = json.loads((p / "request.json").read_text()) if (p / "request.json").exists() else {}
                print(f"{p.name}\t{req.get('kind', '?')}\t{(req.get('prompt') or req.get('message') or '')[:60]}")


# === end of chat, serve, batch, replay, suite =====================================================================


import agent.cli_critique  # noqa: E402,F401  (repaint, distill: ImageRepainter and ArtAug commands)
import agent.cli_doctor  # noqa: E402,F401  (doctor: check and repair a home)
import agent.cli_eval  # noqa: E402,F401  (eval: GenEval/LMD-style faithfulness of plans and images)

from agent.cli_library import library_app  # noqa: E402
from agent.cli_models import models_app  # noqa: E402

app.add_typer(library_app, name="library")
app.add_typer(models_app, name="models")


def main() -> None:
    app()


if __name__ == "__main__":
    # `python -m agent.cli`: this file runs as __main__, but the command modules (repaint, eval, doctor…) register
    # on `agent.cli.app`; run that one, not this copy
    from agent.cli import main as registered_main

    registered_main()
