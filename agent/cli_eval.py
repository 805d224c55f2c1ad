"""CLI command ``scenewright eval``: score plans or images against a prompt suite (agent/eval.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from agent.cli import (ConfigOpt, JsonOpt, ModelOpt, PlannerOpt, ProfileOpt, SeedOpt, UrlOpt, app, err, make_engine,
                       user_errors)

EVAL_HELP = """Suites: a GenEval evaluation_metadata.jsonl (or any JSONL of clauses), a JSONL of
{prompt, objects, texts, relations}, or --lmd for the negation/numeracy/attribution/spatial suite scenewright
writes from --objects (one name a line). Results, eval.json and report.html go to --out; running the same
command again continues a killed eval."""


@app.command(
    "eval",
    epilog="Examples: scenewright eval --lmd --plans-only   ·   scenewright eval evaluation_metadata.jsonl -p sd15 "
           "--out geneval-sd15\n\n" + EVAL_HELP,
)
def eval_cmd(
    suite: Optional[Path] = typer.Argument(None, help="Suite file (JSONL); leave out with --lmd."),
    lmd: bool = typer.Option(False, "--lmd", help="Use the LMD-style suite generated from --objects."),
    objects: Optional[Path] = typer.Option(None, "--objects", help="Object names for --lmd, one a line."),
    per_category: int = typer.Option(25, "--per-category", min=1, max=1000, help="Prompts per --lmd category."),
    plans_only: bool = typer.Option(False, "--plans-only", help="Score the plans alone (no images, no GPU)."),
    out: Path = typer.Option(Path("scenewright-eval"), "--out", "-o", help="Folder for results and report."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over instead of continuing the eval in --out."),
    threshold: float = typer.Option(0.15, "--threshold", min=0.0, max=1.0, help="Detector score threshold."),
    nms: float = typer.Option(0.5, "--nms", min=0.0, max=1.0, help="Per-class NMS IoU (1 keeps every box)."),
    text_threshold: float = typer.Option(0.8, "--text-threshold", min=0.0, max=1.0,
                                         help="OCR: 1 - normalised edit distance needed for a text."),
    write_suite: Optional[Path] = typer.Option(None, "--write-suite", help="Also write the suite as JSONL here."),
    seed: int = SeedOpt, profile: str = ProfileOpt, config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt,
    planner: Optional[str] = PlannerOpt, url: Optional[str] = UrlOpt, llm: Optional[str] = ModelOpt,
):
    """Faithfulness: score plans (--plans-only) or generated images against a prompt suite."""
    from agent.api import UserError
    from agent.eval import Evaluation, build_scorers
    from agent.eval_report import table
    from agent.eval_suites import lmd_suite, load_suite, read_objects, write_jsonl

    with user_errors():
        if lmd == (suite is not None):
            raise UserError("give a suite file or --lmd (one of them)")
        if objects and not lmd:
            raise UserError("--objects goes with --lmd")
        cases = lmd_suite(read_objects(objects) if objects else None, per_category, seed) if lmd else load_suite(suite)
        if write_suite:
            try:
                write_jsonl(cases, write_suite)
            except OSError as e:
                raise UserError(f"cannot write the suite to {write_suite}: {e.strerror or e}") from None
        engine = make_engine(profile, config, False, None, planner, url, llm)
        detector, colours = (None, None) if plans_only else build_scorers(engine.profile, threshold=threshold,
                                                                           overlap=nms)
        name = f"lmd:{objects or 'default'}:{per_category}" if lmd else str(suite)

        def on_case(r) -> None:
            if not as_json:
                mark = {True: "pass", False: "FAIL", None: "unjudged"}[r.correct]
                err.print(f"{mark:>8} {r.id} {r.prompt[:60]}", highlight=False, markup=False)

        try:
            summary = Evaluation(engine, cases, out, plans_only=plans_only, seed=seed, detector=detector,
                                 colours=colours, text_threshold=text_threshold, on_case=on_case, suite=name).run(fresh)
        except OSError as e:  # an --out that cannot be written: one line, and the finished cases stay on disk
            raise UserError(f"cannot write {e.filename or out}: {e.strerror or e}") from None
    if as_json:
        print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=2))
    else:
        print(table(summary))
        print(f"report: {out / 'report.html'}   scores: {out / 'eval.json'}")
