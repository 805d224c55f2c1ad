"""Deterministic stand-ins for the VLM roles and the image scorers, so the critique loops run anywhere.

- ``describe_image``: image statistics as a description. Lighting from mean brightness, style from saturation,
  palette from the nearest named colours of a 16×16 thumbnail, the background from the border's colour, and
  objects from 4-connected groups of thumbnail cells whose colour name differs from the background (largest
  five, with their boxes). It cannot read labels or recognise anything: object names are "<colour> shape".
- ``compare_images``: reference vs candidate, region by region. Each described object whose colour in the
  reference box differs from the candidate's gets a content revision to the reference's colour; a brightness gap
  gets a lighting revision; a background colour gap a composition revision. The revised description is returned.
- ``rewrite_prompt``: the description's clauses (``ImageDescription.clauses``) subject first (summary, objects,
  relations, then style, lighting, palette, composition), and variant ``k`` the same clauses rotated by ``k``:
  every variant keeps all of the description and differs in order (CLIP weighs early tokens most). It cannot
  find synonyms; beyond as many variants as there are clauses the prompts repeat (the seeds still differ).
- ``image_similarity``: 0.5 × thumbnail similarity (1 − mean absolute difference of 16×16 thumbnails, the
  "CLIP" slot) + 0.5 × colour-histogram intersection (the "DINOv2" slot), weighted by ``clip_weight``.
- ``aesthetic_score``: the preview ``critique``'s statistics score (exposure, contrast, saturation), so the
  critique's suggestions are exactly the edits that raise it.

All are pure functions of their inputs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from PIL import Image

from tools.colors import COLORS
from tools.preview import PreviewCritique, PreviewTool
from tools.preview_render import rgb
from tools.roles import (
    AestheticIn,
    AestheticOut,
    CompareImagesIn,
    CompareImagesOut,
    CritiqueIn,
    DescribedObject,
    DescribeImageIn,
    DescribeImageOut,
    ImageDescription,
    ImageSimilarityIn,
    ImageSimilarityOut,
    Revision,
    RewritePromptIn,
    RewritePromptOut,
)

VERSION = "preview-vlm-1"
GRID = 16
_NAMES = [n for n in COLORS if " " not in n]
_TABLE = np.array([COLORS[n] for n in _NAMES], np.float64)


def _thumb(image: Image.Image, n: int = GRID) -> np.ndarray:
    return np.asarray(rgb(image).resize((n, n), Image.Resampling.BOX), np.float64)


def color_name(rgb_value) -> str:
    d = ((_TABLE - np.asarray(rgb_value, np.float64)) ** 2).sum(-1)
    return _NAMES[int(d.argmin())]


def _lighting(mean: float) -> str:
    return "dim, low-key" if mean < 0.3 else "bright, high-key" if mean > 0.65 else "soft, even"


def _components(names: list[list[str]], background: str) -> list[tuple[str, list[tuple[int, int]]]]:
    n = len(names)
    seen: set[tuple[int, int]] = set()
    groups = []
    for y in range(n):
        for x in range(n):
            if (y, x) in seen or names[y][x] == background:
                continue
            name, stack, cells = names[y][x], [(y, x)], []
            seen.add((y, x))
            while stack:
                cy, cx = stack.pop()
                cells.append((cy, cx))
                for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                    if 0 <= ny < n and 0 <= nx < n and (ny, nx) not in seen and names[ny][nx] == name:
                        seen.add((ny, nx))
                        stack.append((ny, nx))
            groups.append((name, cells))
    return sorted(groups, key=lambda g: -len(g[1]))


def describe(image: Image.Image) -> ImageDescription:
    t = _thumb(image)
    lum = t @ np.array([0.299, 0.587, 0.114]) / 255
    sat = (t.max(-1) - t.min(-1)) / np.maximum(t.max(-1), 1)
    names = [[color_name(t[y, x]) for x in range(GRID)] for y in range(GRID)]
    border = [names[0][x] for x in range(GRID)] + [names[-1][x] for x in range(GRID)]
    border += [names[y][0] for y in range(GRID)] + [names[y][-1] for y in range(GRID)]
    background = max(set(border), key=border.count)
    counts: dict[str, int] = {}
    for row in names:
        for c in row:
            counts[c] = counts.get(c, 0) + 1
    palette = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
    objects = []
    for name, cells in _components(names, background):
        if len(cells) < 3 or len(objects) >= 5:
            continue
        ys, xs = [c[0] for c in cells], [c[1] for c in cells]
        box = [min(xs) / GRID, min(ys) / GRID, (max(xs) + 1) / GRID, (max(ys) + 1) / GRID]
        objects.append(DescribedObject(name=f"{name} shape", type="object", attributes={"color": name}, box=box))
    mean = float(lum.mean())
    if objects:
        cx = sum((o.box[0] + o.box[2]) / 2 for o in objects) / len(objects)
        composition = "centered" if abs(cx - 0.5) < 0.12 else ("left-weighted" if cx < 0.5 else "right-weighted")
    else:
        composition = "empty, open frame"
    style = "vivid colours" if float(sat.mean()) > 0.45 else "muted colours"
    things = ", ".join(o.name for o in objects) or "nothing in particular"
    relations = []
    for a, b in zip(objects, objects[1:]):
        relation = "left of" if a.box[2] <= b.box[0] else "right of" if a.box[0] >= b.box[2] else "near"
        relations.append(f"{a.name} {relation} {b.name}")
    return ImageDescription(
        summary=f"{things} on a {background} background, {_lighting(mean)} light",
        style=style, lighting=_lighting(mean), palette=", ".join(palette),
        composition=f"{background} background, {composition}", objects=objects, relations=relations[:4],
    )  # fmt: skip


def _box_color(t: np.ndarray, box) -> np.ndarray:
    n = t.shape[0]
    x0, y0 = int(box[0] * n), int(box[1] * n)
    x1, y1 = max(x0 + 1, int(np.ceil(box[2] * n))), max(y0 + 1, int(np.ceil(box[3] * n)))
    return t[y0:y1, x0:x1].reshape(-1, 3).mean(0)


def compare(reference: Image.Image, candidate: Image.Image, desc: ImageDescription) -> CompareImagesOut:
    r, c = _thumb(reference), _thumb(candidate)
    revisions: list[Revision] = []
    objects = []
    for o in desc.objects:
        want, got = color_name(_box_color(r, o.box)), color_name(_box_color(c, o.box))
        if want != got:
            revisions.append(Revision(aspect="content", change=f"make the {o.name} {want} (it is {got})"))
            base = o.name.split(" ", 1)[1] if o.name.split(" ", 1)[0] in COLORS and " " in o.name else o.name
            o = o.model_copy(update={"name": f"{want} {base}", "attributes": {**o.attributes, "color": want}})
        objects.append(o)
    update: dict = {"objects": objects}
    lr, lc = float((r @ [0.299, 0.587, 0.114]).mean() / 255), float((c @ [0.299, 0.587, 0.114]).mean() / 255)
    if abs(lr - lc) > 0.08:
        word = "brighter" if lr > lc else "darker"
        revisions.append(Revision(aspect="style", change=f"{word} lighting ({lc:.2f} → {lr:.2f})"))
        update["lighting"] = f"{_lighting(lr)}, {word}"
    edge = lambda t: np.concatenate([t[0], t[-1], t[:, 0], t[:, -1]]).mean(0)  # noqa: E731
    want_bg, got_bg = color_name(edge(r)), color_name(edge(c))
    if want_bg != got_bg:
        revisions.append(Revision(aspect="composition", change=f"{want_bg} background (it is {got_bg})"))
        rest = desc.composition.split(",", 1)[1].strip() if "," in desc.composition else desc.composition
        update["composition"] = f"{want_bg} background, {rest}"
    return CompareImagesOut(revisions=revisions, description=desc.model_copy(update=update))


def rewrite(desc: ImageDescription, n: int) -> list[str]:
    clauses = desc.clauses()
    if not clauses:
        return ["a scene"] * n
    summary = " ".join(desc.summary.split())  # template order is style… first; the rewrite puts the subject first
    at = clauses.index(summary) if summary in clauses else 0
    ordered = clauses[at:] + clauses[:at]
    return [", ".join(ordered[i % len(ordered):] + ordered[: i % len(ordered)])[:1000] for i in range(n)]


def similarity(reference: Image.Image, image: Image.Image, clip_weight: float) -> ImageSimilarityOut:
    r, c = _thumb(reference), _thumb(image)
    thumb = 1.0 - float(np.abs(r - c).mean()) / 255
    bins = lambda t: np.histogramdd(t.reshape(-1, 3), bins=4, range=[(0, 256)] * 3)[0].ravel() / t[..., 0].size  # noqa: E731
    hist = float(np.minimum(bins(_thumb(reference, 32)), bins(_thumb(image, 32))).sum())
    score = clip_weight * thumb + (1 - clip_weight) * hist
    return ImageSimilarityOut(score=round(score, 6), clip=round(thumb, 6), dino=round(hist, 6))


class PreviewDescribeImage(PreviewTool):
    name = "describe_image"
    version: ClassVar[str] = VERSION
    Input = DescribeImageIn
    Output = DescribeImageOut

    def one(self, inp: DescribeImageIn) -> DescribeImageOut:
        return DescribeImageOut(description=describe(inp.image))


class PreviewCompareImages(PreviewTool):
    name = "compare_images"
    version: ClassVar[str] = VERSION
    Input = CompareImagesIn
    Output = CompareImagesOut

    def one(self, inp: CompareImagesIn) -> CompareImagesOut:
        return compare(inp.reference, inp.candidate, inp.description)


class PreviewRewritePrompt(PreviewTool):
    name = "rewrite_prompt"
    version: ClassVar[str] = VERSION
    Input = RewritePromptIn
    Output = RewritePromptOut

    def one(self, inp: RewritePromptIn) -> RewritePromptOut:
        return RewritePromptOut(prompts=rewrite(inp.description, inp.n))


class PreviewImageSimilarity(PreviewTool):
    name = "image_similarity"
    version: ClassVar[str] = VERSION
    Input = ImageSimilarityIn
    Output = ImageSimilarityOut

    def one(self, inp: ImageSimilarityIn) -> ImageSimilarityOut:
        return similarity(inp.reference, inp.image, inp.clip_weight)


class PreviewAestheticScore(PreviewTool):
    name = "aesthetic_score"
    version: ClassVar[str] = VERSION
    Input = AestheticIn
    Output = AestheticOut

    def one(self, inp: AestheticIn) -> AestheticOut:
        return AestheticOut(score=PreviewCritique().one(CritiqueIn(image=inp.image, prompt="")).score)


def preview_vlm_tools(delay_ms: int = 0) -> list:
    return [cls(delay_ms=delay_ms) for cls in (PreviewDescribeImage, PreviewCompareImages, PreviewRewritePrompt,
                                               PreviewImageSimilarity, PreviewAestheticScore)]
