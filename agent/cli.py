"""The ``scenewright`` command. Every user mistake ends in one line on stderr and exit code 2; a run that fails
ends with exit code 1 and its record kept for ``resume``."""

from __future__ import annotations

import json
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
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
    global TextColumn, TimeElapsedColumn, Table
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from agent.api import Engine, RunCancelled, RunOutcome, UserError, load_plan_file
    from agent.blueprint import Blueprint, BlueprintError, json_schema
    from agent.graph import GraphError
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
CritiqueOpt = typer.Option(False, "--critique", help="ArtAug: let the VLM critique the image and keep edits that raise the aesthetic score.")
CritiqueRoundsOpt = typer.Option(2, "--critique-rounds", min=0, max=8, help="Most critique rounds with --critique.")


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors():
    """Turn the errors a user can cause into one line and the right exit code; never a traceback."""
    _load()
    try:
        yield
    except (UserError, BlueprintError, GraphError, ProfileError, FileNotFoundError) as e:
        fail(str(e), 2)
    except PlanningError as e:
        fail(str(e), 1)
    except RunCancelled as e:  # Ctrl-C during a run: the record says "cancelled", finished nodes are cached
        if e.run_id:
            fail(f"cancelled run {e.run_id}; `scenewright resume {e.run_id}` continues it", 130)
        fail("cancelled", 130)
    except KeyboardInterrupt:  # before any run existed
        fail("interrupted", 130)


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
                window_ms: float = 5.0) -> Engine:  # fmt: skip
    return Engine(
        profile, config=config, keep_going=keep_going, on_event=on_event, batch_window_ms=window_ms,
        planner={"kind": planner, "url": url, "model": llm},
        **({"critique": True, "critique_options": critique} if critique is not None else {}),
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
        if outcome.image:
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
    critique: bool = CritiqueOpt, critique_rounds: int = CritiqueRoundsOpt,
):
    """Plan a prompt into a blueprint and paint it."""
    with user_errors(), progress_events(not as_json) as on_event:
        engine = make_engine(profile, config, keep_going, on_event, planner, vllm_url, llm,
                             {"rounds": critique_rounds} if critique else None)
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
    critique: bool = CritiqueOpt, critique_rounds: int = CritiqueRoundsOpt,
):
    """Execute a saved blueprint or graph file."""
    with user_errors(), progress_events(not as_json) as on_event:
        plan_obj = load_plan_file(file)
        if critique and not isinstance(plan_obj, Blueprint):
            raise UserError("--critique needs a blueprint file (a graph file is run as it is); use plan --json")
        engine = make_engine(profile, config, keep_going, on_event, critique={"rounds": critique_rounds} if critique else None)
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
        print(json.dumps(describe_turn(turn), ensure_ascii=False))
        return
    out = Console(highlight=False, soft_wrap=True)
    colour = {"done": "green", "failed": "red", "rejected": "red"}.get(turn.status, "yellow")
    out.print(f"[bold]turn {turn.index}[/] [{colour}]{turn.status}[/] {turn.message!r}")
    for change in turn.changes:
        out.print(f"  • {change}")
    if turn.error:
        out.print(f"  [red]{turn.error}[/]")
    if turn.run_id:
        ran = ", ".join(turn.reran) if turn.reran else "nothing (all from cache)"
        out.print(f"  re-ran: {ran}   [dim]({len(turn.cached)} from cache)[/]")
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

    with user_errors():
        engine = make_engine(profile, config, False, None)
        sessions = Sessions(engine)
        if list_sessions:
            rows = sessions.list()
            if as_json:
                print(json.dumps(rows, indent=2))
                return
            table = Table("turns", "updated", "title")
            table.add_column("session", no_wrap=True)
            for r in rows:
                table.add_row(str(r["turns"]), r["updated"][:19], (r["title"] or "")[:60], r["session_id"])
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
        if message:
            for text in message:
                with progress_events(not as_json) as on_event:
                    turn = session.send(text, on_event)  # a message it cannot read: one line, exit 2
                _print_turn(turn, as_json)
                if turn.status == "failed":
                    raise typer.Exit(1)
            return
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
                err.print(f"[red]error:[/] {e}", highlight=False)
                continue
            err.print(f"branched into session {session.id}", highlight=False)
            continue
        try:
            with progress_events(not as_json) as on_event:
                turn = session.send("undo" if text == "/undo" else text, on_event)
        except UserError as e:
            err.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
            continue
        _print_turn(turn, as_json)


@app.command(epilog="Example: scenewright serve --port 8765   (then open http://127.0.0.1:8765/)")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but the loopback needs --token."),
    port: int = typer.Option(8765, "--port", min=0, max=65535),
    token: Optional[str] = typer.Option(None, "--token", help="Require this bearer token (default: $SCENEWRIGHT_TOKEN)."),
    max_body: int = typer.Option(1024 * 1024, "--max-body", min=1024, max=64 * 1024 * 1024, help="Request body limit, bytes."),
    profile: str = ProfileOpt, config: Optional[Path] = ConfigOpt, window_ms: float = WindowOpt,
):
    """Serve the HTTP API (OpenAPI at /docs) and the chat web page."""
    import uvicorn

    from agent.server import create_app, resolve_token

    with user_errors():
        need = resolve_token(host, token)
        engine = make_engine(profile, config, False, None, window_ms=window_ms)
        application = create_app(engine, token=need, max_body=max_body)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"scenewright serving http://{shown}:{port}/  (API docs: /docs; profile {engine.profile.name};"
              f" store {engine.store.home}){'  token required' if need else ''}", highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


@app.command(epilog="Example: scenewright batch prompts.txt --concurrency 4 --out results.jsonl")
def batch(
    file: Path = typer.Argument(..., help="A text file (one prompt a line) or a folder of plan files (*.json)."),
    concurrency: int = typer.Option(2, "--concurrency", "-j", min=1, max=64, help="Items run at the same time."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Results JSONL (default: <FILE>.results.jsonl)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=2**32 - 1, help="Seed for every item (prompts: 0)."),
    profile: str = ProfileOpt, config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt,
    window_ms: float = WindowOpt,
):
    """Run many prompts or plan files; one item's failure never stops the others. Exit 1 if any failed."""
    from agent.batch import load_items, run_batch

    with user_errors():
        items = load_items(file)
        engine = make_engine(profile, config, False, None, window_ms=window_ms)
        target = out or file.with_name(file.name.rstrip("/") + ".results.jsonl")
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
            err.print(f"  [red]{r.source}[/]: {r.error}", highlight=False, soft_wrap=True)
        print(f"results: {summary.out}")
    raise typer.Exit(summary.exit_code)


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
            out.print(f"[{colour}]{c.status.upper()}[/] {c.name}: {c.summary()}")
            for d in c.diffs[1:6] if c.status == "fail" else []:
                out.print(f"    {'(downstream) ' if d.downstream else ''}{d.line()}")
        out.print(f"{sum(c.status == 'pass' for c in report.cases)}/{len(report.cases)} match ({report.seconds:.2f}s)")
    for c in report.cases:
        if c.status == "error":
            err.print(f"[bold red]error:[/] {c.name}: {c.error}", highlight=False, soft_wrap=True)
    raise typer.Exit(report.exit_code)


suite_app = typer.Typer(help="Golden-case suites for `scenewright replay`.", no_args_is_help=True, rich_markup_mode=None)
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


@suite_app.command("list")
def suite_list_cmd(suite: Path = typer.Option(Path("scenewright-suite"), "--suite")):
    """List a suite's cases."""
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

from agent.cli_library import library_app  # noqa: E402

app.add_typer(library_app, name="library")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
