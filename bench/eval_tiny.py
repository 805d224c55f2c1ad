"""``scenewright eval`` end to end on images, with tiny random models: the harness, not the scores.

    python bench/eval_tiny.py [--device cpu|cuda] [--dtype float32|float16] [--out DIR] [--suite FILE]

Builds (once, under --out) the tiny random SD 1.5 / GLIGEN / inpaint / CLIP folders of the test suite plus a
tiny random OWL-ViT detector, writes a profile naming them (``models.detector``, ``models.clip``), and runs
``scenewright eval`` on a GenEval-format suite (default: tests/data/eval_geneval_tiny.jsonl) through the real
pipelines, then runs it again to show the resumed eval does no work. The images are noise and the detector is
random, so the scores mean nothing; what this shows is that generation, detection, colour, the table, eval.json
and the report all run, and the time each pass takes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", default="bench-eval-tiny")
    ap.add_argument("--suite", default=str(ROOT / "tests" / "data" / "eval_geneval_tiny.jsonl"))
    args = ap.parse_args(argv)
    from typer.testing import CliRunner

    from agent.cli import app
    from tiny_models import build_tiny_owl, write_tiny_profile

    out = Path(args.out).resolve()
    models = out / "models"
    config = write_tiny_profile(models, ip_adapter=False)
    if not (models / "owl" / "config.json").exists():
        build_tiny_owl(models / "owl")
    text = config.read_text().replace('device = "cpu"', f'device = "{args.device}"')
    text = text.replace('dtype = "float32"', f'dtype = "{args.dtype}"')
    config.write_text(text + f"detector = {json.dumps(str(models / 'owl'))}\n")
    os.environ["SCENEWRIGHT_HOME"] = str(out / "home")
    cmd = ["eval", args.suite, "--profile", "tiny", "--config", str(config), "--out", str(out / "eval"),
           "--threshold", "0.0", "--json"]
    times = []
    for attempt in ("first", "resumed"):
        t0 = time.perf_counter()
        result = CliRunner().invoke(app, cmd + (["--fresh"] if attempt == "first" else []), catch_exceptions=False)
        times.append(time.perf_counter() - t0)
        if result.exit_code != 0:
            print(result.output)
            return result.exit_code
    summary = json.loads(result.stdout)
    print(f"device {args.device} {args.dtype}: {summary['done']} cases; first pass {times[0]:.1f} s, resumed "
          f"{times[1]:.1f} s")
    for tag, c in summary["categories"].items():
        print(f"  {tag:<16} {c['correct']}/{c['judged']} judged, {c['unjudged']} unjudged")
    print(f"report: {out / 'eval' / 'report.html'} (random weights: the scores are meaningless)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
