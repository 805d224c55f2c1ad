"""``scenewright library train``: RealRAG's reflective retriever trained on a library (tools/retriever_head.py).

Why here and not in tools: the self-reflective negatives are images *the profile's own generator* makes for each
caption, so training needs the engine (its ``text_to_image`` tool, run as a graph through the executor so every
generated image is cached in the store and a second ``train`` regenerates nothing).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def generate_negatives(engine, captions: list[str], *, per_caption: int = 1, seed: int = 0) -> list[list]:
    """The generator's images for each caption (cached node outputs), ``per_caption`` seeds each."""
    from agent.executor import Executor
    from agent.graph import Graph
    from agent.recipes.common import node_maker

    registry = engine.registry
    if "text_to_image" not in registry:
        raise ValueError(f"profile '{engine.profile.name}' has no text_to_image tool to make reflective negatives")
    node = node_maker(registry)
    prof = engine.profile
    nodes = [node(f"gen{i}_{j}", "text_to_image", prompt=c, width=prof.width, height=prof.height,
                  steps=prof.steps, seed=seed + j)
             for i, c in enumerate(captions) for j in range(per_caption)]
    graph = Graph(recipe="library-train", seed=seed, nodes=nodes, output=f"{nodes[-1].id}.image")
    ex = Executor(registry, engine.store)
    result = ex.run(graph)
    if not result.ok:
        raise ValueError(f"generating the reflective negatives failed at {', '.join(result.failed)[:200]}")
    return [[ex.load_image(result.outputs[f"gen{i}_{j}"]["image"]) for j in range(per_caption)]
            for i in range(len(captions))]


def train_library(engine, lib, *, epochs: int = 50, seed: int = 0, reflect: str = "generated", weight: float = 2.0,
                  tau: float = 0.07, per_caption: int = 1, on_epoch: Callable[[int, float], None] | None = None) -> dict:
    """Train and save the head inside the library; returns the sidecar (metrics included)."""
    from tools.retriever_head import save_head, train_head

    if not lib.embedder.id.startswith("clip:"):
        raise ValueError(f"training needs CLIP features; this library uses '{lib.embedder.id}' (use a profile with"
                         " a clip model, e.g. sd15 or tiny)")
    entries = lib.entries()
    if len(entries) < 2:
        raise ValueError(f"the library has {len(entries)} image(s); training needs at least 2 (caption, image) pairs")
    captions = [e.caption or "" for e in entries]
    text = lib.embedder.embed_texts(captions)
    images = lib.index.vectors([e.id for e in entries])
    gen_feats = [np.zeros((0, images.shape[1]), np.float32)] * len(entries)
    generator = None
    if reflect != "none":
        gens = generate_negatives(engine, captions, per_caption=per_caption, seed=seed)
        gen_feats = [lib.embedder.embed_images(g) for g in gens]
        generator = engine.registry.get("text_to_image").identity()
    res = train_head(text, images, gen_feats, reflect=reflect, epochs=epochs, seed=seed, weight=weight, tau=tau,
                     on_epoch=on_epoch)
    meta = {"base": lib.embedder.id, "library": lib.pairs_digest(), "pairs": len(entries), "seed": seed,
            "epochs": epochs, "reflect": reflect, "weight": weight, "tau": tau, "per_caption": per_caption,
            "profile": engine.profile.name, "generator": generator, "metrics": res.metrics,
            "losses": [round(x, 6) for x in res.losses]}
    head = save_head(lib.folder, res.head, meta)
    lib.forget_head()
    return head.meta
