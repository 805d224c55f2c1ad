"""Backend bench: what batching buys in the real-model tools.

    python bench/backends.py                          # tiny random models on CPU (built once under tests/.cache)
    python bench/backends.py --device cuda --real-size  # SD1.5-size inpaint/GLIGEN UNets + CLIP ViT-B/16, fp16
    python bench/backends.py --json results.json

Rows (each median of ``--repeats`` after one warm-up):
- ``regional_repaint``: ``--boxes`` (8) repaints of one scene as ONE tool call vs one call per box → ratio.
- ``region_check``: the same boxes' CLIP checks as one forward vs one per box.
- ``layout_to_image``: ``--layouts`` (4) GLIGEN layouts in one per-sample-layout loop vs one call each.
- ``direct_blueprint``: ``direct_pipeline_calls``, the LLM Blueprint recipe's model calls made straight on the
  pipelines (no graph, no executor, no cache) — the baseline an engine-overhead bench compares a run against.

``--real-size`` builds real-architecture-size models from configs with random weights (nothing to download:
images are noise; timings are what matter): the shapes, dtypes and step counts of the real profile, so a GPU
run measures what a user's run would cost. The tiny default loads through
``from_pretrained`` like a real profile.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.model_utils import box_pixels, generators  # noqa: E402
from tools.diffusion import GLIGEN_BETA, _steps, paste_box, repaint_mask  # noqa: E402


# --- the LLM Blueprint recipe, straight on the pipelines ------------------------------------------------------
def clip_scores(clip, images, boxes, texts) -> list[float]:
    """Cosine(crop, text) clamped to [0, 1] for every (image, box, text), one forward pass."""
    import torch

    model, proc = clip
    crops = [im.crop(box_pixels(b, im.width, im.height)) for im, b in zip(images, boxes)]
    uniq = list(dict.fromkeys(texts))
    enc = proc(text=uniq, images=crops, return_tensors="pt", padding=True, truncation=True, max_length=77)
    dev = next(model.parameters()).device
    enc = {k: v.to(dev) for k, v in enc.items()}
    enc["pixel_values"] = enc["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        out = model(**enc)
    img = torch.nn.functional.normalize(out.image_embeds.float(), dim=-1)
    txt = torch.nn.functional.normalize(out.text_embeds.float(), dim=-1)
    idx = torch.tensor([uniq.index(t) for t in texts], device=txt.device)
    return [float(s) for s in (img * txt[idx]).sum(-1).clamp(0, 1).cpu()]


def direct_pipeline_calls(
    layout_pipe,
    inpaint_pipe,
    clip,
    objects: list[dict],
    *,
    prompt: str,
    negative_prompt: str = "",
    width: int = 512,
    height: int = 512,
    steps: int = 20,
    guidance: float = 7.5,
    strength: float = 0.75,
    threshold: float = 0.25,
    max_iters: int = 2,
    seed: int = 0,
) -> dict:
    """The model calls of ``agent.recipes.llm_blueprint`` made directly, batched the way the graph allows:

    1 GLIGEN call for the scene; 1 CLIP forward over every box; then per iteration 1 inpaint call over every box
    still under ``threshold`` (each repainting its best image so far) and 1 CLIP forward over the results;
    finally the best box of each object is pasted onto the scene, largest box first. ``objects`` are
    ``{"name", "phrase", "box"}`` with normalised xyxy boxes. Returns the image, the calls made and timings.
    """
    t0 = time.perf_counter()
    calls = {"layout_to_image": 0, "region_check": 0, "regional_repaint": 0}
    secs = {k: 0.0 for k in calls}

    def timed(kind, fn):
        t = time.perf_counter()
        out = fn()
        secs[kind] += time.perf_counter() - t
        calls[kind] += 1
        return out

    phrases = [o.get("phrase") or o["name"] for o in objects]
    boxes = [list(o["box"]) for o in objects]
    scene = timed("layout_to_image", lambda: layout_pipe(
        prompt=prompt, negative_prompt=negative_prompt, gligen_phrases=phrases, gligen_boxes=boxes,
        gligen_scheduled_sampling_beta=GLIGEN_BETA, width=width, height=height, num_inference_steps=steps,
        guidance_scale=guidance, generator=generators([seed])[0],
    ).images[0].convert("RGB"))
    scores = timed("region_check", lambda: clip_scores(clip, [scene] * len(objects), boxes, phrases))
    best = [(scene, s) for s in scores]
    for it in range(max_iters):
        todo = [i for i, (_, s) in enumerate(best) if s < threshold]
        if not todo:
            break
        masks, pxs = zip(*(repaint_mask(boxes[i], width, height) for i in todo))
        imgs = [best[i][0] for i in todo]
        out = timed("regional_repaint", lambda: inpaint_pipe(
            prompt=[phrases[i] for i in todo], negative_prompt=[negative_prompt] * len(todo), image=imgs,
            mask_image=list(masks), width=width, height=height, strength=strength,
            num_inference_steps=_steps(steps, strength),
            guidance_scale=guidance, generator=generators([seed + 1000 * (it + 1) + i for i in todo]),
        ).images)
        painted = [paste_box(im, o, px) for im, o, px in zip(imgs, out, pxs)]
        new = timed("region_check", lambda: clip_scores(
            clip, painted, [boxes[i] for i in todo], [phrases[i] for i in todo]))
        for i, im, s in zip(todo, painted, new):
            if s > best[i][1]:
                best[i] = (im, s)
    image = scene.copy()
    order = sorted(range(len(objects)), key=lambda i: -((boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])))
    for i in order:
        px = box_pixels(boxes[i], width, height)
        image.paste(best[i][0].crop(px), px[:2])
    return {"image": image, "scores": [s for _, s in best], "calls": calls, "seconds": secs,
            "total_seconds": time.perf_counter() - t0}


# --- setup ----------------------------------------------------------------------------------------------------
def _sync(device: str):
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _median_ms(fn, device: str, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def build_tools(args):
    """(manager, {role: tool}) for tiny models loaded from disk, or real-size random models put in memory."""
    import torch

    from tools.clip_check import ClipRegionCheck
    from tools.diffusion import LayoutToImage, RegionalRepaint
    from tools.models import ModelManager

    mgr = ModelManager(args.device, args.dtype, memory_budget_gb=80, cpu_offload=False)
    if args.real_size:
        from tiny_models import build_clip, build_pipeline

        ids = {"inpaint": "random:sd15-inpaint", "layout_to_image": "random:gligen-sd14", "clip": "random:clip-vit-b16"}
        dt = mgr.torch_dtype
        with torch.device(args.device):  # initialise straight on the device: 3 UNets on a CPU take minutes
            for role in ("inpaint", "layout_to_image"):
                pipe = build_pipeline(role, real_size=True).to(dtype=dt)
                pipe.set_progress_bar_config(disable=True)
                mgr.put(role, ids[role], pipe)
            model, proc = build_clip(real_size=True)
            mgr.put("clip", ids["clip"], (model.to(dtype=dt).eval(), proc))
    else:
        from tiny_models import build_tiny_models

        paths = build_tiny_models(args.models)
        ids = {k: paths[k] for k in ("inpaint", "layout_to_image", "clip")}
    tools = {
        "regional_repaint": RegionalRepaint(mgr, ids["inpaint"]),
        "layout_to_image": LayoutToImage(mgr, ids["layout_to_image"]),
        "region_check": ClipRegionCheck(mgr, ids["clip"]),
    }
    return mgr, tools


def boxes_for(n: int) -> list[list[float]]:
    """n boxes in a 4-wide grid, alternating large and small (small ones get the padded mask)."""
    out = []
    for i in range(n):
        col, row = i % 4, (i // 4) % 2
        w = 0.22 if i % 2 == 0 else 0.12
        x0, y0 = 0.02 + 0.245 * col, 0.05 + 0.5 * row
        out.append([round(x0, 3), round(y0, 3), round(x0 + w, 3), round(y0 + 0.3 if i % 2 == 0 else y0 + 0.15, 3)])
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="float32 (default on cpu) / float16 (default on cuda)")
    ap.add_argument("--real-size", action="store_true", help="SD1.5-size random models built in memory (GPU)")
    ap.add_argument("--boxes", type=int, default=8)
    ap.add_argument("--layouts", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default 4 tiny, 20 real size)")
    ap.add_argument("--size", type=int, default=None, help="image side (default 64 tiny, 512 real size)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default=str(ROOT / "tests" / ".cache" / "tiny-models"), help="tiny model folder")
    ap.add_argument("--skip", default="", help="comma-separated rows to skip")
    ap.add_argument("--json", default=None, help="write results here")
    args = ap.parse_args(argv)
    args.dtype = args.dtype or ("float16" if args.device.startswith("cuda") else "float32")
    steps = args.steps or (20 if args.real_size else 4)
    size = args.size or (512 if args.real_size else 64)
    skip = set(filter(None, args.skip.split(",")))

    import numpy as np
    import torch
    from PIL import Image

    from tools.roles import LayoutToImageIn, RegionalRepaintIn, RegionCheckIn

    t = time.perf_counter()
    mgr, tools = build_tools(args)
    for tool in tools.values():  # load now, not inside the first timing
        (tool.model if hasattr(tool, "model") else tool.pipeline)()
    setup_s = time.perf_counter() - t
    scene = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    boxes = boxes_for(args.boxes)
    rows = []

    def row(name, batched_fn, single_fn, n):
        b = _median_ms(batched_fn, args.device, args.repeats)
        s = _median_ms(single_fn, args.device, args.repeats)
        rows.append({"row": name, "n": n, "batched_ms": round(b, 1), "one_by_one_ms": round(s, 1),
                     "ratio": round(s / b, 2)})
        print(f"  {name}: batched {b:.0f} ms, one by one {s:.0f} ms, ratio {s / b:.2f}", file=sys.stderr)

    if "regional_repaint" not in skip:
        rp = tools["regional_repaint"]
        ins = [RegionalRepaintIn(image=scene, box=b, prompt=f"object {i}", steps=steps, seed=i)
               for i, b in enumerate(boxes)]
        row("regional_repaint", lambda: rp.run(ins), lambda: [rp.run([x]) for x in ins], len(ins))
    if "region_check" not in skip:
        rc = tools["region_check"]
        ins = [RegionCheckIn(image=scene, box=b, text=f"a photo of object {i}") for i, b in enumerate(boxes)]
        row("region_check", lambda: rc.run(ins), lambda: [rc.run([x]) for x in ins], len(ins))
    if "layout_to_image" not in skip:
        l2i = tools["layout_to_image"]
        ins = [LayoutToImageIn(prompt=f"scene {i}", width=size, height=size, steps=steps, seed=i,
                               objects=[{"name": f"o{j}", "phrase": f"object {j}", "box": b}
                                        for j, b in enumerate(boxes[i % 2:][: 2 + i % 3])])
               for i in range(args.layouts)]
        row("layout_to_image", lambda: l2i.run(ins), lambda: [l2i.run([x]) for x in ins], len(ins))
    direct = None
    if "direct_blueprint" not in skip:
        objects = [{"name": f"o{j}", "phrase": f"a photo of object {j}", "box": b} for j, b in enumerate(boxes[:4])]
        layout = tools["layout_to_image"].pipeline()
        inpaint = tools["regional_repaint"].pipeline()
        clip = tools["region_check"].model()
        fn = lambda: direct_pipeline_calls(layout, inpaint, clip, objects, prompt="four objects",  # noqa: E731
                                           width=size, height=size, steps=steps)
        fn()
        _sync(args.device)
        direct = fn()
        direct.pop("image")
        print(f"  direct_blueprint: {direct['total_seconds'] * 1000:.0f} ms, calls {direct['calls']}", file=sys.stderr)

    info = {
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "dtype": args.dtype, "real_size": args.real_size, "steps": steps, "size": size, "repeats": args.repeats,
        "torch": torch.__version__, "python": platform.python_version(), "setup_s": round(setup_s, 1),
        "model_gb": round(mgr.total_bytes() / 2**30, 2),
    }
    if args.device.startswith("cuda"):
        info["max_memory_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    result = {"info": info, "rows": rows, "direct_blueprint": direct}

    print(f"\nbackends bench — {info['device']}, {args.dtype}, {'real size' if args.real_size else 'tiny'} models, "
          f"{size}px, {steps} steps, median of {args.repeats}")
    print(f"{'row':<18}{'n':>4}{'batched ms':>13}{'one-by-one ms':>16}{'ratio':>8}")
    for r in rows:
        print(f"{r['row']:<18}{r['n']:>4}{r['batched_ms']:>13.1f}{r['one_by_one_ms']:>16.1f}{r['ratio']:>8.2f}")
    if direct:
        per = ", ".join(f"{k} {v}×/{direct['seconds'][k] * 1000:.0f} ms" for k, v in direct["calls"].items())
        print(f"direct LLM Blueprint calls (4 objects): {direct['total_seconds'] * 1000:.0f} ms ({per})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
