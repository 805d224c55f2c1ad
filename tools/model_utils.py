"""Helpers shared by the real-model tools (diffusers, transformers CLIP): batch keys, boxes, seeds.

Nothing here imports torch at module level, so importing a tool module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from tools.base import Tool, ToolModel


def field(tool: type[Tool], inp: Any, name: str) -> Any:
    """A field of an input for ``batch_key``: the executor passes the *encoded* dict (defaults may be absent,
    images are ``{"$artifact": sha, "kind": "image", "size": [w, h]}``); direct callers may pass the model."""
    if isinstance(inp, ToolModel):
        return getattr(inp, name)
    if name in inp:
        return inp[name]
    return tool.Input.model_fields[name].default


def image_size(value: Any) -> tuple[int, int] | None:
    """(w, h) of an encoded image reference, a PIL image, or None."""
    if value is None:
        return None
    if isinstance(value, dict):
        w, h = value["size"]
        return int(w), int(h)
    return int(value.width), int(value.height)


def hashable(value: Any) -> Hashable:
    if isinstance(value, float):
        return round(value, 6)
    return value


def box_pixels(box: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """Normalised xyxy → pixel (x0, y0, x1, y1), x1/y1 exclusive: the same rectangle as the preview tools'
    ``tools.preview_render.pixel_rect`` (floor/ceil, 1e-9 tolerance), so "the box" means the same pixels in every
    backend and in ``composite``; widened to at least 1 px so a degenerate box still has a crop."""
    eps = 1e-9
    x0 = min(max(math.floor(box[0] * width + eps), 0), width - 1)
    y0 = min(max(math.floor(box[1] * height + eps), 0), height - 1)
    x1 = max(min(math.ceil(box[2] * width - eps), width), x0 + 1)
    y1 = max(min(math.ceil(box[3] * height - eps), height), y0 + 1)
    return x0, y0, x1, y1


def generators(seeds: list[int]):
    """One CPU generator per sample: a node's noise depends on its own seed only, batched or alone, on any device."""
    import torch

    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
