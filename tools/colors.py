"""Colour words → RGB, for the preview backend.

The preview tools read colour words out of phrases ("a light blue vase", "crimson sign") to fill shapes, tint
repaints and check regions. Matching is by whole words, case-insensitive: two-word names ("sky blue", "hot pink")
win over one-word names, a modifier in front ("light", "pale", "pastel", "dark", "deep", "bright", "vivid")
changes the colour that follows, and "-ish" forms count ("reddish" → red). Anything else is not a colour word.
"""

from __future__ import annotations

import colorsys
import re
import zlib

RGB = tuple[int, int, int]

COLORS: dict[str, RGB] = {
    # reds and pinks
    "red": (220, 30, 35),
    "crimson": (200, 20, 60),
    "scarlet": (255, 36, 0),
    "cherry": (210, 20, 50),
    "maroon": (128, 0, 0),
    "burgundy": (128, 0, 32),
    "pink": (255, 150, 185),
    "hot pink": (255, 60, 160),
    "magenta": (230, 0, 200),
    "fuchsia": (230, 30, 180),
    "coral": (255, 127, 80),
    "salmon": (250, 128, 114),
    "peach": (255, 200, 160),
    # oranges, yellows, browns
    "orange": (255, 140, 0),
    "amber": (255, 190, 0),
    "yellow": (250, 215, 30),
    "gold": (230, 180, 30),
    "golden": (230, 180, 30),
    "brown": (130, 80, 40),
    "chocolate": (110, 60, 30),
    "tan": (210, 180, 140),
    "beige": (225, 210, 175),
    "khaki": (195, 176, 120),
    "bronze": (205, 127, 50),
    "copper": (184, 115, 51),
    "rust": (183, 65, 14),
    # greens
    "green": (40, 160, 60),
    "lime": (150, 220, 40),
    "olive": (120, 120, 30),
    "emerald": (0, 150, 90),
    "mint": (150, 230, 180),
    "forest green": (34, 100, 34),
    # blues and cyans
    "blue": (30, 90, 220),
    "navy": (20, 30, 100),
    "navy blue": (20, 30, 100),
    "sky blue": (120, 190, 240),
    "azure": (40, 140, 255),
    "cobalt": (0, 70, 170),
    "cyan": (0, 200, 220),
    "aqua": (0, 210, 200),
    "turquoise": (40, 210, 190),
    "teal": (0, 128, 128),
    # purples
    "purple": (130, 40, 170),
    "violet": (150, 80, 220),
    "lavender": (190, 160, 230),
    "indigo": (75, 0, 130),
    "plum": (140, 60, 120),
    # neutrals
    "white": (245, 245, 245),
    "ivory": (250, 248, 230),
    "cream": (250, 240, 210),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "silver": (192, 192, 200),
    "charcoal": (54, 60, 66),
}

# Colours a noun usually has, used only when the phrase names no colour (so "a tree" is green, not random).
NOUN_COLORS: dict[str, RGB] = {
    "sun": (250, 200, 40), "moon": (240, 235, 200), "star": (250, 220, 80),
    "tree": (50, 130, 50), "grass": (70, 160, 60), "leaf": (60, 150, 50), "bush": (50, 120, 50),
    "plant": (60, 150, 60), "cactus": (70, 140, 70), "frog": (90, 170, 60),
    "sky": (120, 190, 240), "water": (40, 120, 200), "sea": (30, 110, 180), "lake": (40, 120, 190),
    "river": (50, 130, 200), "cloud": (240, 240, 245), "snow": (245, 248, 255), "snowman": (245, 248, 255),
    "banana": (250, 215, 60), "lemon": (250, 230, 60), "carrot": (240, 120, 30), "orange": (255, 140, 0),
    "strawberry": (220, 30, 50), "tomato": (220, 40, 30), "apple": (200, 30, 40), "cherry": (200, 20, 50),
    "coffee": (110, 70, 40), "bread": (210, 160, 90), "wood": (150, 100, 60), "table": (150, 100, 60),
    "chair": (140, 95, 60), "dog": (170, 120, 70), "cat": (150, 130, 110), "horse": (140, 90, 50),
    "pumpkin": (240, 130, 20), "rock": (130, 125, 120), "stone": (140, 135, 130), "mountain": (120, 120, 135),
    "fire": (250, 110, 20), "road": (90, 90, 95), "house": (200, 170, 140), "car": (200, 40, 40),
}

_MODIFIERS = {"light", "pale", "pastel", "dark", "deep", "bright", "vivid", "neon"}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-case letter runs: 'Sky-blue, café!' → ['sky', 'blue', 'café']."""
    return _WORD.findall(text.lower())


def _base_color(word: str) -> RGB | None:
    if word in COLORS:
        return COLORS[word]
    if word.endswith("ish"):  # reddish, greenish, bluish, yellowish
        stem = word[:-3]
        for candidate in (stem, stem[:-1], stem + "e"):
            if candidate in COLORS:
                return COLORS[candidate]
    return None


def modify(rgb: RGB, modifier: str) -> RGB:
    """Apply a lightness/saturation modifier word to a colour."""
    r, g, b = (c / 255 for c in rgb)
    h, l, s = colorsys.rgb_to_hls(r, g, b)
    if modifier in ("light", "pale", "pastel"):
        l = l + (1 - l) * 0.5
        s = s * (0.6 if modifier == "pastel" else 0.85)
    elif modifier in ("dark", "deep"):
        l = l * 0.55
    elif modifier in ("bright", "vivid", "neon"):
        s = min(1.0, s * 1.3 + 0.1)
        l = min(0.6, max(l, 0.45))
    return tuple(int(round(c * 255)) for c in colorsys.hls_to_rgb(h, l, s))  # type: ignore[return-value]


def find_colors(text: str) -> list[RGB]:
    """Every colour named in ``text``, in order of appearance, duplicates removed."""
    ws = words(text)
    found: list[RGB] = []
    i = 0
    while i < len(ws):
        modifier = ws[i] if ws[i] in _MODIFIERS else None
        j = i + 1 if modifier else i
        rgb = None
        if j + 1 < len(ws) and f"{ws[j]} {ws[j + 1]}" in COLORS:
            rgb, j = COLORS[f"{ws[j]} {ws[j + 1]}"], j + 2
        elif j < len(ws) and (rgb := _base_color(ws[j])) is not None:
            j += 1
        if rgb is None:
            i += 1
            continue
        if modifier:
            rgb = modify(rgb, modifier)
        if rgb not in found:
            found.append(rgb)
        i = j
    return found


def noun_color(text: str) -> RGB | None:
    """The usual colour of the first known noun in ``text`` ('tree' → green); plural 's' is ignored."""
    for w in words(text):
        for form in (w, w[:-1] if w.endswith("s") else w, w[:-2] if w.endswith("es") else w):
            if form in NOUN_COLORS:
                return NOUN_COLORS[form]
    return None


def hashed_color(text: str, saturation: float = 0.55, value: float = 0.85) -> RGB:
    """A stable colour for any string (crc32, not ``hash()``, which changes between processes)."""
    hue = (zlib.crc32(text.strip().lower().encode("utf-8")) % 360) / 360
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, saturation, value))  # type: ignore[return-value]


def color_for(phrase: str, name: str = "") -> RGB:
    """Fill colour for an object: colour word in the phrase, then in the name, then the noun's usual colour,
    then a hue hashed from the name."""
    for text in (phrase, name):
        found = find_colors(text)
        if found:
            return found[0]
    return noun_color(name) or noun_color(phrase) or hashed_color(name or phrase)
