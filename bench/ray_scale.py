"""Ray backend: throughput of a batch of tiny-profile runs with 1 vs 2 model actors, and the per-batch overhead
of a remote call against the local executor on the same graphs.

    PYTHONPATH=$PWD python bench/ray_scale.py --items 8 --concurrency 4

Each configuration gets a fresh store (no cache hits) and one warm-up run first (actors start and load their
models once; that start-up is reported separately). Overhead per batch = (Ray seconds - local seconds) / tool
calls, on single runs of the same prompt and seed, warm. On a 2-core machine two actors can at most double
throughput; the tiny models are so small that the per-call overhead dominates, which is what this measures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

PROMPTS = ["a red cube left of a green ball", "a cat on a sofa, a sign that says HI", "two birds over a lake",
           "a blue car under a tree", "three apples on a plate", "a dog next to a red door, a sign reading OPEN",
           "a lamp beside a book", "a boat on the sea at sunset"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="single-run timings per executor (median)")
    args = ap.parse_args()

    import ray

    from agent.api import Engine
    from agent.batch import BatchItem, run_batch
    from agent.profiles import get_profile
    from tiny_models import write_tiny_profile

    tmp = Path(tempfile.mkdtemp(prefix="ray-scale-"))
    tiny = get_profile("tiny", write_tiny_profile(tmp / "models"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    items = [BatchItem(index=i, source=f"p:{i}", kind="prompt", prompt=PROMPTS[i % len(PROMPTS)])
             for i in range(args.items)]  # fmt: skip
    report: dict = {"items": args.items, "concurrency": args.concurrency}

    def engine(kind: str, actors: int, name: str) -> Engine:
        prof = tiny.model_copy(update={"ray": tiny.ray.model_copy(update={"actors": actors, "num_cpus": 0.5})})
        return Engine(prof, home=tmp / name, executor=kind)

    for kind, actors in (("local", 0), ("ray", 1), ("ray", 2)):
        label = kind if kind == "local" else f"ray-{actors}"
        e = engine(kind, actors, label)
        t0 = time.perf_counter()
        e.generate("warm up: a vase on a table", seed=99)
        startup = time.perf_counter() - t0
        singles = []
        calls = 0
        for r in range(args.repeats):  # warm single runs of one graph: the overhead comparison
            t0 = time.perf_counter()
            out = e.generate("a green bottle right of a yellow cup", seed=1000 + r)
            singles.append(time.perf_counter() - t0)
            events = [json.loads(x) for x in (Path(out.run_dir) / "events.jsonl").read_text().splitlines()]
            calls = sum(ev["event"] == "started" for ev in events if "node" in ev)
            calls = len({(ev["tool"], ev.get("actor"), ev["t"]) for ev in events if ev["event"] == "dispatched"}) or calls
        t0 = time.perf_counter()
        summary = run_batch(e, items, concurrency=args.concurrency, seed=3)
        secs = time.perf_counter() - t0
        assert summary.failed == 0, [r.error for r in summary.results if not r.ok]
        report[label] = {"startup_s": round(startup, 2), "single_run_s": round(statistics.median(singles), 3),
                         "batch_s": round(secs, 2), "items_per_s": round(args.items / secs, 3),
                         "calls_per_run": calls}  # fmt: skip
        e.close()
        print(label, report[label], flush=True)
    loc, r1, r2 = report["local"], report["ray-1"], report["ray-2"]
    report["speedup_2_vs_1_actor"] = round(r2["items_per_s"] / r1["items_per_s"], 2)
    report["ray2_vs_local_throughput"] = round(r2["items_per_s"] / loc["items_per_s"], 2)
    calls = r1["calls_per_run"] or 1
    report["overhead_ms_per_batch"] = round((r1["single_run_s"] - loc["single_run_s"]) / calls * 1000, 2)
    print(json.dumps(report, indent=2))
    ray.shutdown()


if __name__ == "__main__":
    main()
