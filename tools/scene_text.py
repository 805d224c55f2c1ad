"""Scene text (SceneVTG, stage 2 "renderer" of the methods notes, option (a) glyph prior + inpainting).

- Geometry: text regions are quadrilaterals ``[x1,y1 (top-left), x2,y2 (top-right), x3,y3 (bottom-right),
  x4,y4 (bottom-left)]`` normalised to [0, 1]. :func:`box_to_quad` derives an axis-aligned one from a blueprint
  box; :func:`validate_regions` checks model-proposed ones (inside the canvas, convex and not degenerate, no
  overlaps, text fits the region's aspect ratio) and returns one readable message per problem.
- Fonts: :func:`font_for` picks the first font that has a glyph for every character: the bundled DejaVu Sans,
  then the system's fonts (``/usr/share/fonts`` and friends, ``SCENEWRIGHT_FONT_DIRS``). When none has them,
  ``missing`` names the characters and the text is drawn with DejaVu (visible .notdef boxes); the recipe's OCR
  check then fails honestly and the record says why.
- ``glyph_render``: the text fitted to the quad's width x height with a real font, then perspective-warped into
  the quad (PIL ``Image.transform``), ink chosen for contrast against the region; ``weight`` > 1 makes the
  strokes heavier (stronger glyph conditioning for retries). Also returns the region mask (the quad dilated by
  a few pixels), which is the only area the diffusion pass may change.
- ``text_inpaint``: preview: the masked region of the glyph image is blended back toward a blurred, textured
  version of itself by ``strength`` (a stand-in for "the diffusion pass makes the glyphs part of the scene":
  high strength fades the text, which the OCR check notices); diffusers: ``AutoPipelineForInpainting`` from the
  glyph image at ``strength`` (0.3-0.5: the texture harmonises while the glyph shapes survive), then only the
  masked pixels are taken from the result.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tools.base import NO_CONTEXT, Tool
from tools.model_utils import field, generators, hashable, image_size
from tools.preview_render import FONT_DIR, contrast_ratio, draw_text_mask, fit_text, rgb, soft_noise, to_image
from tools.roles import GlyphRenderIn, GlyphRenderOut, ImageOut, TextInpaintIn

log = logging.getLogger(__name__)

GLYPH_VERSION = "glyph-warp-1"
MASK_PAD = 0.08  # the region mask is the quad grown by this fraction of its height (at least 2 px)


# --- geometry ------------------------------------------------------------------------------------------------
def box_to_quad(box: list[float]) -> list[float]:
    x0, y0, x1, y1 = box
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def quad_points(quad: list[float], width: int = 1, height: int = 1) -> list[tuple[float, float]]:
    return [(quad[i] * width, quad[i + 1] * height) for i in range(0, 8, 2)]


def quad_bbox(quad: list[float]) -> list[float]:
    xs, ys = quad[0::2], quad[1::2]
    return [min(xs), min(ys), max(xs), max(ys)]


def quad_size(quad: list[float], width: int, height: int) -> tuple[float, float]:
    """(mean top/bottom edge length, mean left/right edge length) in pixels."""
    p = quad_points(quad, width, height)
    d = lambda a, b: math.dist(a, b)
    return (d(p[0], p[1]) + d(p[3], p[2])) / 2, (d(p[0], p[3]) + d(p[1], p[2])) / 2


def _convex(points: list[tuple[float, float]]) -> bool:
    signs = set()
    for i in range(4):
        (ax, ay), (bx, by), (cx, cy) = points[i], points[(i + 1) % 4], points[(i + 2) % 4]
        cross = (bx - ax) * (cy - by) - (by - ay) * (cx - bx)
        if abs(cross) < 1e-12:
            return False
        signs.add(cross > 0)
    return len(signs) == 1


def _poly_mask(quad: list[float], size: int = 256) -> np.ndarray:
    m = Image.new("1", (size, size), 0)
    ImageDraw.Draw(m).polygon(quad_points(quad, size, size), fill=1)
    return np.asarray(m, bool)


def quad_iou(a: list[float], b: list[float]) -> float:
    ma, mb = _poly_mask(a), _poly_mask(b)
    union = (ma | mb).sum()
    return float((ma & mb).sum() / union) if union else 0.0


def aspect_fits(text: str, quad: list[float], width: int, height: int) -> bool:
    """Does the region's aspect ratio roughly suit the character count (SceneVTG's "more characters, wider box")?
    A glyph is about 0.6 of the line height wide; the text may wrap onto as many lines as the box allows."""
    w, h = quad_size(quad, width, height)
    if w < 4 or h < 4:
        return False
    chars = max(1, len(text.strip()))
    lines = max(1, min(6, round(h / max(8.0, (w * h / chars) ** 0.5 / 0.6 * 0.6))))
    per_line_h = h / lines
    need = chars / lines * 0.6 * per_line_h
    return need <= w * 3.0 and need >= w / 12.0  # neither absurdly squeezed nor a short word in a huge band


def validate_regions(regions: list[dict], width: int, height: int, *, max_iou: float = 0.01) -> list[str]:
    """One message per problem of proposed text regions ``[{"text", "quad"}]`` (normalised quads)."""
    errors: list[str] = []
    for i, r in enumerate(regions):
        quad, text = r.get("quad"), r.get("text", "")
        if not isinstance(text, str) or not text.strip():
            errors.append(f"regions[{i}]: the text is empty")
            continue
        if not (isinstance(quad, list) and len(quad) == 8 and all(isinstance(v, (int, float)) for v in quad)):
            errors.append(f"regions[{i}] '{text}': quad must be 8 numbers x1,y1,...,x4,y4")
            continue
        if any(not (0.0 <= v <= 1.0) for v in quad):
            errors.append(f"regions[{i}] '{text}': quad {quad} leaves the canvas")
            continue
        if not _convex(quad_points(quad, width, height)):
            errors.append(f"regions[{i}] '{text}': quad is not a convex quadrilateral in clockwise order from top-left")
            continue
        if not aspect_fits(text, quad, width, height):
            errors.append(f"regions[{i}] '{text}': the region's shape does not fit {len(text)} characters")
    for i in range(len(regions)):
        for j in range(i + 1, len(regions)):
            a, b = regions[i].get("quad"), regions[j].get("quad")
            if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) == 8:
                if quad_iou(a, b) > max_iou:
                    errors.append(f"regions[{i}] and regions[{j}] overlap; text regions must not overlap")
    return errors


def region_box(quad: list[float], width: int, height: int) -> list[float]:
    """The normalised box the text pass may change: the quad's bbox grown by the mask padding, clamped."""
    w, h = quad_size(quad, width, height)
    pad = max(2.0, MASK_PAD * h) + 1
    x0, y0, x1, y1 = quad_bbox(quad)
    return [
        round(max(0.0, x0 - pad / width), 4), round(max(0.0, y0 - pad / height), 4),
        round(min(1.0, x1 + pad / width), 4), round(min(1.0, y1 + pad / height), 4),
    ]


# --- fonts ---------------------------------------------------------------------------------------------------
def _font_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("SCENEWRIGHT_FONT_DIRS", "").split(os.pathsep) if p]
    return extra + [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"]


@functools.lru_cache(maxsize=1)
def _system_fonts() -> tuple[str, ...]:
    out: list[str] = []
    for d in _font_dirs():
        if d.is_dir():
            out += sorted(str(p) for p in d.rglob("*") if p.suffix.lower() in (".ttf", ".otf", ".ttc"))
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int = 32) -> ImageFont.FreeTypeFont | None:
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return None


def _lacks(path: str, text: str) -> str:
    font = _font(path)
    if font is None:
        return "".join(dict.fromkeys(c for c in text if not c.isspace()))

    def sig(ch: str):
        m = font.getmask(ch)
        return m.size, bytes(m)

    notdef = sig("\U0010ffff")
    return "".join(dict.fromkeys(c for c in text if not c.isspace() and sig(c) == notdef))


def font_for(text: str, bold: bool = False) -> tuple[str, str]:
    """(font file, characters it still lacks): the bundled DejaVu first, then system fonts; "" lacks = all good."""
    bundled = str(FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"))
    missing = _lacks(bundled, text)
    if not missing:
        return bundled, ""
    for path in _system_fonts():
        if not _lacks(path, text):
            return path, ""
    return bundled, missing


# --- glyph rendering -------------------------------------------------------------------------------------------
def _perspective_coeffs(dst: list[tuple[float, float]], w: int, h: int) -> list[float]:
    """Coefficients for PIL's PERSPECTIVE transform mapping output pixels (in the quad) to the flat w x h text."""
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.asarray(rows, float), np.asarray(rhs, float)).tolist()


def _warped_glyphs(size: tuple[int, int], content: str, quad: list[float], path: str, weight: float) -> Image.Image:
    """An L mask of ``content`` fitted to ``quad`` (flat text, perspective-warped into the quad)."""
    W, H = size
    pts = quad_points(quad, W, H)
    qw, qh = quad_size(quad, W, H)
    fw, fh = max(2, round(qw)), max(2, round(qh))
    margin = max(1, round(min(fw, fh) * 0.08))
    font_size, lines = _fit(content, fw - 2 * margin, fh - 2 * margin, path)
    font = ImageFont.truetype(path, font_size)
    stroke = max(0, round((weight - 1.0) * font_size / 12))
    flat = draw_text_mask((fw, fh), lines, font, stroke=stroke)
    return flat.transform((W, H), Image.Transform.PERSPECTIVE, _perspective_coeffs(pts, fw, fh),
                          Image.Resampling.BILINEAR)


def render_glyphs(image: Image.Image, content: str, quad: list[float], style: str = "", weight: float = 1.0,
                  words: list | None = None):
    """(image with glyphs, region mask, font path, missing chars). Pure function of its arguments.
    ``words``: ``[(word, quad)]`` left to right (SceneVTG's word level): each word is fitted to its own quad, so
    the planner's word spacing and sizes reach the pixels; the region mask stays the line's quad."""
    out = rgb(image)
    W, H = out.size
    pts = quad_points(quad, W, H)
    qw, qh = quad_size(quad, W, H)
    bold = "bold" in style.lower() or weight > 1.05
    path, missing = font_for(content, bold)
    if missing:
        log.warning("glyph_render: no available font has glyphs for %r in %r", missing, content)
    if words:
        glyph_mask = Image.new("L", (W, H), 0)
        for word, wquad in words:
            glyph_mask = Image.fromarray(np.maximum(np.asarray(glyph_mask),
                                                    np.asarray(_warped_glyphs((W, H), word, wquad, path, weight))))
    else:
        glyph_mask = _warped_glyphs((W, H), content, quad, path, weight)
    region = Image.new("L", (W, H), 0)
    ImageDraw.Draw(region).polygon(pts, fill=255)
    pad = max(2, round(MASK_PAD * qh))
    region = region.filter(ImageFilter.MaxFilter(2 * pad + 1))
    # ink: the contrasting tone against the region's mean colour (or a colour named in the style)
    arr = np.asarray(out, np.float64)
    sel = np.asarray(region, bool)
    bg = arr[sel].mean(0) if sel.any() else np.array([128.0, 128, 128])
    from tools.colors import find_colors

    named = find_colors(style)
    ink = named[0] if named else max([(20, 20, 20), (250, 250, 250)], key=lambda c: contrast_ratio(c, bg))
    if contrast_ratio(ink, bg) < 3.0 or weight > 1.05:  # weak contrast, or stronger conditioning: a plate behind
        plate = max([(20, 20, 20), (245, 245, 240)], key=lambda c: contrast_ratio(c, ink))
        quad_mask = Image.new("L", (W, H), 0)
        ImageDraw.Draw(quad_mask).polygon(pts, fill=int(min(255, 150 * weight)))
        out.paste(plate, mask=quad_mask)
    out.paste(tuple(int(c) for c in ink), mask=glyph_mask)
    return out, region, path, missing


def _fit(text: str, max_w: int, max_h: int, path: str) -> tuple[int, list[str]]:
    """fit_text's size search with an arbitrary font file (fit_text itself uses the bundled DejaVu)."""
    font, lines = fit_text(text, max(1, max_w), max(1, max_h), max_lines=4)
    size = font.size
    while size > 6:
        f = ImageFont.truetype(path, size)
        bw = max(f.getbbox(line)[2] for line in lines)
        a, d = f.getmetrics()
        if bw <= max_w and len(lines) * (a + d) * 1.12 <= max_h + 1:
            break
        size -= max(1, size // 20)
    return size, lines


class GlyphRender(Tool):
    """``glyph_render`` (all profiles): Pillow + numpy, deterministic."""

    name = "glyph_render"
    version = GLYPH_VERSION
    Input = GlyphRenderIn
    Output = GlyphRenderOut
    max_batch = 16

    def identity(self) -> dict:
        return {"backend": "pillow"}

    def run(self, batch: list[GlyphRenderIn], ctx=NO_CONTEXT) -> list[GlyphRenderOut]:
        outs = []
        for b in batch:
            words = [(w.content, w.quad) for w in b.text.words]
            img, mask, path, missing = render_glyphs(b.image, b.text.content, b.text.quad, b.text.style, b.weight,
                                                     words)
            outs.append(GlyphRenderOut(image=img, mask=mask, font=Path(path).name, missing=missing))
        return outs


def masked_paste(original: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """``original`` with only the pixels under ``mask`` taken from ``generated``."""
    out = rgb(original)
    if generated.size != out.size:
        generated = generated.resize(out.size, Image.Resampling.LANCZOS)
    m = mask.convert("L")
    if m.size != out.size:
        m = m.resize(out.size)
    out.paste(generated.convert("RGB"), mask=m.point(lambda v: 255 if v >= 128 else 0))
    return out


class PreviewTextInpaint(Tool):
    """``text_inpaint`` on the preview profile: texture the glyph region by ``strength`` (seeded), mask only."""

    name = "text_inpaint"
    version = "preview-text-inpaint-1"
    Input = TextInpaintIn
    Output = ImageOut
    max_batch = 16

    def identity(self) -> dict:
        return {"backend": "preview"}

    def run(self, batch: list[TextInpaintIn], ctx=NO_CONTEXT) -> list[ImageOut]:
        outs = []
        for b in batch:
            img = rgb(b.image)
            w, h = img.size
            rng = np.random.default_rng([b.seed, 7])
            blurred = np.asarray(img.filter(ImageFilter.GaussianBlur(max(1.0, min(w, h) / 90))), np.float32)
            grain = soft_noise(rng, h, w, cells=max(2, w // 16), channels=3) * 18
            sharp = np.asarray(img, np.float32)
            t = 0.85 * b.strength  # how far the pass pulls the glyphs into the (blurred, textured) scene
            new = to_image(sharp * (1 - t) + blurred * t + grain * b.strength)
            outs.append(ImageOut(image=masked_paste(img, new, b.mask)))
        return outs


class DiffusersTextInpaint(Tool):
    """``text_inpaint`` with the profile's inpainting model: the glyph image is the init image at ``strength``."""

    name = "text_inpaint"
    version = "diffusers-text-inpaint-1"
    Input = TextInpaintIn
    Output = ImageOut
    resource = "gpu"
    max_batch = 8
    kind = role = "inpaint"
    deterministic = False  # GPU round-off: replay compares within tolerances

    def __init__(self, manager, model_id: str, lora=None):
        self.manager = manager
        self.model_id = model_id
        self.lora = lora  # the profile's LoRA (tools/lora.py), fused like every other diffusion pipeline's

    def identity(self) -> dict:
        from tools.models import model_identity

        return {"model": model_identity(self.model_id), "dtype": self.manager.dtype,
                "device": self.manager.device.split(":")[0], **(self.lora.identity() if self.lora else {})}

    def batch_key(self, inp) -> Hashable:
        return (image_size(field(self, inp, "image")),) + tuple(
            hashable(field(self, inp, k)) for k in ("steps", "guidance", "strength"))

    def free_memory(self) -> None:
        self.manager.free_memory(keep_kinds=(self.kind,))

    def pipeline(self):
        mgr = self.manager

        def load(model_id: str):
            from diffusers import AutoPipelineForInpainting

            from tools.diffusion import _from_pretrained

            return _from_pretrained(AutoPipelineForInpainting, mgr, model_id, "inpaint")

        kind = self.kind + (self.lora.tag if self.lora else "")
        return mgr.prepare(mgr.get(kind, self.model_id, self.lora.loader(load) if self.lora else load, role=self.role))

    def run(self, batch: list[TextInpaintIn], ctx=NO_CONTEXT) -> list[ImageOut]:
        from tools.diffusion import _multiple_of_8, _steps

        first = batch[0]
        w, h = _multiple_of_8(*first.image.size)
        out = self.pipeline()(
            prompt=[b.prompt for b in batch],
            negative_prompt=[b.negative_prompt for b in batch],
            image=[b.image.convert("RGB") for b in batch],
            mask_image=[b.mask.convert("L") for b in batch],
            width=w, height=h, strength=first.strength,
            num_inference_steps=_steps(first.steps, first.strength),
            guidance_scale=first.guidance,
            generator=generators([b.seed for b in batch]),
        )
        return [ImageOut(image=masked_paste(b.image, im, b.mask)) for b, im in zip(batch, out.images)]


def scene_text_tools(profile: Any, manager=None) -> list[Tool]:
    """glyph_render always; text_inpaint from the profile's inpainting model, else the preview stand-in."""
    tools: list[Tool] = [GlyphRender()]
    if getattr(profile, "backend", "preview") == "diffusers" and "inpaint" in profile.models:
        from tools.models import shared_manager

        mgr = manager or shared_manager(profile.device, profile.dtype, profile.memory_budget_gb, profile.cpu_offload)
        from tools.lora import LoRA

        lora = LoRA.of(profile.lora, profile.lora_scale) if getattr(profile, "lora", "") else None
        tools.append(DiffusersTextInpaint(mgr, profile.models["inpaint"], lora=lora))
    else:
        tools.append(PreviewTextInpaint())
    return tools


def text_crop(image: Image.Image, quad: list[float], height: int = 64) -> Image.Image:
    """The quad rectified to an upright strip ``height`` px tall (for OCR), with a small white-balanced border."""
    img = rgb(image)
    W, H = img.size
    qw, qh = quad_size(quad, W, H)
    scale = height / max(qh, 1.0)
    ow, oh = max(8, round(qw * scale)), height
    pts = quad_points(quad, W, H)
    # map output (0..ow, 0..oh) back onto the quad: inverse of the glyph warp
    src = [(0, 0), (ow, 0), (ow, oh), (0, oh)]
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, pts):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    coeffs = np.linalg.solve(np.asarray(rows, float), np.asarray(rhs, float)).tolist()
    strip = img.transform((ow, oh), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    pad = oh // 4
    canvas = Image.new("RGB", (ow + 2 * pad, oh + 2 * pad), tuple(int(c) for c in np.asarray(strip).reshape(-1, 3)[0]))
    canvas.paste(strip, (pad, pad))
    return canvas


__all__ = [
    "DiffusersTextInpaint",
    "GlyphRender",
    "PreviewTextInpaint",
    "box_to_quad",
    "font_for",
    "masked_paste",
    "quad_bbox",
    "quad_iou",
    "region_box",
    "render_glyphs",
    "scene_text_tools",
    "text_crop",
    "validate_regions",
]
