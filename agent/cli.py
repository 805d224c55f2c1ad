"""The ``scenewright`` command. Every user mistake ends in one line on stderr and exit code 2; a run that fails
ends with exit code 1 and its record kept for ``resume``."""

from __future__ import annotations

import json
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.api import Engine, RunOutcome, UserError, load_plan_file
from agent.blueprint import Blueprint, BlueprintError, json_schema
from agent.graph import Graph, GraphError
from agent.profiles import ProfileError, load_profiles
from planners.base import PlanningError

EXAMPLES = """
Examples:

  scenewright generate "three red apples on a wooden table, a sign that says 'FRESH'"

  scenewright plan "a cat to the left of a blue vase" --json > plan.json

  scenewright run plan.json --seed 3 --out apples.png

  scenewright runs; scenewright show RUN_ID; scenewright resume RUN_ID
"""

app = typer.Typer(
    name="scenewright",
    help="Plan first, paint second: LLM-orchestrated image generation.\n" + EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err = Console(stderr=True)

SeedOpt = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Run seed; every node's seed derives from it.")
ProfileOpt = typer.Option("preview", "--profile", "-p", help="Profile name (see `scenewright profiles`).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
ConfigOpt = typer.Option(None, "--config", help="Extra profiles TOML file.")
OutOpt = typer.Option(None, "--out", "-o", help="Also copy the final image to this file or folder.")
KeepGoingOpt = typer.Option(False, "--keep-going", help="Keep running independent branches after a node fails.")
PlannerOpt = typer.Option(None, "--planner", help="Planner kind: rule, vllm-server, vllm-local, transformers.")
UrlOpt = typer.Option(None, "--vllm-url", help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1")
ModelOpt = typer.Option(None, "--llm", help="LLM model id or folder for the planner.")


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors():
    """Turn the errors a user can cause into one line and the right exit code; never a traceback."""
    try:
        yield
    except (UserError, BlueprintError, GraphError, ProfileError, FileNotFoundError) as e:
        fail(str(e), 2)
    except PlanningError as e:
        fail(str(e), 1)
    except KeyboardInterrupt:
        fail("interrupted; `scenewright resume RUN_ID` continues the run", 130)


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
                bar.update(task, advance=1, description=f"{ev.get('tool', '')} {ev['node']}"[:48])

        yield on_event


def make_engine(profile, config, keep_going, on_event, planner=None, url=None, llm=None) -> Engine:
    return Engine(
        profile, config=config, keep_going=keep_going, on_event=on_event,
        planner={"kind": planner, "url": url, "model": llm},
    )


def report(outcome: RunOutcome, as_json: bool, out: Optional[Path]) -> None:
    if out and outcome.image:
        target = out / Path(outcome.image).name if out.is_dir() else out
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outcome.image, target)
    if as_json:
        print(json.dumps(outcome.to_dict(), indent=2))
    else:
        status = "[green]done[/]" if outcome.ok else "[red]failed[/]"
        err.print(f"{status} run {outcome.run_id}: {outcome.total_nodes} nodes, {outcome.cached_nodes} from cache, {outcome.seconds:.2f}s")
        for node, message in outcome.failed.items():
            err.print(f"  [red]{node}[/]: {message}", highlight=False)
        print(f"image: {outcome.image}")
        print(f"run:   {outcome.run_dir}")
    if not outcome.ok:
        if not as_json:
            err.print(f"resume with: scenewright resume {outcome.run_id}")
        raise typer.Exit(1)


@app.command(epilog='Example: scenewright generate "a red cube left of a blue sphere, a sign reading OPEN" --seed 7')
def generate(
    prompt: str = typer.Argument(..., help="What to paint; long, detailed prompts are welcome."),
    seed: int = SeedOpt, profile: str = ProfileOpt, out: Optional[Path] = OutOpt, as_json: bool = JsonOpt,
    keep_going: bool = KeepGoingOpt, config: Optional[Path] = ConfigOpt,
    planner: Optional[str] = PlannerOpt, vllm_url: Optional[str] = UrlOpt, llm: Optional[str] = ModelOpt,
):
    """Plan a prompt into a blueprint and paint it."""
    with user_errors(), progress_events(not as_json) as on_event:
        engine = make_engine(profile, config, keep_going, on_event, planner, vllm_url, llm)
        outcome = engine.generate(prompt, seed=seed)
    report(outcome, as_json, out)


@app.command(epilog='Example: scenewright plan "two dogs under a tree, a banner saying HELLO" --json > plan.json')
def plan(
    prompt: str = typer.Argument(..., help="The request to plan."),
    seed: int = SeedOpt, profile: str = ProfileOpt, as_json: bool = JsonOpt, config: Optional[Path] = ConfigOpt,
    planner: Optional[str] = PlannerOpt, vllm_url: Optional[str] = UrlOpt, llm: Optional[str] = ModelOpt,
):
    """Show the blueprint for a prompt without painting it."""
    with user_errors():
        bp = make_engine(profile, config, False, None, planner, vllm_url, llm).plan(prompt, seed=seed)
    if as_json:
        sys.stdout.write(bp.to_json())
        return
    table = Table("object", "box [x0, y0, x1, y1]", "description", title=f"background: {bp.background or '-'}   style: {bp.style or '-'}")
    for o in bp.objects:
        table.add_row(o.name, ", ".join(f"{v:.2f}" for v in o.box), o.description)
    for t in bp.texts:
        table.add_row(f'text "{t.content}"', ", ".join(f"{v:.2f}" for v in t.box), t.style)
    Console().print(table)


@app.command(epilog="Example: scenewright run plan.json --seed 3 --json")
def run(
    file: Path = typer.Argument(..., help="A saved blueprint (plan --json) or graph (graph.json of a run)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=2**32 - 1, help="Override the file's seed."),
    profile: str = ProfileOpt, out: Optional[Path] = OutOpt, as_json: bool = JsonOpt,
    keep_going: bool = KeepGoingOpt, config: Optional[Path] = ConfigOpt,
):
    """Execute a saved blueprint or graph file."""
    with user_errors(), progress_events(not as_json) as on_event:
        plan_obj = load_plan_file(file)
        engine = make_engine(profile, config, keep_going, on_event)
        if isinstance(plan_obj, Blueprint):
            outcome = engine.run_blueprint(plan_obj, seed=seed)
        else:
            if seed is not None:
                plan_obj = plan_obj.model_copy(update={"seed": seed})
            outcome = engine.run_graph(plan_obj)
    report(outcome, as_json, out)


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="The run to continue (see `scenewright runs`)."),
    as_json: bool = JsonOpt, out: Optional[Path] = OutOpt, keep_going: bool = KeepGoingOpt,
    config: Optional[Path] = ConfigOpt,
):
    """Continue a run that crashed or was interrupted; finished nodes are reused from the cache."""
    with user_errors(), progress_events(not as_json) as on_event:
        engine = Engine("preview", config=config)  # only to reach the store; the run's own profile is used below
        record = engine.store.open_run(run_id)
        profile = record.read_json("request.json").get("profile", "preview") if record.exists("request.json") else "preview"
        outcome = make_engine(profile, config, keep_going, on_event).resume(run_id)
    report(outcome, as_json, out)


@app.command()
def runs(limit: int = typer.Option(20, min=1, max=10_000), as_json: bool = JsonOpt):
    """List recent runs."""
    with user_errors():
        rows = Engine("preview").store.list_runs(limit)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("run", "status", "profile", "nodes", "cached", "seconds", "prompt")
    for r in rows:
        table.add_row(r["run_id"], r["status"], r["profile"], str(r["nodes"] or ""), str(r["cached"] or ""),
                      f"{r['seconds']:.2f}" if r["seconds"] else "", (r["prompt"] or "")[:60])
    Console().print(table)


@app.command()
def show(run_id: str = typer.Argument(...), as_json: bool = JsonOpt):
    """Show a run: status, blueprint summary, result and the refinement trace."""
    with user_errors():
        record = Engine("preview").store.open_run(run_id)
        info = {
            "run_id": run_id,
            "run_dir": str(record.dir),
            "status": record.read_json("status.json") if record.exists("status.json") else None,
            "request": record.read_json("request.json") if record.exists("request.json") else None,
            "result": record.read_json("result.json") if record.exists("result.json") else None,
        }
    if as_json:
        print(json.dumps(info, indent=2))
        return
    status = (info["status"] or {}).get("status", "unknown")
    Console().print(f"[bold]{run_id}[/]  {status}  ({record.dir})")
    if info["request"]:
        Console().print(f"request: {json.dumps(info['request'], ensure_ascii=False)}", highlight=False)
    res = info["result"]
    if res:
        Console().print(f"image: {res['image']}\nnodes: {res['total_nodes']} ({res['cached_nodes']} cached), {res['seconds']}s")
        for loop, trace in res.get("loops", {}).items():
            scores = " → ".join(f"{t['score']:.3f}{'*' if t['kept'] else ''}" for t in trace)
            Console().print(f"  {loop}: {scores}", highlight=False)


@app.command()
def profiles(config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt):
    """List the profiles (built-in and from your profiles.toml)."""
    with user_errors():
        found = load_profiles(config)
    if as_json:
        print(json.dumps({k: v.model_dump(mode="json") for k, v in found.items()}, indent=2))
        return
    table = Table("profile", "backend", "planner", "description")
    for name, p in sorted(found.items()):
        table.add_row(name, p.backend, p.planner.kind, p.description)
    Console().print(table)


@app.command()
def schema():
    """Print the Blueprint JSON schema (what LLM planners are constrained to)."""
    print(json.dumps(json_schema(), indent=2))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
