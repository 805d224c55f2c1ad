"""Executor overhead per node on three graph shapes, beside a plain topological loop (the floor) and LangGraph.

    python bench/executor.py                      # 1,000 nodes per shape; LangGraph on the same graphs
    python bench/executor.py --sizes 10000 --json
    python bench/executor.py --work-ms 1          # every node sleeps 1 ms (a stand-in for a model call)

Shapes: ``chain`` (each node reads the one before: no batching possible, every node is a scheduling round trip),
``wide`` (one root and N-1 independent nodes reading it: one big batch), ``layered`` (layers of 100, each node
reading one or two outputs of the layer before). The engine runs each shape three ways: with cache and run record
(what ``generate`` does), without either (``use_cache=False``, no record), and fully cached (a rerun). The floor
calls the same tool once per node in topological order with the inputs resolved from a dict: no cache keys, no
events, no threads — what any executor must at least pay. LangGraph (``pip install 'scenewright[bench]'``) runs the
same graph as a ``StateGraph`` (one graph node per node, a join edge where a node has several inputs), if it is
installed. Everything runs in one process, one after another, so the ratios are side by side.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, TypedDict

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from agent.executor import Executor  # noqa: E402
from agent.graph import Graph, iter_refs, validate_graph  # noqa: E402
from agent.run import Run  # noqa: E402
from agent.store import Store  # noqa: E402
from fake_tools import NoopIn, NoopTool  # noqa: E402
from tools.base import Registry  # noqa: E402


def chain_graph(n: int) -> Graph:
    nodes = [{"id": "n0", "tool": "noop", "inputs": {"a": 0.0, "i": 0}}]
    nodes += [{"id": f"n{i}", "tool": "noop", "inputs": {"a": {"ref": f"n{i - 1}.y"}, "i": i}} for i in range(1, n)]
    return Graph.model_validate({"nodes": nodes, "output": f"n{n - 1}.y"})


def wide_graph(n: int) -> Graph:
    nodes = [{"id": "n0", "tool": "noop", "inputs": {"a": 0.0, "i": 0}}]
    nodes += [{"id": f"n{i}", "tool": "noop", "inputs": {"a": {"ref": "n0.y"}, "i": i}} for i in range(1, n)]
    return Graph.model_validate({"nodes": nodes, "output": f"n{n - 1}.y"})


def layered_graph(n: int, width: int = 100, seed: int = 0) -> Graph:
    rng = random.Random(seed)
    nodes, prev = [], []
    for i in range(n):
        inputs = {"a": {"ref": f"{rng.choice(prev)}.y"} if prev else 0.0, "i": i}
        nodes.append({"id": f"n{i}", "tool": "noop", "inputs": inputs})
        if (i + 1) % width == 0:
            prev = [f"n{j}" for j in range(i + 1 - width, i + 1)]
    return Graph.model_validate({"seed": seed, "nodes": nodes, "output": f"n{n - 1}.y"})


SHAPES = {"chain": chain_graph, "wide": wide_graph, "layered": layered_graph}


def floor(graph: Graph, tool: NoopTool) -> float:
    """A plain topological loop: resolve each node's inputs from a dict and call the tool on it alone."""
    t0 = time.perf_counter()
    outputs: dict[str, dict] = {}
    for node in graph.nodes:  # the shapes above list nodes in topological order
        inputs = {k: outputs[v["ref"].rsplit(".", 1)[0]]["y"] if isinstance(v, dict) else v
                  for k, v in node.inputs.items()}  # fmt: skip
        outputs[node.id] = tool.run([NoopIn(**inputs)])[0].model_dump()
    return time.perf_counter() - t0


def _merge(a: dict, b: dict) -> dict:
    return {**a, **b}


class _LGState(TypedDict):
    out: Annotated[dict, _merge]


def langgraph_run(graph: Graph, tool: NoopTool) -> float | None:
    try:
        from langgraph.graph import END, START, StateGraph
    except ImportError:
        return None

    sg = StateGraph(_LGState)
    for node in graph.nodes:
        refs = {k: v["ref"].rsplit(".", 1)[0] for k, v in node.inputs.items() if isinstance(v, dict)}
        lits = {k: v for k, v in node.inputs.items() if not isinstance(v, dict)}

        def fn(state, _id=node.id, _refs=refs, _lits=lits):
            inputs = {**_lits, **{k: state["out"][src] for k, src in _refs.items()}}
            return {"out": {_id: tool.run([NoopIn(**inputs)])[0].y}}

        sg.add_node(node.id, fn)
        deps = sorted(set(refs.values()))
        if not deps:
            sg.add_edge(START, node.id)
        else:
            sg.add_edge(deps if len(deps) > 1 else deps[0], node.id)
    sg.add_edge(graph.output.rsplit(".", 1)[0], END)
    app = sg.compile()
    t0 = time.perf_counter()
    app.invoke({"out": {}}, {"recursion_limit": len(graph.nodes) + 10})
    return time.perf_counter() - t0


def engine(graph: Graph, tool: NoopTool, *, cache: bool, record: bool, home: Path) -> tuple[float, float | None]:
    """(cold seconds, cached-rerun seconds or None) through one Executor (validation included: a run pays it)."""
    store = Store(home)
    ex = Executor(Registry([tool]), store)
    try:
        rec = store.new_run(profile="bench", prompt="bench") if record else None
        t0 = time.perf_counter()
        dag = validate_graph(graph, ex.registry)
        first = ex.run(graph, run=Run(record=rec, use_cache=cache, write_cache=cache), dag=dag)
        cold = time.perf_counter() - t0
        assert first.ok, first.failed
        if rec is not None:
            rec.close()
        if not cache:
            return cold, None
        rec = store.new_run(profile="bench", prompt="bench cached") if record else None
        t0 = time.perf_counter()
        second = ex.run(graph, run=Run(record=rec), dag=validate_graph(graph, ex.registry))
        warm = time.perf_counter() - t0
        assert second.cached_nodes == len(graph.nodes)
        if rec is not None:
            rec.close()
        return cold, warm
    finally:
        ex.close()


def measure(shape: str, n: int, work_ms: float, lang_max: int) -> dict:
    graph = SHAPES[shape](n)
    tool = NoopTool(work_ms)
    with tempfile.TemporaryDirectory() as home:
        full, cached = engine(graph, tool, cache=True, record=True, home=Path(home) / "a")
        bare, _ = engine(graph, tool, cache=False, record=False, home=Path(home) / "b")
    low = floor(graph, tool)
    lang = langgraph_run(graph, tool) if n <= lang_max else None
    us = lambda s: round(s / n * 1e6, 1) if s is not None else None  # noqa: E731
    return {
        "shape": shape, "nodes": n, "work_ms": work_ms,
        "floor_us": us(low), "engine_us": us(full), "engine_bare_us": us(bare), "cached_us": us(cached),
        "langgraph_us": us(lang),
        "engine_over_floor_us": round(us(full) - us(low), 1), "bare_over_floor_us": round(us(bare) - us(low), 1),
        "engine_vs_floor": round(full / low, 2), "langgraph_vs_engine": round(lang / full, 2) if lang else None,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--work-ms", type=float, default=0.0, help="simulated model time per node")
    ap.add_argument("--langgraph-max", type=int, default=2000, help="largest graph to give LangGraph (it is slow)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for shape in args.shapes:  # warm up (imports, pydantic validators, SQLite) before anything is timed
        measure(shape, 50, 0.0, 50)
    rows = [measure(shape, n, args.work_ms, args.langgraph_max) for n in args.sizes for shape in args.shapes]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    cols = ["shape", "nodes", "work_ms", "floor_us", "engine_us", "engine_bare_us", "cached_us", "langgraph_us",
            "engine_over_floor_us", "bare_over_floor_us", "engine_vs_floor"]  # fmt: skip
    print("µs per node; engine = cache + record, bare = neither; cached = a full-cache rerun")
    print(" ".join(f"{c:>12}" for c in cols))
    for r in rows:
        print(" ".join(f"{str(r[c]):>12}" for c in cols))


if __name__ == "__main__":
    main()
