"""RealRAG (Lyu et al., ICML 2025), training-free approximation (methods notes §4.4), as a graph.

Per object that needs a reference (``needs_reference``, or named by ``blueprint.references``)::

    scene             the draft: layout_to_image of every box (the generator's own attempt)
    check.<obj>       region_check of the draft's box against the description (the gate's evidence)
    retrieve.<obj>    retrieve_reference: skipped when the draft already matches (check >= threshold); else the
                      library's top-k by text relevance, re-ranked by relevance - weight * max(0, sim(draft) -
                      margin) above a relevance floor; the reason for the choice is in its outputs
    refine.<obj>      loop: regional_repaint of the box *with the reference* (IP-Adapter on diffusers profiles,
                      pasted into the box on the preview profile) → re-check, best kept
    compose           the best boxes onto the draft

:func:`reference_node` is also used by the LLM Blueprint recipe, so objects needing references get this branch
in the main flow whenever a library is configured (the ``retrieve_reference`` tool is registered).
"""

from __future__ import annotations

from agent.blueprint import Blueprint
from agent.graph import Graph, LoopNode, ToolNode
from agent.recipes.common import node_maker, scene_node
from agent.recipes.common import slug as make_slug
from tools.base import Registry

RECIPE = "realrag"


def reference_queries(bp: Blueprint) -> dict[str, str]:
    """Object name → retrieval query, for the objects that need a reference."""
    out = {r.object: r.query or r.object for r in bp.references}
    for o in bp.objects:
        if o.needs_reference and o.name not in out:
            out[o.name] = o.description or o.name
    return out


def reference_node(node, slug: str, obj, query: str, *, threshold: float, draft_ref: str = "scene.image",
                   weight: float = 0.5, margin: float = 0.2, floor: float = 0.0, k: int = 20) -> ToolNode:
    return node(f"retrieve.{slug}", "retrieve_reference", query=query, draft={"ref": draft_ref}, box=obj.box,
                draft_score={"ref": f"check.{slug}.score"}, gate=threshold, k=k, weight=weight, margin=margin,
                floor=floor)


def compile_realrag(
    bp: Blueprint,
    registry: Registry,
    *,
    seed: int | None = None,
    steps: int = 20,
    guidance: float = 7.5,
    threshold: float = 0.25,
    max_iters: int = 2,
    strength: float = 0.75,
    weight: float = 0.5,
    margin: float = 0.2,
    floor: float = 0.0,
    gate: float | None = None,
) -> Graph:
    """``gate``: skip retrieval when the draft's check reaches it (default: ``threshold``; above 1: never skip)."""
    if "retrieve_reference" not in registry:
        raise ValueError("no reference library is configured; add images with 'scenewright library add DIR'")
    node = node_maker(registry)

    nodes: list = [scene_node(node, bp, steps=steps, guidance=guidance)]
    queries = reference_queries(bp)
    taken: set[str] = set()
    layers = []
    for obj in sorted(bp.objects, key=lambda o: -((o.box[2] - o.box[0]) * (o.box[3] - o.box[1]))):
        slug = make_slug(obj.name, taken)
        if obj.name not in queries:
            continue
        text = obj.description or obj.name
        nodes.append(node(f"check.{slug}", "region_check", image={"ref": "scene.image"}, box=obj.box, text=text))
        nodes.append(reference_node(node, slug, obj, queries[obj.name], threshold=threshold if gate is None else gate,
                                    weight=weight,
                                    margin=margin, floor=floor))
        nodes.append(LoopNode(
            id=f"refine.{slug}",
            state={"image": {"ref": "scene.image"}, "score": {"ref": f"check.{slug}.score"}},
            body=[
                node("repaint", "regional_repaint", image={"ref": "$state.image"}, box=obj.box, prompt=text,
                     negative_prompt=bp.negative_prompt, strength=strength, steps=steps, guidance=guidance,
                     reference={"ref": f"retrieve.{slug}.reference"}),
                node("check", "region_check", image={"ref": "repaint.image"}, box=obj.box, text=text),
            ],
            update={"image": "repaint.image", "score": "check.score"},
            threshold=threshold,
            max_iters=max_iters,
        ))
        layers.append({"image": {"ref": f"refine.{slug}.image"}, "box": obj.box})
    nodes.append(node("compose", "composite", base={"ref": "scene.image"}, layers=layers))
    return Graph(recipe=RECIPE, seed=bp.seed if seed is None else seed, nodes=nodes, output="compose.image")
