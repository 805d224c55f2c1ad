"""Where a new or moved box goes, in canvas fractions: beside, on, under, behind another box, or in the freest
spot; shared by the chat parser's edits (``planners.edit_rules``) and kept apart from its parsing."""

from __future__ import annotations

import math

from agent.blueprint import MAX_PAIR_OVERLAP, iou
from planners.lexicon import aspect_of, size_of


def overlap(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def box_size(noun: str, ref_box: list[float] | None) -> tuple[float, float]:
    """Width and height for a ``noun`` from the lexicon's size class and aspect, kept in proportion to its neighbour."""
    side = size_of(noun)
    aspect = aspect_of(noun)
    w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
    if ref_box is not None:  # keep it in proportion to what it stands next to
        rh = ref_box[3] - ref_box[1]
        if h > 1.3 * rh and rh > 0.1:
            w, h = w * 1.3 * rh / h, 1.3 * rh
    return min(w, 0.6), min(h, 0.6)


def place(noun: str, rel: str | None, ref: list[float] | None, boxes: list[list[float]], k: int) -> list[float]:
    """A box for a new ``noun`` (its usual size and aspect) in relation ``rel`` to ``ref``; ``k`` is its index
    among things added together, so "two birds above the tree" do not land on each other."""
    w, h = box_size(noun, ref)
    if ref is None:
        return free_spot(w, h, boxes)
    rx0, ry0, rx1, ry1 = ref
    rw, rh = rx1 - rx0, ry1 - ry0
    cx = (rx0 + rx1) / 2
    gap = 0.02 + k * (w + 0.02)
    if rel in ("left of", "to the left of"):
        cand = [[rx0 - gap - w, ry1 - h, rx0 - gap, ry1]]
    elif rel in ("right of", "to the right of"):
        cand = [[rx1 + gap, ry1 - h, rx1 + gap + w, ry1]]
    elif rel in ("on", "on top of"):
        cand = [[cx - w / 2 + k * w, ry0 + 0.1 * rh - h, cx + w / 2 + k * w, ry0 + 0.1 * rh]]
    elif rel in ("above", "over"):
        cand = [[cx - w / 2 + k * w, ry0 - 0.02 - h, cx + w / 2 + k * w, ry0 - 0.02]]
    elif rel in ("under", "underneath", "beneath", "below"):
        w, h = min(w, 0.8 * rw), min(h, 0.6 * rh) if rel != "below" else h
        top = ry1 - h if rel != "below" else ry1 + 0.02
        cand = [[cx - w / 2 + k * w, top, cx + w / 2 + k * w, top + h]]
    elif rel == "in front of":
        cand = [[cx - w / 2 + k * w, ry1 - 0.6 * h, cx + w / 2 + k * w, ry1 + 0.4 * h]]
    elif rel == "behind":
        w, h = 0.85 * w, 0.85 * h
        cand = [[cx - w / 2 + k * w, ry0 - 0.3 * h, cx + w / 2 + k * w, ry0 + 0.7 * h]]
    else:  # next to, beside, near, by: the side with more room, standing on the same ground line
        cand = []
        for room, side in ((1 - rx1 - gap, "right"), (rx0 - gap, "left")):
            f = min(1.0, room / w) if room >= 0.6 * w else 1.0  # shrink a little to fit beside it
            bw, bh = w * f, h * f
            box = (
                [rx1 + gap, ry1 - bh, rx1 + gap + bw, ry1]
                if side == "right"
                else [rx0 - gap - bw, ry1 - bh, rx0 - gap, ry1]
            )
            cand.append(clamp(box))
        cand.sort(key=lambda b: sum(overlap(b, o) for o in boxes))
    for box in cand:
        if box[0] >= -0.01 and box[2] <= 1.01 and box[1] >= -0.01 and box[3] <= 1.01:
            return avoid(clamp(box), boxes)
    return avoid(clamp(cand[0]), boxes)


def clamp(box: list[float]) -> list[float]:
    w, h = min(1.0, box[2] - box[0]), min(1.0, box[3] - box[1])
    x0 = min(max(0.0, box[0]), 1 - w)
    y0 = min(max(0.0, box[1]), 1 - h)
    return [round(x0, 4), round(y0, 4), round(x0 + w, 4), round(y0 + h, 4)]


def avoid(box: list[float], boxes: list[list[float]]) -> list[float]:
    """Nudge sideways until the box no longer sits (almost) exactly on another one."""
    w = box[2] - box[0]
    for step in (0, 1, -1, 2, -2, 3, -3):
        cand = clamp([box[0] + step * 0.6 * w, box[1], box[2] + step * 0.6 * w, box[3]])
        if all(iou(cand, b) <= MAX_PAIR_OVERLAP * 0.8 for b in boxes):
            return cand
    return box


def free_spot(w: float, h: float, boxes: list[list[float]]) -> list[float]:
    """The grid position (lower half preferred) that overlaps existing boxes least."""
    best, best_cost = None, None
    for gy in (0.9, 0.75, 0.6, 0.4):
        for gx in (0.2, 0.8, 0.5, 0.35, 0.65):
            box = clamp([gx - w / 2, gy - h, gx + w / 2, gy])
            cost = sum(overlap(box, b) for b in boxes) + 0.001 * abs(gy - 0.85)
            if best_cost is None or cost < best_cost - 1e-9:
                best, best_cost = box, cost
    return best


def place_sized(w: float, h: float, rel: str, ref: list[float], boxes: list[list[float]], k: int) -> list[float]:
    """Like :func:`place` for a box that keeps its own size: "move the lamp next to the vase"."""
    rx0, ry0, rx1, ry1 = ref
    cx = (rx0 + rx1) / 2
    gap = 0.02 + k * (w + 0.02)
    if rel in ("left of", "to the left of"):
        box = [rx0 - gap - w, ry1 - h, rx0 - gap, ry1]
    elif rel in ("right of", "to the right of"):
        box = [rx1 + gap, ry1 - h, rx1 + gap + w, ry1]
    elif rel in ("on", "on top of"):
        box = [cx - w / 2, ry0 + 0.1 * (ry1 - ry0) - h, cx + w / 2, ry0 + 0.1 * (ry1 - ry0)]
    elif rel in ("above", "over"):
        box = [cx - w / 2, ry0 - 0.02 - h, cx + w / 2, ry0 - 0.02]
    elif rel in ("under", "underneath", "beneath"):
        box = [cx - w / 2, ry1 - h, cx + w / 2, ry1]
    elif rel == "below":
        box = [cx - w / 2, ry1 + 0.02, cx + w / 2, ry1 + 0.02 + h]
    elif rel == "in front of":
        box = [cx - w / 2, ry1 - 0.6 * h, cx + w / 2, ry1 + 0.4 * h]
    elif rel == "behind":
        box = [cx - w / 2, ry0 - 0.3 * h, cx + w / 2, ry0 + 0.7 * h]
    else:
        right = [rx1 + gap, ry1 - h, rx1 + gap + w, ry1]
        left = [rx0 - gap - w, ry1 - h, rx0 - gap, ry1]
        box = right if (1 - rx1 >= rx0 and right[2] <= 1.0) or left[0] < 0 else left
    return avoid(clamp(box), boxes)
