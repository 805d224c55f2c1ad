"""Executor overhead on synthetic graphs of no-op nodes, and the speed-up of a fully cached rerun.

    python bench/executor.py                 # 1,000 and 10,000 nodes
    python bench/executor.py --sizes 100000 --json

The last row repeats the first size with ``--work-ms`` of simulated model time per node, which is where a
cached rerun pays off. The graph is layered: each node reads one or two outputs of the layer before it, so the scheduler, reference
resolution, cache keys, batching, event records and SQLite cache writes are all exercised. The no-op tool does
no work, so the time per node is the engine's own overhead. Run record and cache live in a temp folder.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from agent.executor import Executor  # noqa: E402
from agent.graph import Graph  # noqa: E402
from agent.store import Store  # noqa: E402
from fake_tools import NoopTool  # noqa: E402
from tools.base import Registry  # noqa: E402


def layered_graph(n: int, width: int = 100, seed: int = 0) -> Graph:
    rng = random.Random(seed)
    nodes, prev = [], []
    for i in range(n):
        inputs = {"a": {"ref": f"{rng.choice(prev)}.y"} if prev else 0.0, "i": i}
        nodes.append({"id": f"n{i}", "tool": "noop", "inputs": inputs})
        if (i + 1) % width == 0:
            prev = [f"n{j}" for j in range(i + 1 - width, i + 1)]
    return Graph.model_validate({"seed": seed, "nodes": nodes, "output": f"n{n - 1}.y"})


def measure(n: int, work_ms: float = 0.0) -> dict:
    graph = layered_graph(n)
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home))
        registry = Registry([NoopTool(work_ms)])
        record = store.new_run(profile="bench", prompt=f"{n} no-op nodes")
        t0 = time.perf_counter()
        first = Executor(registry, store).run(graph, record)
        cold = time.perf_counter() - t0
        record.close()
        record = store.new_run(profile="bench", prompt=f"{n} no-op nodes, cached")
        t0 = time.perf_counter()
        second = Executor(registry, store).run(graph, record)
        warm = time.perf_counter() - t0
        record.close()
    assert first.ok and second.ok and second.cached_nodes == n
    return {
        "nodes": n,
        "work_ms": work_ms,
        "cold_s": round(cold, 3),
        "us_per_node": round(cold / n * 1e6, 1),
        "cached_s": round(warm, 3),
        "cached_us_per_node": round(warm / n * 1e6, 1),
        "cached_speedup": round(cold / warm, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--work-ms", type=float, default=1.0, help="simulated model time per node for the cache row")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [measure(n) for n in args.sizes] + [measure(args.sizes[0], args.work_ms)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'nodes':>8} {'work ms':>8} {'cold s':>8} {'µs/node':>8} {'cached s':>9} {'µs/node':>8} {'speed-up':>8}")
    for r in rows:
        print(
            f"{r['nodes']:>8} {r['work_ms']:>8} {r['cold_s']:>8} {r['us_per_node']:>8} {r['cached_s']:>9}"
            f" {r['cached_us_per_node']:>8} {r['cached_speedup']:>7}x"
        )


if __name__ == "__main__":
    main()
