"""Cross-run batching: N concurrent ``generate`` runs through one Engine vs the same N runs one after another.

    python bench/cross_run.py                       # tiny random diffusers models on CPU, N = 1, 4, 8
    python bench/cross_run.py --profile preview     # the preview tools (no weights)
    python bench/cross_run.py --ns 8 --window-ms 20 --json

Both sides run the same prompts and seeds on a fresh store (nothing from the cache) through one Engine; the
concurrent side starts the N runs together on N threads, so the engine's scheduler can put their ready nodes in
shared batches; the sequential side runs them one after another on one worker thread (model calls run on a run's
own thread, and torch's per-thread OpenMP state made main-thread calls up to 10× slower on a loaded 2-core machine,
which would flatter the concurrent side). Reported: wall seconds each way, the throughput ratio (one after another
/ together), how many tool calls each side made, and the mean batch size of the model ("gpu") calls; the final
images are checked
against the sequential ones (byte-equal for deterministic tools; for diffusers, batched kernels may differ by
float round-off, so the largest pixel difference is reported instead).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PROMPTS = [
    "a red apple to the left of a blue vase on a wooden table",
    "two black cats on a green sofa under a yellow lamp",
    "a white boat on a dark lake at night with a full moon",
    "a brown dog next to a red bicycle in a sunny park",
    "an orange fox in front of a snowy pine forest",
    "a silver car parked beside a tall glass building",
    "a small wooden house on a hill under a purple sky",
    "three green bottles on a shelf next to a blue clock",
]


def run_side(profile, config, home: Path, prompts: list[str], window_ms: float, together: bool) -> dict:
    from agent.api import Engine

    engine = Engine(profile, config=config, home=home, batch_window_ms=window_ms)
    engine.registry  # build the tools and load nothing yet
    warm = engine.generate(PROMPTS[-1] + " warm-up", seed=99)  # load models before timing
    assert warm.ok, warm.failed
    sched = engine.executor.scheduler
    sched.batches.clear()
    outcomes: list = [None] * len(prompts)
    t0 = time.perf_counter()
    if together:
        runs = [engine.start_run({"kind": "prompt", "prompt": p, "seed": i}) for i, p in enumerate(prompts)]
        barrier = threading.Barrier(len(prompts))

        def one(i):
            barrier.wait()
            outcomes[i] = engine.generate(prompts[i], seed=i, run=runs[i])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:  # on one worker thread, like each concurrent run: torch's per-thread state (OpenMP teams) is then alike
        def all_in_turn():
            for i, p in enumerate(prompts):
                outcomes[i] = engine.generate(p, seed=i)

        worker = threading.Thread(target=all_in_turn)
        worker.start()
        worker.join()
    seconds = time.perf_counter() - t0
    assert all(o.ok for o in outcomes), [o.failed for o in outcomes]
    mine = {id(engine.registry.get(n)): engine.registry.get(n).resource for n in engine.registry.names()}
    calls = [b for b in sched.batches if b["tool_id"] in mine]
    gpu = [b for b in calls if mine[b["tool_id"]] == "gpu"]
    engine.close()
    return {
        "seconds": seconds,
        "calls": len(calls),
        "gpu_calls": len(gpu),
        "gpu_mean_batch": round(sum(b["size"] for b in gpu) / len(gpu), 2) if gpu else None,
        "shared_calls": sum(b["runs"] > 1 for b in calls),
        "images": [o.image for o in outcomes],
    }


def max_pixel_diff(a: str, b: str) -> int:
    import numpy as np
    from PIL import Image

    x = np.asarray(Image.open(a).convert("RGB")).astype(int)
    y = np.asarray(Image.open(b).convert("RGB")).astype(int)
    return int(abs(x - y).max())


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--config", default=None, help="profiles.toml (default for tiny: built under tests/.cache)")
    ap.add_argument("--ns", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--window-ms", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.profile == "tiny" and args.config is None:
        from tiny_models import write_tiny_profile

        args.config = str(write_tiny_profile(ROOT / "tests" / ".cache" / "tiny-bench"))
    rows = []
    for n in args.ns:
        prompts = PROMPTS[:n] if n <= len(PROMPTS) else [PROMPTS[i % len(PROMPTS)] + f" #{i}" for i in range(n)]
        with tempfile.TemporaryDirectory() as home:
            seq = run_side(args.profile, args.config, Path(home) / "seq", prompts, args.window_ms, together=False)
            par = run_side(args.profile, args.config, Path(home) / "par", prompts, args.window_ms, together=True)
            diffs = [max_pixel_diff(a, b) for a, b in zip(seq["images"], par["images"])]
        rows.append({
            "runs": n, "sequential_s": round(seq["seconds"], 3), "concurrent_s": round(par["seconds"], 3),
            "speedup": round(seq["seconds"] / par["seconds"], 2),
            "runs_per_s_seq": round(n / seq["seconds"], 2), "runs_per_s_conc": round(n / par["seconds"], 2),
            "calls_seq": seq["calls"], "calls_conc": par["calls"],
            "gpu_calls_seq": seq["gpu_calls"], "gpu_calls_conc": par["gpu_calls"],
            "gpu_batch_seq": seq["gpu_mean_batch"], "gpu_batch_conc": par["gpu_mean_batch"],
            "shared_calls": par["shared_calls"], "max_pixel_diff": max(diffs),
        })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        cols = list(rows[0])
        print(f"profile {args.profile}, batching window {args.window_ms} ms")
        print(" ".join(f"{c:>14}" for c in cols))
        for r in rows:
            print(" ".join(f"{str(r[c]):>14}" for c in cols))
    return rows


if __name__ == "__main__":
    main()
