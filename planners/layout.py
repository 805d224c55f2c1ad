"""Boxes for a read :class:`~planners.reader.Scene`: a small constraint solver over box centres.

Every drawn instance is a node with a size (from what it is and its size words) and a centre. Relations become
*orders* on one axis ("A left of B": B.x - A.x >= gap) that are projected exactly, *pulls* toward a point that are
applied softly (a cup's bottom toward the table's top, a "left" thing toward x = 0.2), *containments* (a hat in
its wearer's box) and *bounds* (a "top-left" thing keeps its centre in the top-left quarter). Unrelated nodes
push each other apart. The loop runs a fixed number of sweeps in a fixed order, so the same scene always gives the
same boxes; if a relation still fails at the end (too little room) every node shrinks and the solve repeats.

The checks that matter downstream are on centres (A left of B: centre_x(A) < centre_x(B)), so orders are solved
on centres, with gaps sized to separate boxes where the room allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agent.blueprint import iou
from planners import lexicon as lx
from planners.reader import Relation, Scene, Target

MARGIN = 0.01
MIN_SIDE = 0.03  # comfortably above the Blueprint's 0.02, which rounding could otherwise undercut
MAX_IOU = 0.7  # below the Blueprint's 0.85 pile-up limit
SWEEPS = 90
RETRIES = 6
CROWD_AREA = 0.5  # top-level boxes may cover about this much of the canvas before everything shrinks
DOMINANCE = 0.7  # across-axis offset of a stated directional relation, at most this share of the along-axis one
SPARSE_AREA = 0.22  # ... and at least this much (a lone apple should not be a speck), growing at most 2x

# where a region puts a centre: (x target, y target, x bounds, y bounds)
_REGIONS: dict[str, tuple[float | None, float | None, tuple[float, float], tuple[float, float]]] = {
    "left": (0.2, None, (0.0, 0.4), (0.0, 1.0)),
    "right": (0.8, None, (0.6, 1.0), (0.0, 1.0)),
    "top": (None, 0.2, (0.0, 1.0), (0.0, 0.4)),
    "bottom": (None, 0.8, (0.0, 1.0), (0.6, 1.0)),
    "center": (0.5, 0.5, (0.3, 0.7), (0.25, 0.75)),
    "top-left": (0.2, 0.2, (0.0, 0.42), (0.0, 0.42)),
    "top-right": (0.8, 0.2, (0.58, 1.0), (0.0, 0.42)),
    "bottom-left": (0.2, 0.8, (0.0, 0.42), (0.58, 1.0)),
    "bottom-right": (0.8, 0.8, (0.58, 1.0), (0.58, 1.0)),
    "front": (None, 0.72, (0.0, 1.0), (0.5, 1.0)),
    "back": (None, 0.32, (0.0, 1.0), (0.0, 0.55)),
    "low": (None, 0.7, (0.0, 1.0), (0.0, 1.0)),
    "wall": (None, 0.35, (0.0, 1.0), (0.0, 1.0)),
}
# where a region puts a contained thing inside its container (fractions of the container's box)
_INNER = {"left": (0.25, None), "right": (0.75, None), "top": (None, 0.25), "bottom": (None, 0.75),
          "center": (0.5, 0.5), "top-left": (0.25, 0.25), "top-right": (0.75, 0.25),
          "bottom-left": (0.25, 0.75), "bottom-right": (0.75, 0.75)}


@dataclass
class Node:
    group: int
    instance: int
    w: float
    h: float
    x: float = 0.5
    y: float = 0.5
    container: int | None = None  # index of the node whose box holds this one
    anchor: tuple[float, float] = (0.5, 0.5)  # where in the container (fractions)
    pulls: list[tuple[str, float, float]] = field(default_factory=list)  # (axis, target, weight)
    within: list[int] = field(default_factory=list)  # nodes whose width this one stays inside (on, under)
    xb: tuple[float, float] = (0.0, 1.0)  # bounds on the centre
    yb: tuple[float, float] = (0.0, 1.0)


@dataclass
class _Order:
    axis: str
    a: int
    b: int  # b.pos - a.pos >= gap
    gap: str  # how the gap is sized: "sep" (boxes apart), "on", "under", "depth", "tiny"


@dataclass
class _Align:
    axis: str
    a: int
    b: int
    offset: str  # "center", "on", "under", "bottom", "front"
    weight: float


@dataclass
class LayoutResult:
    boxes: dict[tuple[int, int], list[float]]
    text_boxes: list[list[float]]


def layout(scene: Scene, width: int, height: int) -> LayoutResult:
    solver = _Solver(scene, width / height)
    boxes = solver.solve()
    return LayoutResult(boxes, _text_boxes(scene, boxes, width / height))


class _Solver:
    def __init__(self, scene: Scene, ratio: float):
        self.scene = scene
        self.ratio = ratio  # canvas width / height
        self.nodes: list[Node] = []
        self.index: dict[tuple[int, int], int] = {}
        for gi, g in enumerate(scene.groups):
            for k in range(g.count):
                self.index[(gi, k)] = len(self.nodes)
                self.nodes.append(Node(gi, k, 0.0, 0.0))
        self.orders: list[_Order] = []
        self.aligns: list[_Align] = []
        self.near: list[tuple[int, int]] = []
        self.dominant: list[tuple[str, int, int]] = []  # a stated left/right (above/below) reads along its axis
        self.exempt: set[tuple[int, int]] = set()
        self.checks: list[tuple[str, int, int]] = []  # (kind, a, b): centre checks for the retry loop
        self._sizes()
        self._constraints()

    # -- setup ---------------------------------------------------------------------------------------------------

    def _nodes_of(self, t: Target) -> list[int]:
        g = self.scene.groups[t.group]
        if t.instance is not None:
            return [self.index[(t.group, t.instance)]] if t.instance < g.count else []
        return [self.index[(t.group, k)] for k in range(g.count)]

    def _sizes(self) -> None:
        """Drawn size from the thing's kind and size words, then region and relation limits, then crowding."""
        regions = {}
        for t, r in self.scene.regions:
            for i in self._nodes_of(t):
                regions.setdefault(i, []).append(r)
        for i, n in enumerate(self.nodes):
            g = self.scene.groups[n.group]
            words = [w.lower() for w in g.words + g.instance_words.get(n.instance, [])]
            s = lx.size_of(g.name.lower())
            for w in words[:-1]:
                s *= lx.SIZES.get(w, 1.0)
            for r in regions.get(i, []):
                s *= {"front": 1.15, "back": 0.75}.get(r, 1.0)
            a = lx.aspect_of(g.name.lower())
            if "tall" in words:
                a *= 0.75
            n.w = min(0.9, s * math.sqrt(a / self.ratio))
            n.h = min(0.9, s * math.sqrt(self.ratio / a))
        self._grow_surfaces()
        top = [n for n in self.nodes if not self._is_contained(n)]
        area = sum(n.w * n.h for n in top)
        if area > CROWD_AREA:
            f = math.sqrt(CROWD_AREA / area)
        else:
            f = min(2.0, math.sqrt(SPARSE_AREA / area)) if 0 < area < SPARSE_AREA else 1.0
        for n in self.nodes:
            n.w, n.h = min(0.9, n.w * f), min(0.9, n.h * f)
        for _ in range(2):  # limits along chains: a cup on a plate on a table
            for rel in self.scene.relations:
                self._limit(rel)
        for n in self.nodes:
            n.w, n.h = max(n.w, 0.04), max(n.h, 0.04)

    def _grow_surfaces(self) -> None:
        """Things put on a surface widen it until they fit side by side ("five fruits on a plate")."""
        on: dict[int, float] = {}
        for rel in self.scene.relations:
            if rel.kind == "on":
                for o in rel.objects:
                    for b in self._nodes_of(o):
                        on[b] = on.get(b, 0.0) + sum(self.nodes[a].w for a in self._nodes_of(rel.subject))
        for b, need in on.items():
            n = self.nodes[b]
            grown = min(0.85, max(n.w, need * 1.1))
            n.h, n.w = n.h * min(1.5, grown / n.w), grown

    def _is_contained(self, n: Node) -> bool:
        holding = ("inside", "wear", "hold")
        return any(
            rel.subject.group == n.group and (rel.kind in holding or rel.kind == "with" and self._held(rel))
            for rel in self.scene.relations
        )

    def _limit(self, rel: Relation) -> None:
        """Relations that put one thing on or in another also bound its size by the other's."""
        subjects = self._nodes_of(rel.subject)
        for o in rel.objects:
            for b in self._nodes_of(o):
                nb = self.nodes[b]
                share = max(1, len(subjects))
                for a in subjects:
                    na = self.nodes[a]
                    if rel.kind == "on":
                        na.w = min(na.w, max(0.9 * nb.w / share, 0.5 * nb.w))
                    elif rel.kind == "under" and self._has_room(o):
                        na.w, na.h = min(na.w, 0.8 * nb.w / share), min(na.h, 0.65 * nb.h)
                    elif rel.kind == "inside":
                        na.w, na.h = min(na.w, 0.8 * nb.w), min(na.h, 0.8 * nb.h)
                    elif rel.kind in ("wear", "hold") or (rel.kind == "with" and self._held(rel)):
                        f = 0.45 / math.sqrt(share)
                        na.w, na.h = min(na.w, f * nb.w), min(na.h, f * nb.h)
                    elif rel.kind == "behind":
                        na.w, na.h = min(na.w, 1.1 * nb.w), min(na.h, 1.1 * nb.h)

    def _has_room(self, t: Target) -> bool:
        return self.scene.groups[t.group].name.split()[-1].lower() in lx.HAS_ROOM_UNDER

    def _held(self, rel: Relation) -> bool:
        """"a cake with candles": small things go inside the owner's box; "a man with a dog" stands beside him."""
        name = self.scene.groups[rel.subject.group].name.lower()
        return lx.size_of(name) < 0.3 and name.split()[-1] not in lx.ANIMATE

    def _constraints(self) -> None:
        scene = self.scene
        for rel in scene.relations:
            subjects = self._nodes_of(rel.subject)
            for o_index, o in enumerate(rel.objects):
                objects = self._nodes_of(o)
                if rel.kind in ("wear", "hold", "with", "inside") and len(subjects) == len(objects) > 1:
                    pairs = list(zip(subjects, objects))  # "two people with umbrellas": one each
                else:
                    pairs = [(a, b) for b in objects for a in subjects]
                for a, b in pairs:
                    if a != b:
                        self._relate(rel, a, b, o_index, subjects.index(a))
        self._spread_anchors()
        sides: dict[str, list[int]] = {}
        for t, region in scene.regions:
            for i in self._nodes_of(t):
                self._region(i, region)
                sides.setdefault(region, []).append(i)
        # "a car on the right and a boat on the left": opposite regions read as a relation along their axis too
        for first, second, axis in (("left", "right", "x"), ("top", "bottom", "y")):
            for a in sides.get(first, []):
                self.dominant += [(axis, a, b) for b in sides.get(second, []) if self.nodes[b].container is None]
        self._initial_positions()

    def _spread_anchors(self) -> None:
        """Several things held by one container ("six books" in a shelf) get a row (or rows) of anchors."""
        by_container: dict[tuple[int, tuple[float, float]], list[int]] = {}
        for i, n in enumerate(self.nodes):
            if n.container is not None:
                by_container.setdefault((n.container, n.anchor), []).append(i)
        for (_, (ax, ay)), members in by_container.items():
            if len(members) < 2:
                continue
            cols = math.ceil(math.sqrt(len(members) * 2))
            rows = math.ceil(len(members) / cols)
            for k, i in enumerate(members):
                r, c = divmod(k, cols)
                x = 0.15 + 0.7 * (c + 0.5) / cols
                y = min(0.85, max(0.15, ay + (r - (rows - 1) / 2) * 0.7 / max(rows, 2)))
                self.nodes[i].anchor = (x, y)
                n = self.nodes[i]
                c_node = self.nodes[n.container]
                n.w = min(n.w, 0.8 * c_node.w / cols)
                n.h = min(n.h, 0.8 * c_node.h / max(rows, 2))

    def _relate(self, rel: Relation, a: int, b: int, o_index: int, k: int) -> None:
        kind = rel.kind
        if kind == "between":
            kind = "right" if o_index == 0 else "left"
        if kind == "flank":
            kind = "left" if k % 2 == 0 else "right"
        if kind == "with" and not self._held(rel):
            kind = "near"
        pair = (min(a, b), max(a, b))
        if kind in ("left", "right", "above", "below"):
            self.dominant.append(("x" if kind in ("left", "right") else "y", a, b))
        if kind == "left":
            self._order("x", a, b, "sep")
        elif kind == "right":
            self._order("x", b, a, "sep")
        elif kind == "above":
            self._order("y", a, b, "sep")
            self.aligns.append(_Align("x", a, b, "center", 0.02))
        elif kind == "below":
            self._order("y", b, a, "sep")
            self.aligns.append(_Align("x", a, b, "center", 0.02))
        elif kind == "on":
            self._order("y", a, b, "on")
            self.aligns += [_Align("y", a, b, "on", 0.3), _Align("x", a, b, "center", 0.05)]
            self.exempt.add(pair)
            self.nodes[a].within.append(b)
        elif kind == "under":
            if self._has_room(Target(self.nodes[b].group)):
                self._order("y", b, a, "under")
                self.aligns += [_Align("y", a, b, "under", 0.3), _Align("x", a, b, "center", 0.05)]
                self.exempt.add(pair)
                self.nodes[a].within.append(b)
            else:
                self._order("y", b, a, "sep")
                self.aligns.append(_Align("x", a, b, "center", 0.05))
        elif kind == "front":
            self._order("y", b, a, "depth")
            self.aligns += [_Align("y", a, b, "front", 0.2), _Align("x", a, b, "center", 0.05)]
            self.exempt.add(pair)
        elif kind == "behind":
            self._order("y", a, b, "depth")
            self.aligns.append(_Align("x", a, b, "center", 0.05))
            self.exempt.add(pair)
        elif kind == "near":
            self.near.append((a, b))
            self.aligns.append(_Align("y", a, b, "bottom", 0.1))
        elif kind in ("inside", "wear", "hold", "with"):
            na = self.nodes[a]
            if na.container is None:
                na.container = b
                name = self.scene.groups[na.group].name.split()[-1].lower()
                na.anchor = {"inside": (0.5, 0.55), "hold": (0.72, 0.55)}.get(
                    kind, (0.5, 0.18) if name in lx.HEADWEAR else (0.5, 0.5) if kind == "wear" else (0.5, 0.35)
                )
            self.exempt.add(pair)

    def _order(self, axis: str, a: int, b: int, gap: str) -> None:
        self.orders.append(_Order(axis, a, b, gap))
        self.exempt.discard((min(a, b), max(a, b)))

    def _region(self, i: int, region: str) -> None:
        n = self.nodes[i]
        if n.container is not None:
            ax, ay = _INNER.get(region, (None, None))
            n.anchor = (ax if ax is not None else n.anchor[0], ay if ay is not None else n.anchor[1])
            return
        if region not in _REGIONS:
            return
        tx, ty, xb, yb = _REGIONS[region]
        if tx is not None:
            n.pulls.append(("x", tx, 0.15))
        if ty is not None:
            n.pulls.append(("y", ty, 0.15 if region not in ("low", "wall") else 0.05))
        n.xb = (max(n.xb[0], xb[0]), min(n.xb[1], xb[1]))
        n.yb = (max(n.yb[0], yb[0]), min(n.yb[1], yb[1]))
        if n.xb[0] >= n.xb[1] or n.yb[0] >= n.yb[1]:  # contradictory regions: keep the first
            n.xb, n.yb = (0.0, 1.0), (0.0, 1.0)

    def _initial_positions(self) -> None:
        """Start groups in slots ordered by their left-right ranks, at the height their kind suggests (sky things
        high, ground things low), so the solver mostly refines rather than untangles."""
        xrank = self._ranks("x")
        groups = sorted({n.group for n in self.nodes}, key=lambda g: (xrank.get(g, 0), g))
        top_groups = [g for g in groups if any(n.container is None for n in self.nodes if n.group == g)]
        for slot, g in enumerate(top_groups):
            gx = 0.15 + 0.7 * (slot + 0.5) / max(1, len(top_groups))
            members = [i for i, n in enumerate(self.nodes) if n.group == g]
            width = sum(self.nodes[i].w for i in members) * 1.05
            start = gx - width / 2
            for i in members:
                n = self.nodes[i]
                n.x = start + n.w / 2
                start += n.w * 1.05
                name = self.scene.groups[g].name.split()[-1].lower()
                if name in lx.SKY:
                    n.y = 0.2
                elif name in lx.GROUND:
                    n.y = 0.85 - n.h / 2
                else:
                    n.y = 0.55
                for axis, target, _ in n.pulls:
                    if axis == "x":
                        n.x = target
                    elif axis == "y":
                        n.y = target
        for n in self.nodes:
            name = self.scene.groups[n.group].name.split()[-1].lower()
            if n.container is None and not any(p[0] == "y" for p in n.pulls):
                if name in lx.SKY:
                    n.pulls.append(("y", 0.2, 0.03))
                elif name in lx.GROUND:
                    n.pulls.append(("bottom", 0.9, 0.06))
        self._place_contained()

    def _ranks(self, axis: str) -> dict[int, int]:
        """Longest-path rank of each group along an axis over the order constraints (cycles are cut)."""
        edges = {(self.nodes[o.a].group, self.nodes[o.b].group) for o in self.orders if o.axis == axis}
        edges = {(a, b) for a, b in edges if a != b}
        rank: dict[int, int] = {}
        for a, b in edges:
            rank.setdefault(a, 0)
            rank.setdefault(b, 0)
        for _ in range(len(rank)):
            changed = False
            for a, b in sorted(edges):
                if rank[b] < rank[a] + 1 and rank[a] + 1 < len(rank):
                    rank[b] = rank[a] + 1
                    changed = True
            if not changed:
                break
        return rank

    def _place_contained(self, pull: float = 1.0) -> None:
        """Contained things drift toward their anchor in the container and never leave its box."""
        for n in self.nodes:
            if n.container is None:
                continue
            c = self.nodes[n.container]
            n.x += pull * (c.x - c.w / 2 + n.anchor[0] * c.w - n.x)
            n.y += pull * (c.y - c.h / 2 + n.anchor[1] * c.h - n.y)
            for axis, size, csize, cpos in (("x", n.w, c.w, c.x), ("y", n.h, c.h, c.y)):
                lo, hi = cpos - csize / 2 + size / 2, cpos + csize / 2 - size / 2
                pos = getattr(n, axis)
                setattr(n, axis, cpos if lo > hi else min(max(pos, lo), hi))

    # -- solve ---------------------------------------------------------------------------------------------------

    def solve(self) -> dict[tuple[int, int], list[float]]:
        start = [(n.x, n.y, n.w, n.h) for n in self.nodes]
        best, best_bad = None, None
        for attempt in range(RETRIES):
            scale = 0.85 ** attempt
            for n, (x, y, w, h) in zip(self.nodes, start):
                n.x, n.y, n.w, n.h = x, y, max(0.04, w * scale), max(0.04, h * scale)
            for _ in range(SWEEPS):
                self._sweep()
            bad = self._violations()
            if best_bad is None or bad < best_bad:
                best, best_bad = [(n.x, n.y, n.w, n.h) for n in self.nodes], bad
            if bad == 0:
                break
        for n, (x, y, w, h) in zip(self.nodes, best):
            n.x, n.y, n.w, n.h = x, y, w, h
        return self._boxes()

    def _gap(self, o: _Order) -> float:
        a, b = self.nodes[o.a], self.nodes[o.b]
        size = (lambda n: n.w) if o.axis == "x" else (lambda n: n.h)
        if o.gap == "sep":
            return max(0.04, 0.5 * (size(a) + size(b)) * 0.9)
        if o.gap == "on":
            return max(0.04, 0.3 * b.h + 0.35 * a.h)
        if o.gap == "under":
            return max(0.03, 0.5 * (b.h - a.h) * 0.6)
        return max(0.04, 0.15 * (a.h + b.h))  # depth: in front of / behind

    def _sweep(self) -> None:
        nodes = self.nodes
        for n in nodes:
            for axis, target, weight in n.pulls:
                if axis == "x":
                    n.x += weight * (target - n.x)
                elif axis == "y":
                    n.y += weight * (target - n.y)
                elif axis == "bottom":
                    n.y += weight * (target - n.h / 2 - n.y)
            for other in (nodes[b] for b in n.within):  # a thing on or under another stays within its width
                lo, hi = other.x - other.w / 2 + n.w / 2, other.x + other.w / 2 - n.w / 2
                goal = other.x if lo > hi else min(max(n.x, lo), hi)
                n.x += 0.5 * (goal - n.x)
        for al in self.aligns:  # both ends move, so a pull can never drift a pair against an order
            a, b = nodes[al.a], nodes[al.b]
            if al.axis == "x":
                d = al.weight * (b.x - a.x) / 2
                a.x, b.x = a.x + d, b.x - d
                continue
            goal = {
                "center": b.y,
                "on": b.y - 0.35 * b.h - 0.5 * a.h,
                "under": b.y + 0.5 * b.h - 0.5 * a.h,
                "bottom": b.y + 0.5 * b.h - 0.5 * a.h,
                "front": max(b.y + 0.5 * b.h + 0.06 - 0.5 * a.h, b.y + 0.15 * (a.h + b.h) + 0.02),
            }[al.offset]
            d = al.weight * (goal - a.y) / 2
            a.y, b.y = a.y + d, b.y - d
        self._repel()
        for a, b in self.near:
            na, nb = nodes[a], nodes[b]
            gap = 0.5 * (na.w + nb.w) + 0.02
            side = 1.0 if na.x >= nb.x else -1.0
            d = (na.x - nb.x) * side
            if d < gap:
                na.x += side * (gap - d) / 2
                nb.x -= side * (gap - d) / 2
            elif d > gap + 0.08:
                na.x -= side * 0.2 * (d - gap - 0.08)
        for o in self.orders:
            a, b = nodes[o.a], nodes[o.b]
            gap = self._gap(o)
            pa, pb = (a.x, b.x) if o.axis == "x" else (a.y, b.y)
            if pb - pa < gap:
                delta = (gap - (pb - pa)) / 2
                if o.axis == "x":
                    a.x, b.x = a.x - delta, b.x + delta
                else:
                    a.y, b.y = a.y - delta, b.y + delta
        self._dominate()
        for n in nodes:
            self._clamp(n)
        self._place_contained(pull=0.3)

    def _dominate(self) -> None:
        """A stated "left of" must read as left, not above: the offset across the relation's axis stays below
        DOMINANCE of the offset along it (GenEval's rule), however high a kite or low a car wants to sit."""
        for axis, a, b in self.dominant:
            na, nb = self.nodes[a], self.nodes[b]
            along = abs(nb.x - na.x) if axis == "x" else abs(nb.y - na.y)
            across = nb.y - na.y if axis == "x" else nb.x - na.x
            excess = abs(across) - DOMINANCE * along
            if excess <= 0:
                continue
            d = 0.5 * excess * (1 if across > 0 else -1)
            if axis == "x":
                na.y, nb.y = na.y + d, nb.y - d
            else:
                na.x, nb.x = na.x + d, nb.x - d

    def _repel(self) -> None:
        """Boxes that are not meant to overlap push apart along the axis where they overlap least."""
        nodes = self.nodes
        for i in range(len(nodes)):
            a = nodes[i]
            for j in range(i + 1, len(nodes)):
                b = nodes[j]
                if (i, j) in self.exempt or a.container != b.container:
                    continue  # only things at the same level compete for room (books inside one shelf do)
                ox = 0.5 * (a.w + b.w) - abs(a.x - b.x)
                oy = 0.5 * (a.h + b.h) - abs(a.y - b.y)
                if ox <= 0 or oy <= 0 or ox * oy < 0.05 * min(a.w * a.h, b.w * b.h):
                    continue
                if ox < oy:
                    s = 1.0 if a.x < b.x or (a.x == b.x and i < j) else -1.0
                    a.x -= s * ox * 0.25
                    b.x += s * ox * 0.25
                else:
                    s = 1.0 if a.y < b.y or (a.y == b.y and i < j) else -1.0
                    a.y -= s * oy * 0.25
                    b.y += s * oy * 0.25

    @staticmethod
    def _clamp(n: Node) -> None:
        lo, hi = max(n.w / 2 + MARGIN, n.xb[0]), min(1 - n.w / 2 - MARGIN, n.xb[1])
        n.x = min(max(n.x, lo), hi) if lo <= hi else 0.5 * (lo + hi)
        lo, hi = max(n.h / 2 + MARGIN, n.yb[0]), min(1 - n.h / 2 - MARGIN, n.yb[1])
        n.y = min(max(n.y, lo), hi) if lo <= hi else 0.5 * (lo + hi)

    def _violations(self) -> int:
        bad = 0
        for o in self.orders:
            a, b = self.nodes[o.a], self.nodes[o.b]
            d = (b.x - a.x) if o.axis == "x" else (b.y - a.y)
            bad += d < 0.01
        for axis, a, b in self.dominant:
            na, nb = self.nodes[a], self.nodes[b]
            dx, dy = abs(nb.x - na.x), abs(nb.y - na.y)
            along, across = (dx, dy) if axis == "x" else (dy, dx)
            bad += across >= along
        return bad

    def _boxes(self) -> dict[tuple[int, int], list[float]]:
        boxes = {}
        for n in self.nodes:
            x0, x1 = max(0.0, n.x - n.w / 2), min(1.0, n.x + n.w / 2)
            y0, y1 = max(0.0, n.y - n.h / 2), min(1.0, n.y + n.h / 2)
            boxes[(n.group, n.instance)] = [x0, y0, x1, y1]
        _separate(boxes)
        return boxes


def _separate(boxes: dict[tuple[int, int], list[float]]) -> None:
    """Last guard against piles: while two boxes nearly coincide, shrink the smaller about its own centre
    (centres stay put, so every relation that held still holds)."""
    keys = sorted(boxes)
    for _ in range(12):
        changed = False
        for i, ka in enumerate(keys):
            for kb in keys[i + 1:]:
                a, b = boxes[ka], boxes[kb]
                if iou(a, b) <= MAX_IOU:
                    continue
                small = ka if (a[2] - a[0]) * (a[3] - a[1]) <= (b[2] - b[0]) * (b[3] - b[1]) else kb
                x0, y0, x1, y1 = boxes[small]
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                w, h = max(MIN_SIDE, (x1 - x0) * 0.75), max(MIN_SIDE, (y1 - y0) * 0.75)
                boxes[small] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
                changed = True
        if not changed:
            return


# ---------------------------------------------------------------------------------------------------------------
# Text boxes
# ---------------------------------------------------------------------------------------------------------------


def _text_units(content: str) -> float:
    """Width of a text in heights of its line: Latin glyphs are about 0.55 as wide as tall, CJK about 1."""
    return sum(1.0 if ord(c) >= 0x2E80 else 0.55 for c in content) + 0.3


def fit_text(content: str, area: list[float], ratio: float, max_line: float = 0.12) -> list[float]:
    """A box for ``content`` inside ``area`` whose width follows its length, wrapping long text into lines."""
    x0, y0, x1, y1 = area
    aw, ah = x1 - x0, y1 - y0
    units = _text_units(content)
    lines, line_h = 1, 0.0
    for lines in range(1, 7):
        per_line = units / lines
        line_h = min(ah / lines, max_line, aw * ratio / per_line)
        if line_h >= 0.035:
            break
    w = max(MIN_SIDE, min(aw, units / lines * line_h / ratio))
    h = max(MIN_SIDE, line_h * lines)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    dx = max(0.0, -box[0]) - max(0.0, box[2] - 1.0)
    dy = max(0.0, -box[1]) - max(0.0, box[3] - 1.0)
    return [min(max(v, 0.0), 1.0) for v in (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)]


def _text_boxes(scene: Scene, boxes: dict[tuple[int, int], list[float]], ratio: float) -> list[list[float]]:
    """Texts go inside their owner's box (stacked when several share one), the rest into a free band."""
    by_owner: dict[tuple[int, int], list[int]] = {}
    free: dict[str, list[int]] = {}
    for i, t in enumerate(scene.texts):
        key = (t.owner.group, t.owner.instance or 0) if t.owner is not None else None
        if key in boxes:
            by_owner.setdefault(key, []).append(i)
        else:
            free.setdefault(t.region or "", []).append(i)
    out: list[list[float]] = [[0.05, 0.05, 0.95, 0.15]] * len(scene.texts)
    for key, ids in by_owner.items():
        x0, y0, x1, y1 = boxes[key]
        w, h = x1 - x0, y1 - y0
        for i, cell in zip(ids, _cells([x0 + 0.08 * w, y0 + 0.12 * h, x1 - 0.08 * w, y1 - 0.3 * h], len(ids))):
            out[i] = fit_text(scene.texts[i].content, cell, ratio)
    for region, ids in free.items():
        for i, cell in zip(ids, _cells(_free_band(region, boxes), len(ids))):
            out[i] = fit_text(scene.texts[i].content, cell, ratio)
    return out


def _cells(area: list[float], n: int) -> list[list[float]]:
    """``n`` cells filling ``area``: stacked rows while each stays at least a few percent tall, then columns."""
    x0, y0, x1, y1 = area
    rows = max(1, min(n, int((y1 - y0) / 0.05)))
    cols = math.ceil(n / rows)
    rows = math.ceil(n / cols)
    w, h = (x1 - x0) / cols, (y1 - y0) / rows
    cells = []
    for k in range(n):
        r, c = divmod(k, cols)
        cells.append([x0 + c * w, y0 + r * h, x0 + (c + 1) * w, y0 + (r + 1) * h])
    return cells


def _free_band(region: str, boxes: dict[tuple[int, int], list[float]]) -> list[float]:
    """The band for unowned text: the one its region names, else the top or bottom strip with less in it."""
    bands = {"top": [0.05, 0.03, 0.95, 0.19], "bottom": [0.05, 0.81, 0.95, 0.97], "center": [0.1, 0.42, 0.9, 0.58]}
    for key, band in bands.items():
        if key in region:
            return band

    def covered(band: list[float]) -> float:
        total = 0.0
        for b in boxes.values():
            ix = max(0.0, min(b[2], band[2]) - max(b[0], band[0]))
            iy = max(0.0, min(b[3], band[3]) - max(b[1], band[1]))
            total += ix * iy
        return total

    return min((bands["top"], bands["bottom"]), key=covered)
