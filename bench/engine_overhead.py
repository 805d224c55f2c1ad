"""Engine overhead: the LLM Blueprint recipe through the engine vs. the same pipeline calls made directly.

    python bench/engine_overhead.py                          # tiny random models on CPU
    python bench/engine_overhead.py --device cuda --real-size  # SD1.5-size random models on a GPU

Both sides do the same model work: one GLIGEN call for the scene, one CLIP pass over every box, then
``--iters`` rounds of one batched inpaint call over every box and one CLIP pass over the results (the threshold
is 1.0, so every box is refined every round on both sides), and a final paste of the best boxes. The engine side
adds what a real run pays for: graph validation, cache keys, PNG artifacts, events, loop expansion and the
preview ``composite`` tool; it runs on a fresh store each time, so nothing comes from the cache. The two sides
alternate (engine, direct, engine, …) and the medians are compared in one process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests")]

from backends import _sync, boxes_for, build_tools, direct_pipeline_calls  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--real-size", action="store_true")
    ap.add_argument("--objects", type=int, default=4)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default=str(ROOT / "tests" / ".cache" / "tiny-models"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--timeline", action="store_true", help="print one engine run's node timeline")
    args = ap.parse_args(argv)
    args.dtype = args.dtype or ("float16" if args.device.startswith("cuda") else "float32")
    steps = args.steps or (20 if args.real_size else 4)
    size = args.size or (512 if args.real_size else 64)

    from agent.blueprint import Blueprint, Canvas, SceneObject
    from agent.executor import Executor
    from agent.recipes import compile_llm_blueprint
    from agent.store import Store
    from tools.base import Registry
    from tools.preview import preview_tools

    _, tools = build_tools(args)
    registry = Registry(preview_tools())
    for tool in tools.values():
        registry.add(tool)
        (tool.model if hasattr(tool, "model") else tool.pipeline)()  # load before timing

    boxes = boxes_for(args.objects)
    bp = Blueprint(
        prompt="bench scene", canvas=Canvas(width=size, height=size), background="a room",
        objects=[SceneObject(name=f"o{i}", description=f"a photo of object {i}", box=b) for i, b in enumerate(boxes)],
    )
    graph = compile_llm_blueprint(bp, registry, steps=steps, threshold=1.0, max_iters=args.iters)
    objects = [{"name": o.name, "phrase": o.description, "box": o.box} for o in bp.objects]
    layout, inpaint, clip = tools["layout_to_image"].pipeline(), tools["regional_repaint"].pipeline(), tools["region_check"].model()

    def engine(events=None) -> float:
        with tempfile.TemporaryDirectory() as home:
            t = time.perf_counter()
            ex = Executor(registry, Store(Path(home)), on_event=events.append if events is not None else None)
            result = ex.run(graph)
            _sync(args.device)
            elapsed = time.perf_counter() - t
            ex.close()
            assert result.ok and result.cached_nodes == 0, result.failed
            return elapsed

    def direct() -> float:
        t = time.perf_counter()
        direct_pipeline_calls(layout, inpaint, clip, objects, prompt=bp.global_prompt(), width=size, height=size,
                              steps=steps, threshold=1.0, max_iters=args.iters)
        _sync(args.device)
        return time.perf_counter() - t

    engine(), direct()  # warm-up both
    e_times, d_times = [], []
    for _ in range(args.repeats):
        e_times.append(engine())
        d_times.append(direct())
    e, d = statistics.median(e_times), statistics.median(d_times)
    if args.timeline:
        events: list[dict] = []
        engine(events)
        for ev in events:
            if ev["event"] in ("started", "finished"):
                print(f"{ev['t'] * 1000:9.1f} ms  {ev['event']:<9} {ev['node']:<28} {ev.get('ms') or '':>9} batch {ev.get('batch')}")
    result = {
        "device": args.device, "dtype": args.dtype, "real_size": args.real_size, "size": size, "steps": steps,
        "objects": args.objects, "iters": args.iters, "repeats": args.repeats,
        "engine_ms": round(e * 1000, 1), "direct_ms": round(d * 1000, 1), "ratio": round(e / d, 3),
        "engine_all_ms": [round(x * 1000, 1) for x in e_times], "direct_all_ms": [round(x * 1000, 1) for x in d_times],
    }
    print(f"engine overhead — {args.device}, {'real size' if args.real_size else 'tiny'} models, {size}px, {steps} steps, "
          f"{args.objects} objects x {args.iters} refinement rounds, median of {args.repeats}")
    print(f"engine {result['engine_ms']:.0f} ms   direct {result['direct_ms']:.0f} ms   ratio {result['ratio']:.3f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
