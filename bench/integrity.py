"""What verifying cache hits costs: a fully cached preview run with and without the artifact check.

    python bench/integrity.py --repeats 20

Each repeat opens a fresh ``Store`` (as a new CLI process does, so nothing is remembered as verified) and runs the
same blueprint from the cache; the two sides alternate and the medians are compared in one process. "unchecked"
accepts every hit as the code did before artifacts were verified; "checked" is today's read path (decode + hash
each artifact a hit names, once per process). A third side reuses one store (a long-lived server).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from agent.api import Engine  # noqa: E402
from agent.blueprint import Canvas  # noqa: E402
from agent.executor import Executor  # noqa: E402
from agent.store import Store  # noqa: E402
from chat_fixtures import scene_blueprint  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="sw-bench-integrity-"))
    bp = scene_blueprint().model_copy(update={"canvas": Canvas(width=args.size, height=args.size)})
    engine = Engine("preview", home=home)
    engine.run_blueprint(bp)
    graph = engine.compile(bp)
    real = Executor._hit_intact

    def once(check: bool, store: Store) -> float:
        Executor._hit_intact = real if check else (lambda self, *a: True)
        t0 = time.perf_counter()
        res = Executor(engine.registry, store).run(graph)
        dt = time.perf_counter() - t0
        assert res.cached_nodes == res.total_nodes
        return dt

    shared = Store(home)
    times: dict[str, list[float]] = {"unchecked": [], "checked": [], "checked, long-lived store": []}
    for _ in range(args.repeats):
        times["unchecked"].append(once(False, Store(home)))
        times["checked"].append(once(True, Store(home)))
        times["checked, long-lived store"].append(once(True, shared))
    Executor._hit_intact = real
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    nodes = len(graph.nodes)
    print(f"fully cached run, {nodes} authored nodes, {args.size}px, median of {args.repeats}:")
    for k, v in med.items():
        print(f"  {k:28s} {v:8.2f} ms   ({v / med['unchecked']:.2f}x unchecked)")
    return med


if __name__ == "__main__":
    main()
