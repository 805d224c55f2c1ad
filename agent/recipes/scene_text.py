"""SceneVTG (Zhu et al., ECCV 2024) as a graph: text that belongs in the scene and reads correctly.

Per text region (a quadrilateral; ids use the text's slug ``s``)::

    text.s.glyph   glyph_render: the exact string in a real font, warped into the quad (the condition)
    text.s.paint   text_inpaint: a diffusion pass from the glyph image at moderate strength, mask = the quad
    text.s.ocr     ocr_read: read the quad back; score = 1 - normalised edit distance to the intended text
    text.s.verify  loop while score < threshold, at most ``max_iters`` times: heavier glyphs (weight 1.4, a
                   plate behind them) and a gentler pass (strength x 0.6), new seed each iteration; best kept
    text           composite of every region's best image onto the base (only the regions' boxes change)

Choices, written down:
- Regions come from the blueprint's text boxes (axis-aligned quads, :func:`text_regions`), or are passed as
  ``regions`` (e.g. quads proposed by an LLM/VLM: the two-turn point → quad planner, ``planners/text_regions.py``). Either
  way they are validated (inside the canvas, convex, no overlaps, text fits) before compiling.
- The content is the user's text exactly (the blueprint keeps quoted text verbatim); nothing is rewritten here.
- Every region repaints from the same base and the winners are composited: regions never overlap, so this
  equals painting them one after another, and all regions' passes batch together.
- The loop's trace (score per iteration) and each iteration's OCR reading (``ocr_read`` outputs) are in the run
  record; the loop's outputs carry the best reading (``read``).
"""

from __future__ import annotations

from agent.blueprint import Blueprint
from agent.graph import Graph, LoopNode
from agent.recipes.common import node_maker, scene_node, slug
from tools.base import Registry

RECIPE = "scene_text"
TEXT_TOOLS = ("glyph_render", "text_inpaint", "ocr_read", "composite")


class RegionError(ValueError):
    """Proposed text regions that cannot be used; ``errors`` holds one message per problem."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def text_regions(bp: Blueprint) -> list[dict]:
    from tools.scene_text import box_to_quad

    return [{"text": t.content, "quad": box_to_quad(t.box), "style": t.style} for t in bp.texts]


def supports_scene_text(registry: Registry) -> bool:
    return all(t in registry for t in TEXT_TOOLS)


def scene_text_nodes(
    node,
    base_ref: str,
    regions: list[dict],
    *,
    width: int,
    height: int,
    context: str = "",
    negative_prompt: str = "",
    steps: int = 20,
    guidance: float = 7.5,
    strength: float = 0.4,
    retry_weight: float = 1.4,
    retry_strength_factor: float = 0.6,
    threshold: float = 0.9,
    max_iters: int = 2,
    out_id: str = "text",
) -> list:
    """The SceneVTG subgraph over ``base_ref`` (``"node.image"``); its last node ``out_id`` is the composite."""
    from tools.scene_text import region_box, validate_regions

    errors = validate_regions(regions, width, height)
    if errors:
        raise RegionError(errors)
    nodes: list = []
    layers = []
    taken: set[str] = set()
    base = {"ref": base_ref}
    for r in regions:
        s = f"{out_id}.{slug(r['text'], taken, limit=32, default='text')}"
        text = {"content": r["text"], "quad": [round(float(v), 4) for v in r["quad"]], "style": r.get("style", "")}
        if r.get("words"):  # word-level quads (planners/text_regions.py): each word drawn in its own quad
            text["words"] = [{"content": w["text"], "quad": [round(float(v), 4) for v in w["quad"]]}
                             for w in r["words"]]
        what = r.get("style") or "a sign"
        prompt = f'{what} with the text "{r["text"]}"' + (f", {context}" if context else "")
        paint = dict(prompt=prompt, negative_prompt=negative_prompt, steps=steps, guidance=guidance)
        nodes.append(node(f"{s}.glyph", "glyph_render", image=base, text=text, weight=1.0))
        nodes.append(node(f"{s}.paint", "text_inpaint", image={"ref": f"{s}.glyph.image"},
                          mask={"ref": f"{s}.glyph.mask"}, strength=strength, **paint))
        nodes.append(node(f"{s}.ocr", "ocr_read", image={"ref": f"{s}.paint.image"}, quad=text["quad"],
                          expected=r["text"]))
        nodes.append(
            LoopNode(
                id=f"{s}.verify",
                state={"image": {"ref": f"{s}.paint.image"}, "score": {"ref": f"{s}.ocr.score"},
                       "read": {"ref": f"{s}.ocr.text"}},
                body=[
                    node("glyph", "glyph_render", image=base, text=text, weight=retry_weight),
                    node("paint", "text_inpaint", image={"ref": "glyph.image"}, mask={"ref": "glyph.mask"},
                         strength=round(max(0.05, strength * retry_strength_factor), 4), **paint),
                    node("ocr", "ocr_read", image={"ref": "paint.image"}, quad=text["quad"], expected=r["text"]),
                ],
                update={"image": "paint.image", "score": "ocr.score", "read": "ocr.text"},
                threshold=threshold,
                max_iters=max_iters,
            )
        )
        layers.append({"image": {"ref": f"{s}.verify.image"}, "box": region_box(text["quad"], width, height)})
    nodes.append(node(out_id, "composite", base=base, layers=layers))
    return nodes


def compile_scene_text(
    bp: Blueprint,
    registry: Registry,
    *,
    seed: int | None = None,
    steps: int = 20,
    guidance: float = 7.5,
    regions: list[dict] | None = None,
    strength: float = 0.4,
    threshold: float = 0.9,
    max_iters: int = 2,
) -> Graph:
    """SceneVTG on its own: the layout scene (``scene``), then OCR-verified text per region (``text``)."""

    node = node_maker(registry)

    w, h = bp.canvas.width, bp.canvas.height
    nodes: list = [scene_node(node, bp, steps=steps, guidance=guidance)]
    regions = text_regions(bp) if regions is None else regions
    if not regions:
        return Graph(recipe=RECIPE, seed=bp.seed if seed is None else seed, nodes=nodes, output="scene.image")
    nodes += scene_text_nodes(node, "scene.image", regions, width=w, height=h, context=bp.background or bp.style,
                              negative_prompt=bp.negative_prompt, steps=steps, guidance=guidance,
                              strength=strength, threshold=threshold, max_iters=max_iters)
    return Graph(recipe=RECIPE, seed=bp.seed if seed is None else seed, nodes=nodes, output="text.image")
