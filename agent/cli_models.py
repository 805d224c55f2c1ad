"""``scenewright models``: what each role of a profile loads, whether it is here; ``pull`` and ``convert``.

``models`` reads only this machine (the Hugging Face cache and local folders). ``models pull`` is the one
command that downloads: it asks the Hub which files each role needs at its pinned revision and fetches exactly
those (huggingface_hub shows the progress). ``models convert ID`` turns a downloaded pickled-only repo into
safetensors once (``torch.load(weights_only=True)``), after which every loader uses the converted copy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

models_app = typer.Typer(
    name="models",
    help="The models a profile uses: where they are, download them (pull), convert pickled ones (convert).",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_err = Console(stderr=True)
_out = Console()

ProfileOpt = typer.Option("preview", "--profile", "-p", help="Profile name (see `scenewright profiles`).")
ConfigOpt = typer.Option(None, "--config", help="Extra profiles TOML file.")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")

STATUS_STYLE = {"ok": "green", "missing": "red", "needs-conversion": "yellow", "unusable": "red",
                "remote": "cyan", "built-in": "cyan", "stand-in": "yellow"}


def _fail(message: str, code: int = 2) -> None:
    _err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _profile(name: str, config: Path | None):
    from agent.profiles import ProfileError, get_profile

    try:
        return get_profile(name, config)
    except ProfileError as e:
        _fail(str(e))


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@models_app.callback()
def models(
    ctx: typer.Context, profile: str = ProfileOpt, config: Path | None = ConfigOpt, as_json: bool = JsonOpt,
    files: bool = typer.Option(False, "--files", help="Also list the files each role loads."),
):
    """List each role of a profile: model id and revision, status on this machine, size."""
    if ctx.invoked_subcommand is not None:
        return
    from agent.model_roles import role_status

    prof = _profile(profile, config)
    rows = role_status(prof)
    if as_json:
        print(json.dumps({"profile": prof.name, "roles": [r.to_dict() for r in rows]}, indent=2))
        return
    table = Table(title=f"profile {prof.name}", title_justify="left", pad_edge=False, box=None, header_style="bold")
    table.add_column("role", no_wrap=True)
    table.add_column("model", overflow="fold")
    table.add_column("revision", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    for r in rows:
        repo, rev = _split(r)
        table.add_row(escape(r.role), escape(repo), escape(rev), f"[{STATUS_STYLE.get(r.status, 'white')}]{r.status}[/]",
                      human(r.size) if r.size else "")
    _out.print(table)
    for r in rows:
        if files and r.files:
            _out.print(f"{escape(r.role)}: " + ", ".join(escape(f) for f in r.files), highlight=False, soft_wrap=True)
    for r in rows:
        if r.message and r.status not in ("ok", "built-in", "missing"):
            _out.print(f"{escape(r.role)}: {escape(r.message)}", highlight=False, soft_wrap=True)
    if any(r.status == "missing" for r in rows):
        _out.print(f"download with: scenewright models pull --profile {escape(prof.name)}", highlight=False)


def _split(r) -> tuple[str, str]:
    """(model without its revision, the revision: the resolved commit's first 10 hex digits, else the pin)."""
    from tools.weights import parse_spec

    if r.status == "stand-in":
        return "(none)", ""
    spec = parse_spec(r.model)
    repo = spec.repo + (f"::{spec.file}" if spec.file else "")
    if spec.local:
        return repo, "local"
    commit = r.identity.split("@", 1)[1][:10] if "@" in r.identity else ""
    rev = spec.revision or "main"
    if commit and commit != rev[:10]:
        rev = f"{rev[:12]}→{commit}" if not re.fullmatch(r"[0-9a-f]{40}", rev) else commit
    else:
        rev = rev[:10] if re.fullmatch(r"[0-9a-f]{40}", rev) else rev
    return repo, rev + (f" {r.variant}" if r.variant else "")


@models_app.command("pull")
def pull(
    roles: list[str] = typer.Argument(None, help="Only these roles (default: every role that is not here)."),
    profile: str = ProfileOpt, config: Path | None = ConfigOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be downloaded, download nothing."),
):
    """Download exactly the files the profile's models need (the only command that downloads)."""
    from agent.model_roles import plan_pull, role_status
    from tools.weights import WeightsError, pull as download

    prof = _profile(profile, config)
    todo = [r for r in role_status(prof) if r.status in ("missing",) or (roles and r.role in roles)]
    if roles:
        unknown = sorted(set(roles) - {r.role for r in role_status(prof)})
        if unknown:
            _fail(f"profile '{prof.name}' has no role {', '.join(unknown)}; `scenewright models --profile {prof.name}` lists them")
        todo = [r for r in todo if r.role in roles]
    todo = [r for r in todo if r.status not in ("remote", "built-in", "stand-in")]
    if not todo:
        _err.print(f"every model of profile '{escape(prof.name)}' is on this machine", highlight=False)
        return
    for r in todo:
        try:
            plan = plan_pull(r.role, r.model)
        except WeightsError as e:
            _fail(str(e))
        except Exception as e:  # noqa: BLE001 - the Hub unreachable, a gated repo, a bad revision: one line
            _fail(f"{r.role}: cannot list {r.model} on the Hub: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", 1)
        _err.print(f"{escape(r.role)}: {escape(str(plan.spec))} @ {plan.commit[:12]}: {len(plan.files)} files, "
                   f"{human(plan.size)}", highlight=False)
        if dry_run:
            continue
        try:
            download(plan.spec, plan.files, plan.commit)
        except Exception as e:  # noqa: BLE001
            _fail(f"{r.role}: download of {r.model} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", 1)
        if plan.pickled:
            _err.print(f"  {escape(r.role)} ships only pickled weights ({', '.join(plan.pickled)}); "
                       f"convert once with: scenewright models convert {escape(str(plan.spec).split('::')[0])}",
                       highlight=False)


@models_app.command("convert")
def convert(model: str = typer.Argument(..., help="A downloaded hub id, e.g. org/name or org/name@revision.")):
    """Convert a downloaded pickled-only model to safetensors (tensors only: torch.load(weights_only=True))."""
    from tools.weights import WeightsError, convert as run_convert

    try:
        dest = run_convert(model)
    except WeightsError as e:
        _fail(str(e))
    except ImportError:
        _fail("convert needs torch and safetensors: pip install 'scenewright[gpu]'")
    print(f"converted: {dest}")
