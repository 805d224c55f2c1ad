"""How the rule planner's reading time grows with the prompt: linear, and bounded by the 8,000-character cap.

    python bench/planner_scaling.py [--sizes 8000,32000,128000] [--repeats 3]

Times ``planners.reader.read`` (no cap) on a repeated multi-sentence prompt of each size, best of
``--repeats``, and prints seconds, microseconds per character and the growth ratio to the previous size (4x the
characters should take about 4x the time; issue 11 measured 32 KB at 3 s and 1 MB at over 90 s before the fix).
Then times ``RuleBasedPlanner.plan`` on 32 KB and 1 MB prompts, which read only the first 8,000 characters.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planners import reader
from planners.rule_based import RuleBasedPlanner

SENTENCE = "A red apple on a wooden table next to a blue mug. The mug is to the left of a lamp. It shines. "


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="8000,32000,128000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    prev = None
    print(f"{'chars':>9} {'read s':>8} {'us/char':>8} {'growth':>7}")
    for size in (int(s) for s in args.sizes.split(",")):
        prompt = (SENTENCE * (size // len(SENTENCE) + 1))[:size]
        t = best(lambda: reader.read(prompt), args.repeats)
        growth = f"{t / prev:.1f}x" if prev else "-"
        print(f"{size:>9} {t:>8.3f} {1e6 * t / size:>8.2f} {growth:>7}")
        prev = t
    planner = RuleBasedPlanner()
    for size in (32_000, 1_000_000):
        prompt = (SENTENCE * (size // len(SENTENCE) + 1))[:size]
        t = best(lambda: planner.plan(prompt), args.repeats)
        print(f"plan() on {size:>9} chars (cut to 8000 before reading): {t:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
