"""``scenewright doctor``: check (and with ``--repair``, fix) a home. The checks live in ``agent/doctor.py``."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from agent.cli import JsonOpt, app, user_errors


@app.command(epilog="Example: scenewright doctor   ·   scenewright doctor --repair")
def doctor(
    repair: bool = typer.Option(False, "--repair", help="Fix what can be fixed safely (see below); otherwise only check."),
    as_json: bool = JsonOpt,
):
    """Check the store: index integrity, dangling cache rows, interrupted writes, damaged artifacts and records.
    Exit 0 when healthy (or all repaired), 1 when problems remain."""
    from agent.doctor import check_home
    from agent.store import default_home

    home = default_home()
    with user_errors():
        findings = check_home(home, repair=repair)
    left = [f for f in findings if not f.repaired]
    if as_json:
        print(json.dumps({"home": str(home), "findings": [f.to_dict() for f in findings], "ok": not left}, indent=2))
    else:
        out = Console(highlight=False, soft_wrap=True, markup=False)
        for f in findings:
            out.print(f.line())
        fixed = len(findings) - len(left)
        out.print(f"{home}: {'healthy' if not findings else f'{len(findings)} problem(s), {fixed} repaired'}"
                  + ("; `scenewright doctor --repair` fixes what it can" if left and not repair else ""))
    raise typer.Exit(1 if left else 0)
