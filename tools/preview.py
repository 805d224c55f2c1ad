"""The preview backend: every tool role, drawn deterministically on the CPU with Pillow and numpy, no weights.

It keeps the engine runnable anywhere (tests, CI, ``make demo``) and makes a blueprint *visible*: the picture
is a storyboard (scene-coloured background, each object a labelled shape in its box, text rendered with a real
font), and the checking tools (``region_check``, ``critique``) are honest heuristics that can fail, so the
engine's repair loops have something real to react to.

Rules every tool here keeps:

- Outputs are a pure function of the inputs (``seed`` included): the same inputs give byte-identical PNGs.
  Randomness comes only from ``numpy.random.default_rng`` seeded by ``seed`` plus stable (crc32) hashes.
- Inputs are never mutated; images are converted to new RGB images. Tools hold no mutable state.
- "The box" is always :func:`tools.preview_render.pixel_rect`: ``floor(x0*W), floor(y0*H), ceil(x1*W),
  ceil(y1*H)``. Tools that may only touch boxes (regional_repaint, render_text, composite) leave every pixel
  outside those rectangles exactly as it was (for RGB inputs; other modes are converted to RGB first).
- ``negative_prompt``, ``steps`` and ``guidance`` are accepted and ignored: there is no sampler to steer.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from typing import ClassVar

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from tools.base import NO_CONTEXT, Cancelled, Tool
from tools.colors import color_for, find_colors, hashed_color, words
from tools.preview_render import (
    apply_style,
    contrast_ratio,
    draw_shape,
    draw_text_mask,
    fit_text,
    is_round,
    luma,
    missing_glyphs,
    mix,
    pixel_rect,
    rgb,
    rgb_to_hsv,
    rgb_to_lab,
    scene_background,
    soft_noise,
    to_image,
)
from tools.roles import (
    CompositeIn,
    CritiqueIn,
    CritiqueOut,
    ImageOut,
    ImageToImageIn,
    LayoutToImageIn,
    RegionalRepaintIn,
    RegionCheckIn,
    RegionCheckOut,
    RenderTextIn,
    Suggestion,
    TextToImageIn,
)

PREVIEW_STEPS = 4  # a preview tool with a delay sleeps it in this many steps

log = logging.getLogger(__name__)

VERSION = "preview-1"


def _rng(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator seeded by ``seed`` and stable hashes of ``parts`` (never Python's per-process ``hash``)."""
    keys = [seed] + [p if isinstance(p, int) else zlib.crc32(p.encode("utf-8")) for p in parts]
    return np.random.default_rng(keys)


class PreviewTool(Tool):
    """Shared plumbing: identity, the optional simulated latency, and a per-input ``one`` method."""

    version: ClassVar[str] = VERSION
    deterministic: ClassVar[bool] = True
    resource: ClassVar[str] = "cpu"
    max_batch: ClassVar[int] = 16

    def __init__(self, delay_ms: int = 0):
        self.delay_ms = int(delay_ms)

    def identity(self) -> dict:
        return {"backend": "preview"}

    def run(self, batch, ctx=NO_CONTEXT):
        if self.delay_ms > 0:  # stands in for model latency in demos, benchmarks and crash/cancel tests
            steps = PREVIEW_STEPS  # like a denoising loop: progress per step, stops at a step when cancelled
            for step in range(steps):
                if ctx.cancelled():
                    raise Cancelled(f"{self.name} stopped at step {step}/{steps}")
                time.sleep(self.delay_ms / 1000 / steps)
                ctx.progress(step + 1, steps)
        return [self.one(inp) for inp in batch]

    def one(self, inp):  # pragma: no cover - abstract
        raise NotImplementedError


# --- 1. layout_to_image ------------------------------------------------------------------------------------
class PreviewLayoutToImage(PreviewTool):
    """A storyboard of the blueprint.

    Background from the scene words of ``background`` (or of ``prompt`` when there is none, without its colour
    words: those belong to the objects, and "a red cube left of a blue sphere" is not a red scene); each object a
    shape in its box — ellipse for round nouns, rounded rectangle otherwise — filled with the colour its phrase
    names (stripes if it names two or three; else its noun's usual colour, else a hue hashed from its name),
    outlined, and labelled with its name in DejaVu Sans sized to the box. Objects are drawn back to front by
    box bottom (larger y1 = nearer = later), so nearer objects overlap farther ones, except that a box lying
    inside another is drawn after it: a storyboard shows the cat "under" the table instead of hiding it. Style
    words (in ``style`` or ``prompt``) then apply a visible treatment (watercolor, sketch, cartoon, pixel art,
    black-and-white, sepia); labels go on last so they stay legible, along the bottom edge of the box, where
    they stay clear of the scene text a sign or banner carries in its middle."""

    name = "layout_to_image"
    version: ClassVar[str] = "preview-2"  # contained boxes on top, colourless fallback scene, labels at the bottom
    Input = LayoutToImageIn
    Output = ImageOut
    max_batch = 8

    def one(self, inp: LayoutToImageIn) -> ImageOut:
        W, H = inp.width, inp.height
        rng = _rng(inp.seed, "background")
        if inp.background:
            arr = scene_background(inp.background, W, H, rng)
        else:
            arr = scene_background(inp.prompt, W, H, rng, colour_words=False)
        canvas = to_image(arr)

        boxes = [o.box for o in inp.objects]
        depth = [sum(_inside(b, other) for j, other in enumerate(boxes) if j != i) for i, b in enumerate(boxes)]
        order = sorted(range(len(boxes)), key=lambda i: (depth[i], boxes[i][3]))  # stable: ties keep order
        drawn = []
        for i in order:
            obj = inp.objects[i]
            rect = pixel_rect(obj.box, W, H)
            colors = find_colors(obj.phrase)[:3] or [color_for(obj.phrase, obj.name)]
            draw_shape(canvas, rect, colors, is_round(obj.name) or is_round(obj.phrase), _rng(inp.seed, "object", i))
            drawn.append((obj.name, rect, colors[0]))

        canvas = apply_style(canvas, f"{inp.style} {inp.prompt}", _rng(inp.seed, "style"))
        for k, (label, rect, color) in enumerate(drawn):
            # the bottom edge, unless a box drawn over this one covers it there (the cat under the table)
            x0, y0, x1, y1 = rect
            low = (x0, y0 + 0.7 * (y1 - y0), x1, y1)
            covered = any(_overlap(low, later) > 0.05 * (x1 - x0) * (y1 - y0) for _, later, _ in drawn[k + 1:])
            _draw_label(canvas, label, rect, color, top=covered)
        return ImageOut(image=canvas)


def _inside(box, other, share: float = 0.9) -> bool:
    """Whether ``share`` of ``box``'s area lies within ``other`` (and ``box`` is the smaller)."""
    ix = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    iy = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return area > 0 and ix * iy >= share * area and area < (other[2] - other[0]) * (other[3] - other[1])


def _overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _draw_label(canvas: Image.Image, label: str, rect, color, top: bool = False) -> None:
    """Object name along the bottom of its box (the lowest 30 %; the top 30 % with ``top``): at most 22 % of the
    box tall, 80 % wide, up to two lines, ink chosen to contrast with the fill and ringed with the opposite tone
    so it reads over any treatment. Scene text sits in the middle of its sign, so the two do not cover each
    other."""
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    if w < 8 or h < 8 or not label.strip():
        return
    font, lines = fit_text(label, w * 0.8, h * 0.22, bold=True, max_lines=2, min_size=7)
    ink, ring = ((255, 255, 255), (25, 25, 25)) if luma(color) < 150 else ((20, 20, 20), (250, 250, 250))
    stroke = max(1, font.size // 12)
    edge = max(1, int(h * 0.04))  # inside the outline
    band = (x0, y0 + edge, x1, y0 + int(h * 0.3)) if top else (x0, y0 + int(h * 0.7), x1, y1 - edge)
    bw, bh = band[2] - band[0], band[3] - band[1]
    if bh < 4:
        band, bw, bh = rect, w, h
    region = canvas.crop(band)
    region.paste(ring, mask=draw_text_mask((bw, bh), lines, font, stroke=stroke))
    region.paste(ink, mask=draw_text_mask((bw, bh), lines, font))
    canvas.paste(region, band[:2])


def _surround(image: Image.Image, rect, ring: int = 4) -> tuple[int, int, int]:
    """The median colour of a ``ring``-pixel frame just outside ``rect`` (inside the image)."""
    arr = np.asarray(image, np.uint8)
    x0, y0, x1, y1 = rect
    H, W = arr.shape[:2]
    parts = [arr[max(0, y0 - ring):y0, x0:x1], arr[y1:min(H, y1 + ring), x0:x1],
             arr[y0:y1, max(0, x0 - ring):x0], arr[y0:y1, x1:min(W, x1 + ring)]]
    parts = [p.reshape(-1, 3) for p in parts if p.size] or [arr[y0:y1, x0:x1].reshape(-1, 3)]  # whole image
    pixels = np.concatenate(parts)
    return tuple(int(v) for v in np.median(pixels, axis=0))


# --- 2. text_to_image --------------------------------------------------------------------------------------
class PreviewTextToImage(PreviewTool):
    """A deterministic picture of a prompt: the scene background its words suggest, a few seeded soft blobs in
    the colours it names (else hues hashed from its words), and any style treatment it asks for. Different seeds
    move the blobs, like different samples of a real model."""

    name = "text_to_image"
    Input = TextToImageIn
    Output = ImageOut
    max_batch = 8

    def one(self, inp: TextToImageIn) -> ImageOut:
        W, H = inp.width, inp.height
        rng = _rng(inp.seed, "text_to_image")
        arr = scene_background(inp.prompt, W, H, rng)

        colors = find_colors(inp.prompt) or [hashed_color(w) for w in words(inp.prompt) if len(w) > 3][:4]
        colors = colors or [hashed_color(inp.prompt or "scene")]
        xs, ys = np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32)
        for k in range(int(rng.integers(3, 7))):
            cx, cy = rng.uniform(0.1, 0.9) * W, rng.uniform(0.2, 0.9) * H
            r = rng.uniform(0.08, 0.22) * min(W, H)
            alpha = np.outer(np.exp(-((ys - cy) / r) ** 2), np.exp(-((xs - cx) / r) ** 2))[..., None] * 0.85
            arr = arr * (1 - alpha) + np.asarray(colors[k % len(colors)], np.float32) * alpha

        image = apply_style(to_image(arr), inp.prompt, rng)
        return ImageOut(image=image)


# --- 3. regional_repaint -----------------------------------------------------------------------------------
class PreviewRegionalRepaint(PreviewTool):
    """Redraw one box, leaving every pixel outside it untouched.

    Inside the box: with a ``reference``, the reference scaled to cover the box (centre-cropped, no
    distortion); without, the current content with a fresh shape drawn over it (ellipse for round nouns),
    coloured by the prompt's colour words (else its noun's usual colour, else a hashed hue) and textured by
    seeded noise. The new content is blended over the old by ``strength``; the result is pasted into a copy of
    the image at :func:`pixel_rect` of the box."""

    name = "regional_repaint"
    Input = RegionalRepaintIn
    Output = ImageOut
    max_batch = 8
    version: ClassVar[str] = "preview-2"  # the old shape is cleared to the surroundings before the new one

    def one(self, inp: RegionalRepaintIn) -> ImageOut:
        out = rgb(inp.image)
        rect = pixel_rect(inp.box, *out.size)
        w, h = rect[2] - rect[0], rect[3] - rect[1]
        if w == 0 or h == 0:
            return ImageOut(image=out)
        old = out.crop(rect)
        rng = _rng(inp.seed, "repaint", inp.prompt)

        if inp.reference is not None:
            new = ImageOps.fit(rgb(inp.reference), (w, h), Image.Resampling.LANCZOS)
        else:
            # the old shape (pixels unlike the surroundings) is cleared to the surroundings' colour first, so a
            # rounded box repainted as an ellipse keeps no old corners; the background around both stays as it was
            around = np.asarray(_surround(out, rect), np.float32)
            shape = Image.new("RGB", (w, h), tuple(int(v) for v in around))
            colors = find_colors(inp.prompt)[:3] or [color_for(inp.prompt, inp.prompt)]
            draw_shape(shape, (0, 0, w, h), colors, is_round(inp.prompt), rng)
            o, n = np.asarray(old, np.float32), np.asarray(shape, np.float32)
            keep = ~((np.abs(o - around).max(axis=2) > 40) | (np.abs(n - around).max(axis=2) > 2))
            new = Image.fromarray(np.where(keep[..., None], o, n).astype(np.uint8))
        grain = soft_noise(rng, h, w, cells=max(2, w // 24), channels=3) * 6
        new = to_image(np.asarray(new, np.float32) + grain)

        out.paste(Image.blend(old, new, inp.strength), rect[:2])
        return ImageOut(image=out)


# --- 4. region_check ---------------------------------------------------------------------------------------
class PreviewRegionCheck(PreviewTool):
    """How well the box shows what ``text`` says, in [0, 1] — a colour heuristic, not recognition.

    If ``text`` names colours, each pixel of the crop is scored against each colour (CIE Lab distance with
    lightness half-weighted, or, for chromatic colours, a tight hue match on saturated pixels, so shading and
    darker/lighter variants still count). A colour scores 1 once it covers about half the crop (split evenly
    between the colours named); the result is the mean over colours. So a green crop for "a red apple" scores
    ~0, a red one ~1, and "a red apple on a green plate" needs both.

    If ``text`` names no colour, the score says whether *something* is there: 0.2 for a flat crop that looks
    like its surroundings, rising to 1 with the crop's contrast or its colour difference to the ring around it.
    An empty box scores 0. Large crops are box-averaged to at most 256 px (512 px for the whole image) first."""

    name = "region_check"
    Input = RegionCheckIn
    Output = RegionCheckOut
    max_batch = 32

    def one(self, inp: RegionCheckIn) -> RegionCheckOut:
        image = rgb(inp.image)
        rect = pixel_rect(inp.box, *image.size)
        if rect[2] == rect[0] or rect[3] == rect[1]:
            return RegionCheckOut(score=0.0)
        targets = find_colors(inp.text)
        if targets:
            crop = np.asarray(_shrink(image.crop(rect), 256), np.float64).reshape(-1, 3)
            lab, hsv, share = rgb_to_lab(crop), rgb_to_hsv(crop), 0.5 / len(targets)
            scores = [min(1.0, float(_color_match(lab, hsv, t).mean()) / share) for t in targets]
            score = sum(scores) / len(scores)
        else:
            small = _shrink(image, 512)
            score = 0.2 + 0.8 * _distinctness(np.asarray(small, np.float64), pixel_rect(inp.box, *small.size))
        return RegionCheckOut(score=round(float(np.clip(score, 0.0, 1.0)), 4))


def _shrink(image: Image.Image, side: int) -> Image.Image:
    """Statistics don't need every pixel: box-average down so the longer side is at most ``side``."""
    factor = -(-max(image.size) // side)
    return image.reduce(factor) if factor > 1 else image


def _color_match(lab: np.ndarray, hsv: tuple, target) -> np.ndarray:
    """Per-pixel agreement in [0, 1] between pixels (given as Lab and HSV) and one target colour."""
    t_lab = rgb_to_lab(np.asarray(target, np.float64))
    th, ts, tv = (float(x) for x in rgb_to_hsv(np.asarray(target, np.float64)))
    d = lab - t_lab
    if ts >= 0.25 and tv >= 0.25:  # chromatic target: Lab closeness, or same hue family on a coloured pixel
        de = np.sqrt((0.5 * d[:, 0]) ** 2 + d[:, 1] ** 2 + d[:, 2] ** 2)
        by_lab = np.clip(1 - (de - 8) / 32, 0, 1)
        h, s, v = hsv
        dh = np.abs((h - th + 180) % 360 - 180)
        by_hue = np.clip(1 - (dh - 8) / 22, 0, 1) * np.clip((s - 0.2) / 0.2, 0, 1) * np.clip((v - 0.15) / 0.2, 0, 1)
        return np.maximum(by_lab, 0.9 * by_hue)
    de = np.sqrt((d**2).sum(axis=1))  # white, black, grey: lightness matters fully
    return np.clip(1 - (de - 10) / 40, 0, 1)


def _distinctness(image: np.ndarray, rect) -> float:
    """0 for a flat crop the colour of its surroundings, 1 for a textured or clearly different one."""
    x0, y0, x1, y1 = rect
    crop = image[y0:y1, x0:x1]
    contrast = float(np.std(crop @ np.array([0.299, 0.587, 0.114]))) / 255 / 0.12
    H, W = image.shape[:2]
    mx, my = max(2, (x1 - x0) // 4), max(2, (y1 - y0) // 4)
    ring = np.ones((min(H, y1 + my) - max(0, y0 - my), min(W, x1 + mx) - max(0, x0 - mx)), bool)
    ring[y0 - max(0, y0 - my) : y1 - max(0, y0 - my), x0 - max(0, x0 - mx) : x1 - max(0, x0 - mx)] = False
    difference = 0.0
    if ring.any():
        around = image[max(0, y0 - my) : min(H, y1 + my), max(0, x0 - mx) : min(W, x1 + mx)][ring]
        difference = float(np.linalg.norm(crop.reshape(-1, 3).mean(0) - around.mean(0))) / 255 / 0.15
    return min(1.0, max(contrast, difference))


# --- 5. render_text ----------------------------------------------------------------------------------------
class PreviewRenderText(PreviewTool):
    """Scene text, set in DejaVu Sans, as large as each box allows, so an OCR model could read it back.

    Per text, in order: the font size (and line breaks, for tall boxes) is fitted to the box minus a small
    margin; the ink is the colour named in ``style`` or else black/white, whichever contrasts more with the
    box's current mean colour, and if contrast is weak or the background busy a ring of the opposite tone is
    added. Style words: "bold" (bold face), "neon" (glow around light-cored letters), "chalk" (seeded speckled
    strokes — the only use of ``seed``), "shadow" (drop shadow). Drawing is confined to each box's
    :func:`pixel_rect`; nothing outside the boxes changes.

    Characters the bundled font lacks (CJK, emoji…) are not dropped: they render as the font's visible .notdef
    box and a warning names them (see :func:`tools.preview_render.missing_glyphs`), since ``ImageOut`` has no
    field to report it."""

    name = "render_text"
    Input = RenderTextIn
    Output = ImageOut
    max_batch = 16

    def one(self, inp: RenderTextIn) -> ImageOut:
        out = rgb(inp.image)
        for index, item in enumerate(inp.texts):
            rect = pixel_rect(item.box, *out.size)
            w, h = rect[2] - rect[0], rect[3] - rect[1]
            if w < 2 or h < 2 or not item.content.strip():
                continue
            style = item.style.lower()
            missing = missing_glyphs(item.content, bold="bold" in style)
            if missing:
                log.warning("render_text: no bundled font has glyphs for %r in %r; they render as boxes",
                            missing, item.content)
            region = out.crop(rect)
            _draw_text(region, item.content, style, _rng(inp.seed, "text", index, item.content))
            out.paste(region, rect[:2])
        return ImageOut(image=out)


def _draw_text(region: Image.Image, content: str, style: str, rng: np.random.Generator) -> None:
    w, h = region.size
    margin = max(1, round(min(w, h) * 0.06))
    font, lines = fit_text(content, w - 2 * margin, h - 2 * margin, bold="bold" in style, max_lines=6)
    background = np.asarray(region, np.float64).reshape(-1, 3)
    bg_mean, bg_busy = background.mean(0), float(np.std(background @ np.array([0.299, 0.587, 0.114])))

    named = find_colors(style)
    neon, chalk = "neon" in style, "chalk" in style
    if named:
        ink = named[0]
    elif neon:
        ink = (255, 70, 200)
    elif chalk:
        ink = (244, 244, 238)
    else:
        ink = max([(20, 20, 20), (250, 250, 250)], key=lambda c: contrast_ratio(c, bg_mean))
    core = mix(ink, (255, 255, 255), 0.55) if neon else ink
    ring = max([(15, 15, 15), (250, 250, 250)], key=lambda c: contrast_ratio(c, core))
    stroke = max(1, round(font.size / 16)) if contrast_ratio(core, bg_mean) < 4.5 or bg_busy > 40 else 0

    fill_mask = draw_text_mask((w, h), lines, font)
    if "shadow" in style:
        offset = max(1, font.size // 16)
        shadow = draw_text_mask((w, h), lines, font, offset=(offset, offset))
        region.paste((0, 0, 0), mask=shadow.point(lambda v: v * 160 // 255))
    if neon:
        glow = fill_mask.filter(ImageFilter.GaussianBlur(max(2, font.size / 6))).point(lambda v: min(255, v * 3))
        region.paste(ink, mask=glow)
    if stroke:
        region.paste(ring, mask=draw_text_mask((w, h), lines, font, stroke=stroke))
    if chalk:  # speckled strokes: keep 70-100 % of each pixel's ink, seeded
        speck = 0.7 + 0.3 * rng.random((h, w))
        fill_mask = Image.fromarray((np.asarray(fill_mask, np.float64) * speck).astype(np.uint8))
    region.paste(core, mask=fill_mask)


# --- 6. image_to_image -------------------------------------------------------------------------------------
_INTENSITY = r"(?:\b(much|very|far|way|a lot|slightly|somewhat|a bit|a little|subtly)\s+)?"
_ADJUSTMENTS: list[tuple[str, str, float]] = [  # (effect, pattern, sign); specific phrases before general ones
    ("contrast", r"(?:less|lower|low|reduced?) contrast|soft(?:er)?|flat(?:ter)?|faded|matte|hazy|haze|foggy|fog", -1),
    ("contrast", r"(?:more|higher|high|increased?|stronger) contrast|contrasty|punchy|crisp(?:er)?|dramatic", 1),
    ("saturation", r"less saturated|desaturated?|muted|washed[- ]out|pastel|dull(?:er)?", -1),
    ("saturation", r"more saturated|saturated|vivid|vibrant|colou?rful|more colou?rs?|rich colou?rs?", 1),
    ("mono", r"black and white|black & white|monochrome|gr[ae]yscale|noir|b&w", 1),
    ("sepia", r"sepia|vintage|old photo", 1),
    ("brightness", r"brighter|brighten|lighter|lighten|bright|well[- ]lit|more light|sunny|airy", 1),
    ("brightness", r"darker|darken|dark|dim(?:mer)?|moody|night|underexposed|gloomy", -1),
    ("warmth", r"warmer|warm|golden|sunset|cozy|cosy", 1),
    ("warmth", r"cooler|cool|colder|cold|icy|blue hour|wintry", -1),
]


def parse_adjustments(prompt: str) -> tuple[dict[str, float], list]:
    """Adjustment amounts named in a prompt ('much brighter, slightly cooler' → brightness +1.6, warmth -0.5)
    and the colour words left over (a colour wash). Each match is removed before later patterns look, so
    'less saturated' is not also read as 'saturated'."""
    text = f" {prompt.lower()} "
    amounts: dict[str, float] = {}
    for effect, pattern, sign in _ADJUSTMENTS:
        for m in re.finditer(_INTENSITY + r"\b(?:" + pattern + r")\b", text):
            scale = {None: 1.0, "much": 1.6, "very": 1.6, "far": 1.6, "way": 1.6, "a lot": 1.6}.get(m.group(1), 0.5)
            amounts[effect] = amounts.get(effect, 0.0) + sign * scale
        text = re.sub(_INTENSITY + r"\b(?:" + pattern + r")\b", " ", text)
    return amounts, find_colors(text)


class PreviewImageToImage(PreviewTool):
    """A global edit driven by the prompt's words: brighter (gain up to where the brightest 1 % reach white, then
    gamma) / darker (gamma), more/less contrast, more/less
    saturated, warmer/cooler, black-and-white, sepia, and a light wash of any colour named; "much"/"slightly"
    scale an adjustment. The fully adjusted image is blended with the input by ``strength``. Deterministic and
    unseeded (``seed`` is ignored); a prompt with no known words returns the image unchanged."""

    name = "image_to_image"
    Input = ImageToImageIn
    Output = ImageOut
    max_batch = 16

    def one(self, inp: ImageToImageIn) -> ImageOut:
        source = np.asarray(rgb(inp.image), np.float32)
        amounts, washes = parse_adjustments(inp.prompt)
        arr = source.copy()

        def gray(a):
            return (a @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]

        if b := amounts.get("brightness"):  # brighter: lift gain until highlights reach white, then gamma
            if b > 0:
                top = float(np.percentile(gray(arr), 99))
                arr = arr * min(1 + 0.6 * b, 255 / max(top, 1.0))
            arr = 255 * (np.clip(arr, 0, 255) / 255) ** (1 / (1 + 0.5 * b) if b > 0 else 1 - 0.5 * b)
        if c := amounts.get("contrast"):
            factor = 1 + 0.4 * c if c > 0 else max(0.3, 1 + 0.3 * c)
            arr = arr.mean(axis=(0, 1)) + (arr - arr.mean(axis=(0, 1))) * factor
        if s := amounts.get("saturation"):
            factor = 1 + 0.5 * s if s > 0 else max(0.0, 1 + 0.4 * s)
            arr = gray(arr) + (arr - gray(arr)) * factor
        if amounts.get("mono"):
            arr = np.repeat(gray(arr), 3, axis=2)
        if amounts.get("sepia"):
            arr = gray(arr) * np.array([1.07, 0.86, 0.62], np.float32) + np.array([12, 6, 0], np.float32)
        if t := amounts.get("warmth"):
            arr = arr * (1 + np.array([0.08, 0.02, -0.10], np.float32) * t)
        for color in washes:
            arr = arr * 0.85 + np.asarray(color, np.float32) * 0.15

        out = source + (np.clip(arr, 0, 255) - source) * inp.strength
        return ImageOut(image=to_image(out))


# --- 7. composite ------------------------------------------------------------------------------------------
class PreviewComposite(PreviewTool):
    """Paste each layer's box (its :func:`pixel_rect`) from the layer image onto a copy of the base, in order,
    so later layers win where boxes overlap. Pixels outside every layer box are the base's. Layers must be the
    base's size: a box means the same pixels in both, and silently rescaling would hide a wiring error."""

    name = "composite"
    Input = CompositeIn
    Output = ImageOut
    max_batch = 16

    def one(self, inp: CompositeIn) -> ImageOut:
        out = rgb(inp.base)
        for i, layer in enumerate(inp.layers):
            if layer.image.size != out.size:
                raise ValueError(
                    f"composite: layers[{i}] is {layer.image.width}x{layer.image.height} but the base is"
                    f" {out.width}x{out.height}; every layer must be the size of the base image"
                )
            rect = pixel_rect(layer.box, *out.size)
            if rect[2] > rect[0] and rect[3] > rect[1]:
                out.paste(rgb(layer.image.crop(rect)), rect[:2])
        return ImageOut(image=out)


# --- 8. critique -------------------------------------------------------------------------------------------
_DARK_INTENT = {"night", "midnight", "dark", "noir", "moody", "gloomy", "shadow", "shadows", "space", "cave"}
_BRIGHT_INTENT = {"snow", "snowy", "white", "bright", "overexposed", "airy", "minimalist"}
_WARM_INTENT = {"sunset", "warm", "golden", "fire", "desert", "autumn", "candle", "candlelight", "sepia", "dusk"}
_COOL_INTENT = {"night", "underwater", "winter", "ice", "icy", "snow", "ocean", "sea", "blue", "cold", "arctic"}
_MONO_INTENT = {"monochrome", "noir", "grayscale", "greyscale", "sketch", "pencil", "sepia"}


class PreviewCritique(PreviewTool):
    """An aesthetic score from image statistics, with edits that would raise it.

    Score in [0, 1]: exposure (mean brightness within 0.35–0.65 is best), contrast (brightness spread of at
    least 0.2) and saturation (0.2–0.7 is best), weighted 0.4/0.35/0.25, minus 0.05 per washed-out object box.
    Global suggestions name an ``image_to_image`` prompt ("brighter", "more contrast", "warmer"…) for each
    statistic that is off — unless the prompt asks for it (a night scene is allowed to be dark, a noir one to
    be grey). Box suggestions ("a vivid <phrase>", a ``regional_repaint`` prompt) go to objects whose crop is
    flat and hard to tell from its surroundings. Statistics are taken on a copy box-averaged to at most 512 px."""

    name = "critique"
    Input = CritiqueIn
    Output = CritiqueOut
    max_batch = 16

    def one(self, inp: CritiqueIn) -> CritiqueOut:
        image = np.asarray(_shrink(rgb(inp.image), 512), np.float64)
        intent = set(words(inp.prompt))
        lum = image @ np.array([0.299, 0.587, 0.114]) / 255
        mean, spread = float(lum.mean()), float(lum.std())
        _, sat, _ = rgb_to_hsv(image)
        saturation = float(sat.mean())
        cast = float(image[..., 0].mean() - image[..., 2].mean()) / 255

        exposure_score = 1 - min(1.0, max(0.0, abs(mean - 0.5) - 0.15) / 0.3)
        contrast_score = min(1.0, spread / 0.2) if spread < 0.32 else 1 - min(1.0, (spread - 0.32) / 0.2)
        color_score = min(1.0, saturation / 0.2) if saturation < 0.7 else 1 - min(1.0, (saturation - 0.7) / 0.3)

        suggestions: list[Suggestion] = []

        def suggest(aspect: str, edit: str, reason: str) -> None:
            suggestions.append(Suggestion(scope="global", aspect=aspect, edit=edit, reason=reason))

        if mean < (0.12 if intent & _DARK_INTENT else 0.35):
            suggest("exposure", "much brighter" if mean < 0.2 else "brighter", f"mean brightness {mean:.2f} is low")
        elif mean > (0.88 if intent & _BRIGHT_INTENT else 0.7):
            suggest("exposure", "darker", f"mean brightness {mean:.2f} is high")
        if spread < 0.12:
            suggest("contrast", "more contrast", f"brightness spread {spread:.2f} is flat")
        elif spread > 0.34:
            suggest("contrast", "less contrast", f"brightness spread {spread:.2f} is harsh")
        if saturation < 0.12 and not intent & _MONO_INTENT:
            suggest("colour", "more saturated", f"mean saturation {saturation:.2f} is dull")
        elif saturation > 0.75:
            suggest("colour", "less saturated", f"mean saturation {saturation:.2f} is garish")
        if cast > 0.25 and not intent & _WARM_INTENT:
            suggest("atmosphere", "cooler", f"strong warm cast ({cast:+.2f} red over blue)")
        elif cast < -0.25 and not intent & _COOL_INTENT:
            suggest("atmosphere", "warmer", f"strong cool cast ({cast:+.2f} red over blue)")

        washed = 0
        H, W = lum.shape
        for obj in inp.boxes:
            rect = pixel_rect(obj.box, W, H)
            if rect[2] - rect[0] < 2 or rect[3] - rect[1] < 2:
                continue
            distinct = _distinctness(image, rect)
            if distinct < 0.5:
                washed += 1
                phrase = re.sub(r"^(a|an|the)\s+", "", (obj.phrase or obj.name).strip(), flags=re.I)
                suggestions.append(Suggestion(
                    scope="box", aspect="object", box=list(obj.box), edit=f"a vivid {phrase}",
                    reason=f"'{obj.name}' is flat and blends into its surroundings (distinctness {distinct:.2f})",
                ))

        score = 0.4 * exposure_score + 0.35 * contrast_score + 0.25 * color_score - min(0.2, 0.05 * washed)
        tried = set(inp.rejected)  # asked again after a rejection: only what has not been tried on this image
        suggestions = [s for s in suggestions if s.edit not in tried]
        return CritiqueOut(score=round(float(np.clip(score, 0.0, 1.0)), 4), suggestions=suggestions)


TOOLS: list[type[PreviewTool]] = [
    PreviewLayoutToImage,
    PreviewTextToImage,
    PreviewRegionalRepaint,
    PreviewRegionCheck,
    PreviewRenderText,
    PreviewImageToImage,
    PreviewComposite,
    PreviewCritique,
]


def preview_tools(delay_ms: int = 0) -> list[Tool]:
    """One instance of every preview tool; ``delay_ms`` sleeps per batch call to simulate model latency."""
    return [cls(delay_ms=delay_ms) for cls in TOOLS]
