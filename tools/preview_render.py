"""Drawing helpers of the preview backend: boxes → pixels, scene backgrounds, style treatments, labelled shapes,
fitted text and colour maths. Pillow + numpy only; every function is a pure function of its arguments (random
numbers come from a ``numpy.random.Generator`` the caller seeds), so the tools in :mod:`tools.preview` stay
deterministic.
"""

from __future__ import annotations

import functools
import io
import math
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tools.colors import RGB, find_colors, hashed_color, words

FONT_DIR = Path(__file__).parent / "fonts"
_FONT_FILES = {False: FONT_DIR / "DejaVuSans.ttf", True: FONT_DIR / "DejaVuSans-Bold.ttf"}


# --- boxes ---------------------------------------------------------------------------------------------------
def pixel_rect(box: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The pixels a normalised box ``[x0, y0, x1, y1]`` covers: ``(floor(x0*W), floor(y0*H), ceil(x1*W),
    ceil(y1*H))``, clamped to the image, as a PIL box (right/bottom exclusive). A 1e-9 tolerance keeps float
    noise (0.1 * 640 = 64.00000000000001) from growing the rectangle by a pixel. Every preview tool that may only
    touch a box uses this one rectangle, so "outside the box" means the same thing everywhere. An empty rectangle
    (zero width or height) is allowed; an inverted box is an error."""
    x0, y0, x1, y1 = box
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box {list(box)} is inverted: need x0 <= x1 and y0 <= y1 (normalised [x0, y0, x1, y1])")
    eps = 1e-9
    left = min(width, max(0, math.floor(x0 * width + eps)))
    top = min(height, max(0, math.floor(y0 * height + eps)))
    right = min(width, max(left, math.ceil(x1 * width - eps)))
    bottom = min(height, max(top, math.ceil(y1 * height - eps)))
    return left, top, right, bottom


def rgb(image: Image.Image) -> Image.Image:
    """A new RGB copy of ``image`` (tools never hand back, or draw on, the image they were given)."""
    return image.convert("RGB") if image.mode != "RGB" else image.copy()


# --- fonts and text ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _font_bytes(bold: bool) -> bytes:
    return _FONT_FILES[bold].read_bytes()  # immutable bytes: safe to share; font objects are made per call


def load_font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(io.BytesIO(_font_bytes(bold)), max(1, int(size)))


def missing_glyphs(text: str, bold: bool = False) -> str:
    """The characters of ``text`` the bundled DejaVu font has no glyph for (e.g. CJK), in order, without repeats.

    Pillow does not expose glyph indices, so a character counts as missing when its rendered mask is identical
    to that of U+10FFFF, a non-character that always falls back to the font's .notdef box."""
    font = load_font(32, bold)

    def signature(ch: str) -> tuple:
        mask = font.getmask(ch)
        return mask.size, bytes(mask)

    notdef = signature("\U0010ffff")
    out: list[str] = []
    for ch in text:
        if ch.isspace() or ch in out:
            continue
        if signature(ch) == notdef:
            out.append(ch)
    return "".join(out)


def _greedy_wrap(ws: list[str], font: ImageFont.FreeTypeFont, limit: float) -> list[str]:
    lines: list[str] = []
    current: list[str] = []
    for w in ws:
        if current and font.getlength(" ".join(current + [w])) > limit:
            lines.append(" ".join(current))
            current = [w]
        else:
            current.append(w)
    lines.append(" ".join(current))
    return lines


def _balanced_wrap(ws: list[str], n: int, font: ImageFont.FreeTypeFont) -> list[str]:
    """At most ``n`` lines, as even as greedy wrapping allows: the narrowest limit that still gives <= n lines."""
    if n <= 1 or len(ws) <= 1:
        return [" ".join(ws)]
    lo = max(font.getlength(w) for w in ws)
    hi = font.getlength(" ".join(ws))
    for _ in range(20):
        mid = (lo + hi) / 2
        if len(_greedy_wrap(ws, font, mid)) <= n:
            hi = mid
        else:
            lo = mid
    return _greedy_wrap(ws, font, hi + 0.01)


LINE_GAP = 0.12  # extra space between lines, as a fraction of the font size


def _block_size(lines: list[str], font: ImageFont.FreeTypeFont) -> tuple[float, float]:
    ascent, descent = font.getmetrics()
    width = max(font.getbbox(line)[2] - min(0, font.getbbox(line)[0]) for line in lines) if lines else 0
    height = len(lines) * (ascent + descent) + (len(lines) - 1) * LINE_GAP * font.size
    return width, height


def fit_text(
    text: str, max_w: float, max_h: float, *, bold: bool = False, max_lines: int = 4, min_size: int = 6
) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """The largest font size (and line breaks) at which ``text`` fits ``max_w`` x ``max_h`` pixels.

    Each line count from 1 to ``max_lines`` is tried (words balanced over the lines) and the one giving the
    biggest text wins, so a wide box gets one line and a tall box several. Sizes are estimated at 100 px and
    then checked at the real size, shrinking until the block fits. Below ``min_size`` the text is clipped."""
    ws = text.split() or [text]
    ref = load_font(100, bold)
    best_size, best_lines = 0, [" ".join(ws)]
    for n in range(1, min(max_lines, len(ws)) + 1):
        lines = _balanced_wrap(ws, n, ref)
        bw, bh = _block_size(lines, ref)
        size = int(100 * min(max_w / max(bw, 1), max_h / max(bh, 1)))
        if size > best_size:
            best_size, best_lines = size, lines
    size = max(min_size, min(best_size, int(max_h)))  # a line is taller than its font size: caps empty text too
    font = load_font(size, bold)
    while size > min_size:
        bw, bh = _block_size(best_lines, font)
        if bw <= max_w and bh <= max_h:
            break
        size = max(min_size, size - max(1, size // 25))
        font = load_font(size, bold)
    return font, best_lines


def draw_text_mask(
    size: tuple[int, int], lines: list[str], font: ImageFont.FreeTypeFont, stroke: int = 0, offset=(0, 0)
) -> Image.Image:
    """An L mask of ``lines`` centred in a ``size`` canvas (anti-aliased, crisp: drawn at 1x, no resampling)."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    ascent, descent = font.getmetrics()
    line_h = ascent + descent + LINE_GAP * font.size
    _, block_h = _block_size(lines, font)
    y = (size[1] - block_h) / 2 + offset[1]
    for line in lines:
        draw.text((size[0] / 2 + offset[0], y), line, font=font, fill=255, anchor="ma",
                  stroke_width=stroke, stroke_fill=255)
        y += line_h
    return mask


# --- colour maths --------------------------------------------------------------------------------------------
def luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def contrast_ratio(a, b) -> float:
    """WCAG contrast ratio of two sRGB colours (1 = same, 21 = black on white)."""

    def rel(c):
        ch = np.asarray(c, dtype=np.float64) / 255
        lin = np.where(ch <= 0.03928, ch / 12.92, ((ch + 0.055) / 1.055) ** 2.4)
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    la, lb = sorted((rel(a), rel(b)), reverse=True)
    return float((la + 0.05) / (lb + 0.05))


def mix(a, b, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def rgb_to_hsv(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees, saturation and value in [0, 1], for an (..., 3) array of 0..255 values."""
    a = arr.astype(np.float64) / 255
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    mx, mn = a.max(axis=-1), a.min(axis=-1)
    d = mx - mn
    safe = np.where(d == 0, 1, d)
    h = np.where(mx == r, (g - b) / safe % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    h = np.where(d == 0, 0, h)
    s = np.where(mx == 0, 0, d / np.where(mx == 0, 1, mx))
    return h, s, mx


def rgb_to_lab(arr: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) for an (..., 3) array of 0..255 sRGB values."""
    c = arr.astype(np.float64) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


# --- noise ---------------------------------------------------------------------------------------------------
def soft_noise(rng: np.random.Generator, height: int, width: int, cells: int, channels: int = 1) -> np.ndarray:
    """Smooth noise in about [-1, 1], shape (height, width, channels): a ``cells``-wide grid of seeded values
    upsampled bicubically. Only the small grid is random, so it stays cheap at 2048 px."""
    gw = max(2, cells)
    gh = max(2, round(cells * height / max(width, 1)))
    grid = rng.standard_normal((channels, gh, gw)).astype(np.float32)
    out = np.empty((height, width, channels), dtype=np.float32)
    for c in range(channels):
        small = Image.fromarray(np.ascontiguousarray(grid[c]))  # mode "F"
        out[..., c] = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC))
    return np.clip(out / 2, -1.5, 1.5)


def to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


# --- scene backgrounds ---------------------------------------------------------------------------------------
Band = tuple[float, float, RGB, RGB]  # (top, bottom) as fractions of the height, colour at top, colour at bottom

_SKY: Band = (0.0, 0.45, (110, 175, 232), (190, 222, 242))
LANDSCAPES: list[tuple[tuple[str, ...], list[Band]]] = [
    (("beach", "shore", "coast", "seaside", "seashore"),
     [_SKY, (0.45, 0.62, (28, 98, 168), (70, 165, 200)), (0.62, 1.0, (240, 218, 165), (212, 182, 126))]),
    (("underwater", "reef"), [(0.0, 1.0, (70, 195, 215), (5, 40, 95))]),
    (("sea", "ocean", "lake", "harbor", "harbour", "waves"),
     [(0.0, 0.4, (110, 175, 232), (190, 222, 242)), (0.4, 1.0, (45, 125, 190), (12, 55, 115))]),
    (("forest", "jungle", "woods", "woodland", "rainforest"),
     [(0.0, 0.72, (95, 145, 85), (28, 78, 40)), (0.72, 1.0, (95, 78, 45), (62, 46, 26))]),
    (("desert", "dunes", "dune", "sahara"),
     [(0.0, 0.45, (150, 200, 235), (232, 226, 208)), (0.45, 1.0, (236, 192, 122), (200, 140, 80))]),
    (("snow", "snowy", "winter", "arctic", "glacier", "tundra"),
     [(0.0, 0.5, (175, 198, 225), (225, 233, 242)), (0.5, 1.0, (246, 249, 253), (212, 223, 240))]),
    (("mountain", "mountains", "hills", "valley", "alps"),
     [(0.0, 0.35, (115, 178, 230), (192, 216, 236)), (0.35, 0.65, (112, 118, 142), (88, 98, 108)),
      (0.65, 1.0, (92, 142, 72), (58, 98, 48))]),
    (("field", "meadow", "grass", "grassland", "park", "garden", "farm", "countryside", "lawn", "prairie"),
     [(0.0, 0.5, (118, 184, 235), (200, 226, 242)), (0.5, 1.0, (112, 182, 72), (58, 128, 44))]),
    (("city", "street", "town", "urban", "downtown", "skyline", "alley", "village"),
     [(0.0, 0.4, (168, 184, 200), (206, 211, 217)), (0.4, 0.8, (122, 122, 134), (94, 94, 104)),
      (0.8, 1.0, (72, 72, 78), (48, 48, 54))]),
    (("table", "desk", "tabletop", "counter", "countertop"),
     [(0.0, 0.45, (236, 226, 208), (218, 204, 184)), (0.45, 1.0, (172, 122, 80), (132, 88, 54))]),
    (("room", "kitchen", "interior", "indoor", "indoors", "office", "studio", "bedroom", "cafe", "café",
      "restaurant", "bar", "shop", "store", "library", "classroom", "hall", "bakery"),
     [(0.0, 0.66, (236, 226, 206), (214, 200, 178)), (0.66, 1.0, (160, 116, 76), (122, 84, 54))]),
    (("space", "galaxy", "cosmos", "universe", "nebula", "outer"), [(0.0, 1.0, (8, 4, 28), (38, 16, 62))]),
]
SKIES: list[tuple[tuple[str, ...], list[Band]]] = [
    (("night", "midnight", "nighttime", "starry"), [(0.0, 1.0, (8, 12, 45), (32, 42, 92))]),
    (("sunset", "dusk", "twilight", "evening"),
     [(0.0, 0.5, (62, 42, 112), (198, 92, 112)), (0.5, 1.0, (240, 132, 70), (252, 192, 96))]),
    (("sunrise", "dawn", "morning"), [(0.0, 1.0, (150, 172, 222), (255, 204, 162))]),
    (("fog", "foggy", "mist", "misty", "haze", "hazy"), [(0.0, 1.0, (196, 198, 204), (170, 174, 180))]),
    (("sky", "clouds", "cloudy", "heaven", "air"), [(0.0, 1.0, (88, 158, 228), (202, 226, 246))]),
]
STARRY = {"night", "midnight", "nighttime", "starry", "space", "galaxy", "cosmos", "universe", "nebula", "outer"}


def _match(ws: list[str], table) -> tuple[str, list[Band]] | None:
    for w in ws:
        for keys, bands in table:
            if w in keys:
                return w, bands
    return None


def _bands_array(bands: list[Band], width: int, height: int) -> np.ndarray:
    column = np.zeros((height, 3), dtype=np.float32)
    for top, bottom, c0, c1 in bands:
        r0, r1 = int(round(top * height)), int(round(bottom * height))
        if r1 <= r0:
            continue
        t = np.linspace(0.0, 1.0, r1 - r0, dtype=np.float32)[:, None]
        column[r0:r1] = np.asarray(c0, np.float32) * (1 - t) + np.asarray(c1, np.float32) * t
    return np.repeat(column[:, None, :], width, axis=1)


def scene_background(
    text: str, width: int, height: int, rng: np.random.Generator, colour_words: bool = True,
) -> np.ndarray:
    """Float (H, W, 3) background for a scene description.

    A landscape word picks horizontal bands ("beach": sky, sea, sand); a sky/time word alone picks a sky
    ("night", "sunset"), and beside a landscape it tints it (a beach at night is the beach, darkened and blued).
    With neither, a colour word makes a gradient of that colour (unless ``colour_words`` is False: text that
    describes objects, not the scene), and any other text a pale hue hashed from it.
    Night and space scenes get seeded stars; every scene gets a faint seeded mottling."""
    ws = words(text)
    land, sky = _match(ws, LANDSCAPES), _match(ws, SKIES)
    if land:
        arr = _bands_array(land[1], width, height)
    elif sky:
        arr = _bands_array(sky[1], width, height)
    else:
        colors = find_colors(text) if colour_words else []
        if colors:
            c = colors[0]
            arr = _bands_array([(0.0, 1.0, mix(c, (255, 255, 255), 0.25), mix(c, (0, 0, 0), 0.2))], width, height)
        elif text.strip():
            c = hashed_color(text, saturation=0.22, value=0.93)
            arr = _bands_array([(0.0, 1.0, c, mix(c, (0, 0, 0), 0.15))], width, height)
        else:
            arr = _bands_array([(0.0, 1.0, (226, 226, 230), (198, 198, 206))], width, height)
    if land and sky:
        arr = _tint(arr, sky[0])
    if any(w in STARRY for w in ws):
        _stars(arr, rng, 0.55 if land else 1.0)
    arr += soft_noise(rng, height, width, cells=12, channels=1) * 5
    return arr


def _tint(arr: np.ndarray, word: str) -> np.ndarray:
    height = arr.shape[0]
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    if word in ("night", "midnight", "nighttime", "starry"):
        return arr * np.array([0.28, 0.32, 0.5], np.float32) + np.array([4, 8, 30], np.float32)
    if word in ("sunset", "dusk", "twilight", "evening"):
        glow = np.array([110, 50, 120], np.float32) * (1 - t) + np.array([250, 140, 60], np.float32) * t
        return arr * 0.6 + glow * 0.4
    if word in ("sunrise", "dawn", "morning"):
        return arr * 0.8 + np.array([255, 200, 170], np.float32) * 0.2
    if word in ("fog", "foggy", "mist", "misty", "haze", "hazy"):
        return arr * 0.55 + np.array([200, 202, 208], np.float32) * 0.45
    return arr


def _stars(arr: np.ndarray, rng: np.random.Generator, top_fraction: float) -> None:
    height, width = arr.shape[:2]
    n = max(8, width * height // 2500)
    ys = rng.integers(0, max(1, int(height * top_fraction)), n)
    xs = rng.integers(0, width, n)
    bright = rng.uniform(150, 255, n).astype(np.float32)
    arr[ys, xs] = np.maximum(arr[ys, xs], bright[:, None])
    big = rng.random(n) < 0.15
    for y, x, b in zip(ys[big], xs[big], bright[big]):
        arr[y : y + 2, x : x + 2] = np.maximum(arr[y : y + 2, x : x + 2], b)


# --- style treatments ----------------------------------------------------------------------------------------
_STYLES = [
    ("watercolor", r"water ?colou?r|aquarelle|gouache"),
    ("sketch", r"sketch|pencil|line ?art|drawing|\bink\b|doodle|charcoal drawing"),
    ("cartoon", r"cartoon|comic|anime|manga|flat (?:design|colou?rs?|illustration)|vector art|cel[- ]shad"),
    ("pixel", r"pixel|8[- ]?bit|16[- ]?bit"),
    ("mono", r"black and white|black & white|monochrome|gr[ae]yscale|\bnoir\b|\bb&w\b"),
    ("sepia", r"sepia|vintage|old photo"),
]


def style_names(text: str) -> list[str]:
    """The treatments ``text`` asks for, in the fixed order they are applied."""
    low = text.lower()
    return [name for name, pattern in _STYLES if re.search(pattern, low)]


def apply_style(image: Image.Image, text: str, rng: np.random.Generator) -> Image.Image:
    """Visible stand-ins for art styles: watercolor → soft blotchy washes on paper with pooled edges; sketch →
    graphite line art on paper; cartoon → flat posterised colours with ink edges; pixel art → big pixels and a
    small palette; black-and-white / sepia → toned greyscale. Styles not listed leave the image as it is."""
    for name in style_names(text):
        arr = np.asarray(image, dtype=np.float32)
        h, w = arr.shape[:2]
        if name == "watercolor":
            blot = soft_noise(rng, h, w, cells=7) * 0.6 + soft_noise(rng, h, w, cells=23) * 0.4
            arr = arr * (1 + 0.12 * blot) * 0.82 + 255 * 0.18
            soft = to_image(arr).filter(ImageFilter.GaussianBlur(max(1.0, w / 400)))
            edges = np.asarray(soft.convert("L").filter(ImageFilter.FIND_EDGES), np.float32)[..., None]
            arr = np.asarray(soft, np.float32) * (1 - np.clip(edges / 90, 0, 0.35))
            arr += rng.normal(0, 3.5, (h, w, 1)).astype(np.float32)
        elif name == "sketch":
            gray = image.convert("L").filter(ImageFilter.GaussianBlur(0.8))
            edges = np.asarray(gray.filter(ImageFilter.FIND_EDGES), np.float32)[..., None]
            tone = np.asarray(gray, np.float32)[..., None] / 255
            paper = np.array([247, 243, 233], np.float32)
            arr = paper * (0.78 + 0.22 * tone) * (1 - np.clip((edges - 10) / 30, 0, 0.85))  # weak edges: no ink
            arr += rng.normal(0, 4, (h, w, 1)).astype(np.float32)
        elif name == "cartoon":
            flat = image.filter(ImageFilter.MedianFilter(5)).quantize(20, dither=Image.Dither.NONE).convert("RGB")
            edges = np.asarray(flat.convert("L").filter(ImageFilter.FIND_EDGES), np.float32)[..., None]
            arr = np.asarray(flat, np.float32) * (1 - np.clip((edges - 40) / 30, 0, 0.9))  # ink only on outlines
        elif name == "pixel":
            block = max(4, round(min(w, h) / 64))
            sw, sh = math.ceil(w / block), math.ceil(h / block)
            small = image.resize((sw, sh), Image.Resampling.BOX)
            small = small.quantize(32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).convert("RGB")
            image = small.resize((sw * block, sh * block), Image.Resampling.NEAREST).crop((0, 0, w, h))
            continue
        elif name == "mono":
            g = np.asarray(image.convert("L"), np.float32)[..., None]
            arr = np.repeat((g - 128) * 1.1 + 128, 3, axis=2)
        elif name == "sepia":
            g = np.asarray(image.convert("L"), np.float32)[..., None]
            arr = g * np.array([1.07, 0.86, 0.62], np.float32) + np.array([12, 6, 0], np.float32)
        image = to_image(arr)
    return image


# --- shapes --------------------------------------------------------------------------------------------------
ROUND_NOUNS = {
    "apple", "orange", "ball", "balloon", "sun", "moon", "planet", "earth", "globe", "wheel", "tire", "tyre",
    "plate", "clock", "coin", "egg", "bubble", "face", "head", "melon", "watermelon", "pumpkin", "tomato",
    "cookie", "pizza", "donut", "doughnut", "bowl", "eye", "button", "cherry", "grape", "peach", "lemon", "lime",
    "orb", "circle", "ring", "bagel", "pie", "wreath", "frisbee", "disc", "disk", "target", "bush", "shrub",
    "sunflower", "flower", "blueberry", "pearl", "marble", "basketball", "football", "soccer", "tennis", "cake",
    "onion", "plum", "coconut", "snowball", "lollipop", "cloud", "pebble", "rock", "stone", "owl", "hedgehog",
    "round", "circular", "spherical", "oval", "sphere",  # shape words count too: "a round table"
}


def is_round(text: str) -> bool:
    """Round things are drawn as ellipses, everything else as rounded rectangles."""
    for w in words(text):
        plurals = (w[:-1], w[:-2] if w.endswith("es") else w) if w.endswith("s") else ()
        if w in ROUND_NOUNS or any(p in ROUND_NOUNS for p in plurals):
            return True
    return False


def draw_shape(
    canvas: Image.Image, rect: tuple[int, int, int, int], colors: list[RGB], ellipse: bool,
    rng: np.random.Generator | None = None,
) -> None:
    """Draw an outlined, shaded shape filling ``rect`` of ``canvas`` (in place; callers pass their own copy).

    One colour fills it; two or three ("a red and white umbrella") make vertical stripes, so every colour the
    phrase names is on the canvas for ``region_check`` to find. Edges are anti-aliased by drawing the masks at
    up to 4x and box-reducing them. The fill is lit from above (lighter top, darker bottom, a highlight on round
    things) and, with ``rng``, mottled by seeded noise, so a storyboard reads as objects rather than flat
    stickers. Nothing outside ``rect`` is touched."""
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    if w < 2 or h < 2:
        return
    scale = max(1, min(4, 2048 // max(w, h)))
    pad = max(1, round(min(w, h) * 0.03))
    line = max(2, round(min(w, h) / 30))

    def mask(inset: int) -> Image.Image:
        big = Image.new("L", (w * scale, h * scale), 0)
        d = ImageDraw.Draw(big)
        box = (inset * scale, inset * scale, (w - inset) * scale - 1, (h - inset) * scale - 1)
        if box[2] <= box[0] or box[3] <= box[1]:
            return Image.new("L", (w, h), 0)
        if ellipse:
            d.ellipse(box, fill=255)
        else:
            d.rounded_rectangle(box, radius=int(min(box[2] - box[0], box[3] - box[1]) * 0.16), fill=255)
        return big.reduce(scale) if scale > 1 else big

    outer, inner = mask(pad), mask(pad + line)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    colors = colors[:3] or [(128, 128, 128)]
    stripe = max(1.0, w / (2 * len(colors) + 1)) if len(colors) > 1 else float(w)
    base = np.asarray(colors, np.float32)[(np.arange(w) // stripe).astype(int) % len(colors)][None, :, :]
    fill = (base + (255 - base) * 0.22) * (1 - t) + base * 0.78 * t
    if ellipse:  # soft specular highlight, upper left; separable Gaussian
        gx = np.exp(-(((np.arange(w) - 0.36 * w) / (0.22 * w)) ** 2))
        gy = np.exp(-(((np.arange(h) - 0.3 * h) / (0.22 * h)) ** 2))
        spot = (gy[:, None] * gx[None, :]).astype(np.float32)[..., None] * 0.35
        fill = fill + (255 - fill) * spot
    if rng is not None:
        fill += soft_noise(rng, h, w, cells=6, channels=1) * 8
    outline = tuple(int(c * 0.42) for c in colors[0])
    region = canvas.crop(rect)
    region.paste(outline, mask=outer)
    region.paste(to_image(fill), mask=inner)
    canvas.paste(region, (x0, y0))
