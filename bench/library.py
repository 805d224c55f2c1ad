"""Reference library bench: index N generated images, time queries, check that the planted match is retrieved.

    python bench/library.py [--n 200] [--queries 50] [--clip]   (--clip: also the tiny random CLIP embedder)

Images are seeded noise textures in one of 8 colours with captions "a <colour> <noun> number i"; one planted
image ("a Volocopter 2X air taxi, white and blue") must come back first for a text query. With the tiny CLIP
(random weights: text search is meaningless) the planted check is an image query with a resized copy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

COLORS = [(210, 30, 30), (30, 170, 40), (30, 60, 210), (235, 220, 30), (130, 40, 160), (240, 140, 20),
          (120, 120, 120), (20, 200, 200)]
NAMES = ["red", "green", "blue", "yellow", "purple", "orange", "grey", "cyan"]
NOUNS = ["car", "dog", "flower", "lamp", "chair", "bird", "boat", "house"]


def generate(folder: Path, n: int) -> str:
    rng = np.random.default_rng(0)
    captions = {}
    for i in range(n):
        c = i % len(COLORS)
        arr = np.clip(np.array(COLORS[c]) + rng.normal(0, 25, (96, 96, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"g{i:05d}.png")
        captions[f"g{i:05d}.png"] = f"a {NAMES[c]} {NOUNS[(i // 8) % 8]} number {i}"
    planted = Image.new("RGB", (96, 96), (245, 245, 250))
    planted.paste((40, 70, 200), (20, 40, 76, 60))
    planted.save(folder / "planted.png")
    captions["planted.png"] = "a Volocopter 2X air taxi, white and blue"
    (folder / "captions.json").write_text(json.dumps(captions))
    return "planted.png"


def bench(embedder, folder: Path, lib_dir: Path, queries: int, text: bool) -> dict:
    from tools.retrieval import Library

    lib = Library(lib_dir, embedder)
    report = lib.add(folder)
    t_index = report.seconds
    again = lib.add(folder)
    if text:
        q = "Volocopter 2X air taxi"
    else:
        q = Image.open(folder / "planted.png").convert("RGB").resize((80, 80))
    lib.search(q, 5)  # warm
    times = []
    for _ in range(queries):
        t = time.perf_counter()
        hits = lib.search(q, 5)
        times.append(time.perf_counter() - t)
    top = hits[0][0]
    t = time.perf_counter()
    lib.retrieve("Volocopter 2X air taxi", Image.new("RGB", (64, 64), (200, 200, 200)), k=20)
    t_retrieve = time.perf_counter() - t
    return {
        "embedder": embedder.id, "index": lib.index.backend, "images": len(lib), "index_s": round(t_index, 3),
        "per_image_ms": round(1000 * t_index / max(1, len(report.added)), 2),
        "re_add_duplicates": len(again.duplicates), "re_add_s": round(again.seconds, 3),
        "query_ms_median": round(1000 * float(np.median(times)), 3), "query_ms_p95": round(1000 * float(np.percentile(times, 95)), 3),
        "retrieve_reflective_ms": round(1000 * t_retrieve, 3),
        "planted_top1": top.caption.startswith("a Volocopter"), "query": "text" if text else "image (resized copy)",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--clip", action="store_true")
    args = ap.parse_args()
    from tools.retrieval import ClipEmbedder, StatsEmbedder

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "imgs").mkdir()
        generate(tmp / "imgs", max(50, args.n))
        rows = [bench(StatsEmbedder(), tmp / "imgs", tmp / "lib-stats", args.queries, text=True)]
        if args.clip:
            from tiny_models import build_tiny_models

            clip = build_tiny_models(Path(__file__).resolve().parent.parent / "tests" / ".cache" / "tiny-models-scene-text")["clip"]
            rows.append(bench(ClipEmbedder(clip), tmp / "imgs", tmp / "lib-clip", args.queries, text=False))
    for r in rows:
        print(json.dumps(r))
    if not all(r["planted_top1"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
