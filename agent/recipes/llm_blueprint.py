"""LLM Blueprint (Gani et al., ICLR 2024) as a graph.

    scene (layout_to_image of all boxes)
      ├─ check.<obj>  region_check of each box against its description
      │    └─ refine.<obj>  loop while score < threshold, at most ``max_iters`` times:
      │                       repaint the box (new seed each iteration) → re-check → keep the best
      └─ compose  paste each object's best box onto the scene, largest box first
           └─ text   render the scene texts into their regions (when there are any)

Choices, written down:
- The paper refines boxes one after another on a shared image. Here every box is refined from the same global
  scene and the winners are composited, so all failing boxes repaint *in one batch* per iteration. Because a
  repaint only changes pixels inside its box, the composite equals the sequential result wherever boxes do not
  overlap; where they do, the smaller (later, nearer) box wins, as in the paper's area-descending order.
- The next iteration repaints from the best image so far, not the last one, so a bad attempt never compounds.
- The paper's CLIP-gradient guidance is replaced by best-of-iterations selection on the same CLIP score
  (the training-free substitute in the methods notes).
"""

from __future__ import annotations

from agent.blueprint import Blueprint
from agent.graph import Graph, LoopNode
from agent.recipes.common import node_maker, scene_node
from agent.recipes.common import slug as make_slug
from tools.base import Registry

RECIPE = "llm_blueprint"


def compile_llm_blueprint(
    bp: Blueprint,
    registry: Registry,
    *,
    seed: int | None = None,
    steps: int = 20,
    guidance: float = 7.5,
    threshold: float = 0.25,
    max_iters: int = 2,
    strength: float = 0.75,
    scene_text: bool = False,
    text_regions: list[dict] | None = None,
    text_threshold: float = 0.9,
    text_iters: int = 2,
    scene_prompt: str | None = None,
) -> Graph:
    """Compile a blueprint into the LLM Blueprint graph. Same blueprint and options → same graph JSON.

    ``scene_text``: the final ``text`` node becomes the SceneVTG subgraph (glyph → inpaint → OCR-verified loop per
    region, ``agent/recipes/scene_text.py``) when the registry has its tools; otherwise plain ``render_text``.
    Objects needing a reference get RealRAG's ``retrieve.<obj>`` node, feeding the repaint loop, whenever the
    registry has ``retrieve_reference`` (a reference library is configured; ``agent/recipes/realrag.py``).
    ``scene_prompt`` replaces the global pass's prompt (ImageRepainter's rewritten prompts); boxes are unchanged.
    """
    from agent.recipes.realrag import reference_node, reference_queries

    queries = reference_queries(bp) if "retrieve_reference" in registry else {}

    node = node_maker(registry)

    w, h = bp.canvas.width, bp.canvas.height
    nodes: list = [scene_node(node, bp, steps=steps, guidance=guidance, prompt=scene_prompt)]
    # the paper refines in descending box area; composite in the same order so nearer, smaller boxes win
    ordered = sorted(bp.objects, key=lambda o: -((o.box[2] - o.box[0]) * (o.box[3] - o.box[1])))
    taken: set[str] = set()
    layers = []
    for obj in ordered:
        slug = make_slug(obj.name, taken)
        text = obj.description or obj.name
        nodes.append(node(f"check.{slug}", "region_check", image={"ref": "scene.image"}, box=obj.box, text=text))
        ref_input = {}
        if obj.name in queries:  # RealRAG branch: gated retrieval feeds the repaint loop's reference
            nodes.append(reference_node(node, slug, obj, queries[obj.name], threshold=threshold))
            ref_input = {"reference": {"ref": f"retrieve.{slug}.reference"}}
        nodes.append(
            LoopNode(
                id=f"refine.{slug}",
                state={"image": {"ref": "scene.image"}, "score": {"ref": f"check.{slug}.score"}},
                body=[
                    node(
                        "repaint",
                        "regional_repaint",
                        image={"ref": "$state.image"},
                        box=obj.box,
                        prompt=text,
                        negative_prompt=bp.negative_prompt,
                        strength=strength,
                        steps=steps,
                        guidance=guidance,
                        **ref_input,
                    ),
                    node("check", "region_check", image={"ref": "repaint.image"}, box=obj.box, text=text),
                ],
                update={"image": "repaint.image", "score": "check.score"},
                threshold=threshold,
                max_iters=max_iters,
            )
        )
        layers.append({"image": {"ref": f"refine.{slug}.image"}, "box": obj.box})
    nodes.append(node("compose", "composite", base={"ref": "scene.image"}, layers=layers))
    output = "compose.image"
    from agent.recipes.scene_text import scene_text_nodes, supports_scene_text
    from agent.recipes.scene_text import text_regions as _regions

    if (bp.texts or text_regions) and scene_text and supports_scene_text(registry):  # proposed texts: regions only
        nodes += scene_text_nodes(
            node, "compose.image", text_regions if text_regions is not None else _regions(bp), width=w, height=h,
            context=bp.background or bp.style, negative_prompt=bp.negative_prompt, steps=steps, guidance=guidance,
            threshold=text_threshold, max_iters=text_iters,
        )
        output = "text.image"
    elif bp.texts:
        texts = [{"content": t.content, "box": t.box, "style": t.style} for t in bp.texts]
        nodes.append(node("text", "render_text", image={"ref": "compose.image"}, texts=texts))
        output = "text.image"
    return Graph(recipe=RECIPE, seed=bp.seed if seed is None else seed, nodes=nodes, output=output)
