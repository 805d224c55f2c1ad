"""LLM planner in the spirit of LLM Blueprint (Gani et al., ICLR 2024): k layouts → one, then descriptions.

Steps for one prompt (``shared/notes/methods.md`` §1):

1. **Layout call**: ``k`` (config ``layouts``) samples at ``temperature > 0`` from one request (``n=k``; vLLM seeds
   sample ``i`` with ``seed + i``), each constrained to the bounded layout schema of :func:`layout_schema`:
   objects (name + normalised ``[x0, y0, x1, y1]`` box), scene texts (content + box), background, style, negative
   prompt. At ``temperature == 0`` one sample is asked for, since the k would be identical.
2. **Interpolation** (:func:`interpolate_layouts`). Objects are matched across layouts by name: lower-cased, a
   trailing instance number dropped, stop-words and non-letters removed, then bag-of-words cosine ≥ 0.5 against
   each cluster's first name (the LLM Blueprint code's ``merge_similar_keys`` rule; exact match for names with no
   words left). Within a cluster the instance count is the most common count among the layouts that have it, and
   instances are matched to the reference layout's by nearest box centre. **Boxes are combined with a true mean by
   default** (the k samples are exchangeable; the code's sequential α = 0.5 gives the *last* sample weight 1/2 and
   the first two 1/4 each, an artefact of loop order). ``interpolation="sequential"`` reproduces the code.
   Objects present in any layout are kept (the code's union). Texts are matched by exact content. Background = the
   shortest non-empty one (as in the code); style and negative prompt = the most common non-empty value.
3. **Fix-up and de-overlap** (:func:`fix_boxes`, :func:`deoverlap`): corners sorted, boxes clamped into the image and
   grown to ``min_box_side``; then the code's greedy shift (``adjust_bounding_boxes_intelligently``) moves a box
   along the axis of smaller overlap, clamped to the image. Two deliberate departures, both parameters: only pairs
   with IoU above ``deoverlap_iou`` (default 0.5) are shifted, so an object *on* another ("a cat on a sofa") keeps
   its nested box (``deoverlap_iou=0.0`` is the code's any-overlap rule); boxes are placed in area-descending order
   so small boxes move and large ones stay.
4. **Descriptions call**: a separate request (schema: list of ``{name, description}``, names limited to the
   merged object names) for one detailed description per object. A missing description leaves it empty.
5. **Checks**: ``parse_blueprint`` + ``semantic_errors``, plus "every quoted string of the prompt is a
   ``texts[].content`` exactly", plus stated counts when an ``expected_counts(prompt)`` helper is given
   (``build_planner`` passes ``planners.rule_based.expected_counts``; matched leniently by :func:`names_noun`,
   since "green apple 2" is one of "three apples" but ``semantic_errors`` compares base names exactly). On failure
   the errors go back to the LLM as a repair turn (the checked layout as the assistant's answer, then the errors),
   bounded by config ``repairs``;
   the same budget covers retries after truncated (``finish_reason == "length"``: retried with twice the tokens)
   or unparseable output. When it runs out: :class:`planners.base.PlanningError`, one line.

Every LLM exchange goes through the ``Recorder``: ``lookup(kind, request)`` first (replay), else the client, then
``record(kind, request, response)``. Requests are plain JSON (model, client kind, messages, schema, sampling
parameters, template versions), so a recorder can key them by canonical JSON. Kinds: ``llm.layout``,
``llm.descriptions``, ``llm.repair``.

Planning is written as a generator per prompt that yields LLM calls; a driver runs the calls of all active
prompts as one batch per round, so :meth:`LLMPlanner.plan_many` batches (one ``LLM.chat`` per round in-process,
concurrent requests against a server) and :meth:`LLMPlanner.plan` is the one-prompt case.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import typing
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

import prompts
from agent.blueprint import (
    MIN_BOX_SIDE,
    Blueprint,
    BlueprintError,
    Canvas,
    format_validation_error,
    iou,
    parse_blueprint,
    semantic_errors,
)
from agent.edits import MAX_OPS, EditError, EditOp, EditPlan, SceneState, apply_edits, parse_edit_plan
from planners.base import NullRecorder, PlanningError, Recorder
from planners.llm_client import Completion, JSONRequest, LLMClient, LLMError, TruncatedError

log = logging.getLogger(__name__)

TEMPLATES = ("layout_system", "layout_user", "describe_system", "describe_user", "repair_user")
KIND_LAYOUT, KIND_DESCRIPTIONS, KIND_REPAIR = "llm.layout", "llm.descriptions", "llm.repair"


# --- the bounded layout schema -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SchemaLimits:
    """Bounds of every leaf the LLM fills. Every string is bounded by its pattern alone (xgrammar ignores
    ``maxLength`` when a ``pattern`` is present and vLLM rejects the combination), numbers by min/max (xgrammar then
    allows at most 6 decimals), arrays by ``maxItems``. ``multiple_of`` adds ``multipleOf`` to the coordinates, for
    engines that support it (llguidance); vLLM's xgrammar backend answers HTTP 400 to it, so it is off by default.
    ``char_class`` is the character set of free text (default: anything but control characters); tests narrow it.
    """

    max_objects: int = 12
    max_texts: int = 4
    name_chars: int = 48
    text_chars: int = 80
    background_chars: int = 200
    style_chars: int = 60
    negative_chars: int = 120
    description_chars: int = 300
    char_class: str = r"[^\x00-\x1f]"
    first_char_class: str = r"[^\x00-\x20]"
    multiple_of: float | None = None

    def __post_init__(self):
        if not (1 <= self.name_chars <= 56):
            raise ValueError("name_chars must be in 1..56 (names get ' N' instance numbers, Blueprint allows 64)")
        if not (1 <= self.text_chars <= 200 and 1 <= self.description_chars <= 400):
            raise ValueError("text_chars must be in 1..200 and description_chars in 1..400 (Blueprint limits)")
        if not (0 <= self.max_objects <= 24 and 0 <= self.max_texts <= 12):
            raise ValueError("max_objects must be in 0..24 and max_texts in 0..12 (Blueprint limits)")

    def text(self, chars: int, *, required: bool) -> type:
        body = self.first_char_class + _repeat(self.char_class, chars - 1)
        # "(|x)" rather than "(x)?": xgrammar 0.2.8 escapes the "?" after a group inside JSON-schema patterns
        pattern = f"^{body}$" if required else f"^(|{body})$"
        return Annotated[str, Field(pattern=pattern)]


def _repeat(char_class: str, n: int) -> str:
    """``char_class{0,n}`` as chunks of at most 128: xgrammar 0.2.8 fails to compile a repetition bound above 128
    (``grammar_functor.cc: Check failed: per_rule_fsm_hashes``; vLLM answers HTTP 500)."""
    chunks = []
    while n > 0:
        chunks.append(f"{char_class}{{0,{min(n, 128)}}}")
        n -= min(n, 128)
    return "".join(chunks)


_Coord = Annotated[float, Field(ge=0.0, le=1.0)]
_Box = Annotated[list[_Coord], Field(min_length=4, max_length=4)]


class _Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")


@cache
def _models(limits: SchemaLimits) -> type[BaseModel]:
    Obj = create_model(  # needs_reference: RealRAG's flag (a real reference image should guide this object)
        "LayoutObject", __base__=_Forbid, name=(limits.text(limits.name_chars, required=True), ...), box=(_Box, ...),
        needs_reference=(bool, False),
    )
    Txt = create_model(
        "LayoutText", __base__=_Forbid, content=(limits.text(limits.text_chars, required=True), ...), box=(_Box, ...)
    )
    return create_model(
        "Layout",
        __base__=_Forbid,
        objects=(Annotated[list[Obj], Field(max_length=limits.max_objects)], ...),
        texts=(Annotated[list[Txt], Field(max_length=limits.max_texts)], ...),
        background=(limits.text(limits.background_chars, required=False), ...),
        style=(limits.text(limits.style_chars, required=False), ...),
        negative_prompt=(limits.text(limits.negative_chars, required=False), ...),
    )  # fmt: skip


def _strip_titles(node):
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if k != "title" or not isinstance(v, str)}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def layout_schema(limits: SchemaLimits) -> dict:
    """The JSON schema of one layout (what the layout and repair calls are constrained to)."""
    schema = _strip_titles(_models(limits).model_json_schema())
    if limits.multiple_of:
        for d in schema.get("$defs", {}).values():
            if "box" in d.get("properties", {}):
                d["properties"]["box"]["items"]["multipleOf"] = limits.multiple_of
    return schema


def descriptions_schema(names: Sequence[str], limits: SchemaLimits) -> dict:
    desc = limits.text(limits.description_chars, required=False)
    item = create_model("Description", __base__=_Forbid, name=(str, ...), description=(desc, ...))
    n = len(names)
    model = create_model(
        "Descriptions", __base__=_Forbid, descriptions=(Annotated[list[item], Field(min_length=n, max_length=n)], ...)
    )
    schema = _strip_titles(model.model_json_schema())
    schema["$defs"]["Description"]["properties"]["name"] = {"type": "string", "enum": list(names)}
    return schema


# --- layouts and their interpolation -----------------------------------------------------------------------------
Box = tuple[float, float, float, float]


@dataclass
class Layout:
    objects: list[tuple[str, Box]] = field(default_factory=list)
    texts: list[tuple[str, Box]] = field(default_factory=list)
    background: str = ""
    style: str = ""
    negative_prompt: str = ""
    references: list[str] = field(default_factory=list)  # names of the objects marked needs_reference

    def to_json(self) -> str:
        """Compact JSON in the layout schema's shape (used as the assistant turn of a repair)."""
        return json.dumps(
            {
                "objects": [{"name": n, "box": [round(v, 3) for v in b], **({"needs_reference": True}
                             if n in self.references else {})} for n, b in self.objects],
                "texts": [{"content": c, "box": [round(v, 3) for v in b]} for c, b in self.texts],
                "background": self.background,
                "style": self.style,
                "negative_prompt": self.negative_prompt,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )


def parse_layout(text: str, limits: SchemaLimits) -> Layout:
    """Strict JSON + the layout schema; raises ValueError with a short reason."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"the answer is not valid JSON ({err.msg} at char {err.pos})") from None
    try:
        m = _models(limits).model_validate(data)
    except ValidationError as err:
        raise ValueError(
            "the answer does not match the layout schema: " + "; ".join(format_validation_error(err))
        ) from None
    return Layout(
        objects=[(o.name.strip(), tuple(o.box)) for o in m.objects],
        texts=[(t.content, tuple(t.box)) for t in m.texts],
        background=m.background.strip(),
        style=m.style.strip(),
        negative_prompt=m.negative_prompt.strip(),
        references=[o.name.strip() for o in m.objects if o.needs_reference],
    )


STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "and",
        "or",
        "with",
        "on",
        "in",
        "at",
        "to",
        "for",
        "from",
        "by",
        "into",
        "onto",
        "over",
        "under",
        "some",
        "any",
        "this",
        "that",
        "these",
        "those",
        "its",
        "their",
        "his",
        "her",
        "is",
        "are",
        "be",
        "very",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
    ]
)


def name_tokens(name: str) -> list[str]:
    """Lower-case alphabetic words of a name without stop-words and without a trailing instance number."""
    return [w for w in re.findall(r"[a-z]+", _strip_number(name).lower()) if w not in STOP_WORDS]


def _strip_number(name: str) -> str:
    head, _, tail = name.strip().rpartition(" ")
    return head if head and tail.isdigit() else name.strip()


def name_similarity(a: str, b: str) -> float:
    """Bag-of-words cosine of two names (1.0 for identical names with no words left, else 0.0 then)."""
    ta, tb = Counter(name_tokens(a)), Counter(name_tokens(b))
    if not ta or not tb:
        return 1.0 if _strip_number(a).lower() == _strip_number(b).lower() else 0.0
    dot = sum(ta[w] * tb[w] for w in ta)
    return dot / math.sqrt(sum(v * v for v in ta.values()) * sum(v * v for v in tb.values()))


def same_object(a: str, b: str, threshold: float = 0.5) -> bool:
    return name_similarity(a, b) >= threshold


def combine_boxes(boxes: Sequence[Box], mode: Literal["mean", "sequential"] = "mean") -> Box:
    """``mean``: coordinate-wise mean. ``sequential``: ``b = b1; b = b + 0.5 (bi - b)`` for the rest (LLM Blueprint)."""
    if mode == "mean":
        return tuple(sum(b[i] for b in boxes) / len(boxes) for i in range(4))  # type: ignore[return-value]
    out = list(boxes[0])
    for b in boxes[1:]:
        out = [o + 0.5 * (v - o) for o, v in zip(out, b)]
    return tuple(out)  # type: ignore[return-value]


def _centre(b: Box) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def _kind_key(name: str) -> str:
    return " ".join(_strip_number(name).lower().split())


def _merge_items(
    layouts: Sequence[list[tuple[str, Box]]],
    match: Callable[[str, str], float],
    threshold: float,
    mode: str,
    renumber: bool,
    kind_key: Callable[[str], str] = _kind_key,
) -> list[tuple[str, Box]]:
    """Cluster items across layouts and combine matched boxes.

    Inside one layout, items with the same name up to a trailing number ("apple 1", "apple 2") are instances of one
    kind, and different names are different objects ("red car" and "blue car" stay apart). Across layouts a kind
    joins the existing cluster it matches best (``match(rep, name) >= threshold``, ties: the earliest cluster) among
    clusters that have no kind from its layout yet; otherwise it starts a new cluster.
    """
    clusters: list[tuple[str, list[list[tuple[str, Box]]]]] = []  # (representative name, instances per layout)
    for li, items in enumerate(layouts):
        kinds: dict[str, list[tuple[str, Box]]] = {}
        for name, box in items:
            kinds.setdefault(kind_key(name), []).append((name, box))
        for inst in kinds.values():
            name = inst[0][0]
            best, best_sim = None, threshold
            for rep, per in clusters:
                if per[li]:
                    continue
                sim = match(rep, name)
                if sim >= best_sim and (best is None or sim > best_sim):
                    best, best_sim = per, sim
            if best is None:
                best = [[] for _ in layouts]
                clusters.append((name, best))
            best[li].extend(inst)
    out: list[tuple[str, Box]] = []
    for _rep, per in clusters:
        counts = [len(p) for p in per if p]
        tally = Counter(counts)
        top = max(tally.values())
        n = next(c for c in counts if tally[c] == top)  # most common instance count; ties: the earliest layout's
        ref_li = next(i for i, p in enumerate(per) if len(p) == n)
        groups: list[list[tuple[int, Box]]] = [[(ref_li, box)] for _, box in per[ref_li]]
        for li, p in enumerate(per):
            if li == ref_li or not p:
                continue
            pairs = sorted(
                (math.dist(_centre(groups[i][0][1]), _centre(box)), i, j)
                for i in range(n)
                for j, (_, box) in enumerate(p)
            )
            used_i: set[int] = set()
            used_j: set[int] = set()
            for _, i, j in pairs:
                if i not in used_i and j not in used_j:
                    used_i.add(i)
                    used_j.add(j)
                    groups[i].append((li, p[j][1]))
        for k, (g, (nm, _)) in enumerate(zip(groups, per[ref_li])):
            box = combine_boxes([b for _, b in sorted(g, key=lambda t: t[0])], mode)  # type: ignore[arg-type]
            if renumber:
                base = _strip_number(per[ref_li][0][0] if n > 1 else nm)
                nm = f"{base} {k + 1}" if n > 1 else base
            out.append((nm, box))
    return out


def _shortest(values: Sequence[str]) -> str:
    vals = [v for v in values if v]
    return min(vals, key=len) if vals else ""


def _most_common(values: Sequence[str]) -> str:
    vals = [v for v in values if v]
    if not vals:
        return ""
    tally = Counter(vals)
    best = max(tally.values())
    return next(v for v in vals if tally[v] == best)


def interpolate_layouts(
    layouts: Sequence[Layout], *, mode: Literal["mean", "sequential"] = "mean", threshold: float = 0.5
) -> Layout:
    """Merge k layouts into one (see the module docstring for the rules)."""
    if not layouts:
        raise ValueError("no layouts to interpolate")
    objects = _merge_items([lay.objects for lay in layouts], name_similarity, threshold, mode, renumber=True)
    texts = _merge_items(
        [lay.texts for lay in layouts], lambda a, b: float(a == b), 1.0, mode, renumber=False, kind_key=lambda c: c
    )
    return Layout(
        objects=_unique_names(objects),
        texts=texts,
        background=_shortest([lay.background for lay in layouts]),
        style=_most_common([lay.style for lay in layouts]),
        negative_prompt=_most_common([lay.negative_prompt for lay in layouts]),
    )


def _unique_names(items: list[tuple[str, Box]]) -> list[tuple[str, Box]]:
    seen: set[str] = set()
    out = []
    for name, box in items:
        base, k = name, 2
        while name in seen:
            name = f"{base} #{k}"
            k += 1
        seen.add(name)
        out.append((name, box))
    return out


def _sorted_box(b: Sequence[float]) -> Box:
    return (min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3]))


def fix_box(box: Sequence[float], min_side: float = 0.05) -> Box:
    """Sort corners, clamp into [0, 1], grow each side to ``min_side`` around its centre (kept inside the image)."""
    x0, x1 = sorted((min(max(box[0], 0.0), 1.0), min(max(box[2], 0.0), 1.0)))
    y0, y1 = sorted((min(max(box[1], 0.0), 1.0), min(max(box[3], 0.0), 1.0)))

    def grow(a: float, b: float) -> tuple[float, float]:
        if b - a >= min_side:
            return a, b
        c = min(max((a + b) / 2, min_side / 2), 1 - min_side / 2)
        return c - min_side / 2, c + min_side / 2

    x0, x1 = grow(x0, x1)
    y0, y1 = grow(y0, y1)
    return (round(x0, 4), round(y0, 4), round(x1, 4), round(y1, 4))


def deoverlap(boxes: Sequence[Box], iou_threshold: float = 0.5) -> list[Box]:
    """Greedy shift of LLM Blueprint's ``adjust_bounding_boxes_intelligently`` in normalised coordinates.

    Boxes are placed largest first; a box whose IoU with an already placed one exceeds ``iou_threshold`` moves
    along the axis of smaller overlap, away from the other box, by the overlap, clamped to the image. One pass,
    as in the code: a move may create a new overlap with a box placed earlier. Returns boxes in input order.
    """
    order = sorted(range(len(boxes)), key=lambda i: -(boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]))
    placed: dict[int, Box] = {}
    for i in order:
        x0, y0, x1, y1 = boxes[i]
        w, h = x1 - x0, y1 - y0
        for o in placed.values():
            cur = (x0, y0, x0 + w, y0 + h)
            if iou(list(cur), list(o)) <= iou_threshold:
                continue
            ox = min(x0 + w, o[2]) - max(x0, o[0])
            oy = min(y0 + h, o[3]) - max(y0, o[1])
            if ox < oy:
                x0 = max(0.0, x0 - ox) if _centre(cur)[0] < _centre(o)[0] else min(1.0 - w, x0 + ox)
            else:
                y0 = max(0.0, y0 - oy) if _centre(cur)[1] < _centre(o)[1] else min(1.0 - h, y0 + oy)
        placed[i] = (round(x0, 4), round(y0, 4), round(x0 + w, 4), round(y0 + h, 4))
    return [placed[i] for i in range(len(boxes))]


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def names_noun(name: str, noun: str) -> bool:
    """Whether object ``name`` is an instance of ``noun``: "green apple 2" and "apples" are apples, "apple tree" is
    not. Lenient on purpose: an LLM qualifies its names, ``semantic_errors`` compares base names exactly."""
    words = re.findall(r"[a-z]+", _strip_number(name).lower())
    target = re.findall(r"[a-z]+", noun.lower())
    if not words or not target or len(target) > len(words):
        return False
    tail = words[-len(target) :]
    return tail == target or [_singular(w) for w in tail] == [_singular(w) for w in target]


def count_errors(bp: Blueprint, counts: dict[str, int]) -> list[str]:
    """One message per noun whose stated count (e.g. from ``planners.rule_based.expected_counts``) is not met."""
    errors = []
    for noun, want in counts.items():
        got = sum(1 for o in bp.objects if names_noun(o.name, noun))
        if got != want:
            errors.append(
                f"the request asks for {want} '{noun}' but the layout has {got}; give each one its own box,"
                f" named '{noun} 1' to '{noun} {want}'"
            )
    return errors


QUOTED = re.compile(r'"([^"\n]+)"|“([^”\n]+)”')


def quoted_strings(prompt: str) -> list[str]:
    """Text the user put in double quotes (straight or curly): it must appear in the picture exactly."""
    out = []
    for m in QUOTED.finditer(prompt):
        s = m.group(1) or m.group(2)
        if s.strip() and s not in out:
            out.append(s)
    return out


# --- the planner -------------------------------------------------------------------------------------------------
@dataclass
class _Call:
    kind: str
    request: JSONRequest


class LLMPlanner:
    """Plans with an :class:`~planners.llm_client.LLMClient` (see the module docstring)."""

    name = "llm"

    def __init__(
        self,
        client: LLMClient,
        *,
        recorder: Recorder | None = None,
        kind: str | None = None,
        layouts: int = 3,
        repairs: int = 2,
        temperature: float = 0.7,
        max_tokens: int = 2048,
        max_tokens_cap: int | None = None,
        limits: SchemaLimits | None = None,
        interpolation: Literal["mean", "sequential"] = "mean",
        merge_threshold: float = 0.5,
        min_box_side: float = 0.05,
        deoverlap_iou: float | None = 0.5,
        expected_counts: Callable[[str], dict[str, int] | None] | None = None,
        expected_objects: Callable[[str], list[str] | None] | None = None,
    ):
        if not (1 <= layouts <= 8 and 0 <= repairs <= 14):
            raise ValueError("layouts must be in 1..8 and repairs in 0..14")
        self.client = client
        self.recorder = recorder or NullRecorder()
        self.kind = kind or getattr(client, "kind", "llm")
        self.layouts = layouts
        self.repairs = repairs
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_tokens_cap = max_tokens_cap or max(max_tokens, 4 * max_tokens)
        self.limits = limits or SchemaLimits()
        self.interpolation = interpolation
        self.merge_threshold = merge_threshold
        self.min_box_side = max(min_box_side, MIN_BOX_SIDE)
        self.deoverlap_iou = deoverlap_iou
        self.expected_counts = expected_counts
        self.expected_objects = expected_objects
        self.templates = {t: prompts.version(t) for t in TEMPLATES}
        self.stats: list[dict] = []  # one entry per executed batch: kind(s), size, seconds, replayed

    # identity -------------------------------------------------------------------------------------------------
    def identity(self) -> dict:
        client = self.client.identity()
        return {
            "planner": self.name,
            "kind": self.kind,
            "model": client.get("model", ""),
            "client": client,
            "templates": dict(self.templates),
            "layouts": self.layouts,
            "repairs": self.repairs,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "interpolation": self.interpolation,
            "deoverlap_iou": self.deoverlap_iou,
            "limits": asdict(self.limits),
        }

    # public API -----------------------------------------------------------------------------------------------
    def plan(
        self, prompt: str, *, seed: int = 0, canvas: Canvas | None = None, recorder: Recorder | None = None
    ) -> Blueprint:
        result = self.plan_many([prompt], seeds=[seed], canvas=canvas, recorder=recorder)[0]
        if isinstance(result, PlanningError):
            raise result
        return result

    def plan_many(
        self, prompts_: Sequence[str], *, seeds: Sequence[int] | None = None, canvas: Canvas | None = None,
        recorder: Recorder | None = None,
    ) -> list[Blueprint | PlanningError]:
        """Plan many prompts, batching each round's LLM calls; a failed prompt's entry is its PlanningError.
        ``recorder``: where this call's exchanges go (a run's); default the one given at construction."""
        seeds = list(seeds) if seeds is not None else [0] * len(prompts_)
        if len(seeds) != len(prompts_):
            raise ValueError("plan_many needs one seed per prompt")
        gens = [self._steps(p, s, canvas or Canvas()) for p, s in zip(prompts_, seeds)]
        return self._drive(gens, recorder)

    # chat edits -----------------------------------------------------------------------------------------------
    edit_max_ops: int = MAX_OPS  # ops per answer in the edit schema (tests narrow it for a random model)

    def edit(self, blueprint: Blueprint, message: str, *, look: Sequence[str] = (),
             recorder: Recorder | None = None) -> EditPlan:
        """One chat message → an :class:`~agent.edits.EditPlan` that applies cleanly to ``blueprint`` (+ ``look``).

        "undo"-style messages are answered without the LLM (as the rule parser reads them). Otherwise one
        structured-output call against :func:`edit_schema` (kind ``llm.edit``); the answer is validated with the
        EditPlan models and by applying it (:func:`agent.edits.apply_edits`, which runs the Blueprint's checks), and a
        problem goes back as a repair turn, bounded by ``repairs`` (the same budget covers truncated answers, retried
        with twice the tokens). When the budget runs out: :class:`PlanningError`, one line. Sessions turn that into a
        rejected turn whose error is that line (no silent fallback to the rule parser: the user sees the LLM failed).
        """
        text = " ".join(str(message or "").split())
        if not text:
            raise PlanningError("the message is empty; say what to change, e.g. 'make the cat bigger'")
        from planners.edit_rules import _UNDO, _norm

        if _UNDO.match(_norm(text)):
            return EditPlan(action="undo")
        result = self._drive([self._edit_steps(blueprint, text, list(look))], recorder)[0]
        if isinstance(result, PlanningError):
            raise result
        return result

    def _edit_messages(self, blueprint: Blueprint, message: str, look: list[str]) -> list[dict]:
        system, _ = prompts.render("edit_system", max_ops=self.edit_max_ops)
        user, _ = prompts.render("edit_user", scene=edit_scene_summary(blueprint, look), message=message)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _edit_steps(self, blueprint: Blueprint, message: str, look: list[str]) -> Generator[_Call, list, EditPlan]:
        state = SceneState(blueprint=blueprint, look=look)
        schema = edit_schema(blueprint, self.limits, max_ops=self.edit_max_ops)
        base = self._edit_messages(blueprint, message, look)
        messages, budget, attempt, max_tokens = base, self.repairs, 0, self.max_tokens
        short = _one_line_prompt(message)
        while True:
            comps = yield _Call(KIND_EDIT, JSONRequest(messages, schema, 1, 0.0, max_tokens, attempt * 16, "edit"))
            c = comps[0] if comps else None
            truncated = c is not None and c.finish_reason == "length"
            if c is None:
                problem = "the LLM returned no answer"
            elif truncated:
                problem = f"the answer was cut off at max_tokens={max_tokens}"
            else:
                try:
                    plan = parse_edit_plan(c.text)
                    if plan.action == "undo":
                        return EditPlan(action="undo")
                    apply_edits(state, list(plan.ops))  # names, texts, boxes, the Blueprint's own checks
                    return plan
                except EditError as err:
                    problem = str(err)
            problem = " ".join(problem.split())[:300]
            if budget <= 0:
                raise PlanningError(
                    f"{self._who()} could not turn the message {short} into a valid edit after {self.repairs}"
                    f" repairs: {problem}"
                )
            budget -= 1
            attempt += 1
            if truncated:
                if max_tokens >= self.max_tokens_cap:
                    raise PlanningError(
                        f"{self._who()} edit answer was cut off at max_tokens={max_tokens} for {short};"
                        " raise planner.max_tokens"
                    )
                max_tokens = min(2 * max_tokens, self.max_tokens_cap)
                messages = base
            else:
                messages = base + [
                    {"role": "assistant", "content": c.text if c is not None else ""},
                    {"role": "user", "content": prompts.render("edit_repair", errors="- " + problem)[0]},
                ]

    # driver ---------------------------------------------------------------------------------------------------
    def _drive(self, gens: list[Generator], recorder: Recorder | None = None) -> list:
        results: list = [None] * len(gens)
        pending: dict[int, _Call] = {}

        def advance(i: int, value=None, exc: BaseException | None = None) -> None:
            try:
                call = gens[i].throw(exc) if exc is not None else gens[i].send(value)
            except StopIteration as stop:
                results[i] = stop.value
            except PlanningError as err:
                results[i] = err
            else:
                pending[i] = call

        for i in range(len(gens)):
            advance(i)
        while pending:
            idxs = sorted(pending)
            calls = [pending.pop(i) for i in idxs]
            for i, out in zip(idxs, self._execute(calls, recorder or self.recorder)):
                if isinstance(out, LLMError):
                    advance(i, exc=out)
                else:
                    advance(i, value=out)
        return results

    def _request_dict(self, call: _Call) -> dict:
        r = call.request
        return json.loads(
            json.dumps(
                {
                    "client": self.kind,
                    "model": self.client.model,
                    "messages": r.messages,
                    "schema": r.schema,
                    "n": r.n,
                    "temperature": r.temperature,
                    "max_tokens": r.max_tokens,
                    "seed": r.seed,
                    "templates": self.templates,
                    "sent": self.client.wire(r) if hasattr(self.client, "wire") else None,
                },
                sort_keys=True,
                ensure_ascii=False,
            )
        )

    def _execute(self, calls: list[_Call], recorder: Recorder) -> list[list[Completion] | LLMError]:
        """Replay what the recorder knows, send the rest as one batch, record every model answer."""
        out: list[list[Completion] | LLMError | None] = [None] * len(calls)
        todo: list[int] = []
        requests: list[dict] = []
        for i, call in enumerate(calls):
            try:
                req = self._request_dict(call)
            except LLMError as err:  # e.g. the model name could not be resolved from the server
                out[i] = err
                requests.append({})
                continue
            requests.append(req)
            recorded = recorder.lookup(call.kind, req)
            if recorded is not None:
                out[i] = [Completion.from_dict(c) for c in recorded.get("completions", [])]
            else:
                todo.append(i)
        if todo:
            t0 = time.monotonic()
            answers = self.client.complete_json_batch([calls[i].request for i in todo])
            dt = time.monotonic() - t0
            self.stats.append({"kinds": [calls[i].kind for i in todo], "batch": len(todo), "seconds": round(dt, 3)})
            for i, ans in zip(todo, answers):
                if isinstance(ans, TruncatedError):
                    ans = ans.completions  # recorded and handled like any answer: the planner retries
                if isinstance(ans, LLMError):
                    out[i] = ans
                    continue
                response = {
                    "completions": [c.to_dict() for c in ans],
                    "seconds": round(dt, 3),
                    "batch": len(todo),
                }
                recorder.record(calls[i].kind, requests[i], response)
                out[i] = ans
        return out  # type: ignore[return-value]

    # messages -------------------------------------------------------------------------------------------------
    def _layout_messages(self, prompt: str, canvas: Canvas) -> list[dict]:
        system, _ = prompts.render(
            "layout_system", max_objects=self.limits.max_objects, max_texts=self.limits.max_texts
        )
        user, _ = prompts.render("layout_user", prompt=prompt, width=canvas.width, height=canvas.height)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _describe_messages(self, prompt: str, names: list[str]) -> list[dict]:
        system, _ = prompts.render("describe_system", max_chars=self.limits.description_chars)
        user, _ = prompts.render("describe_user", prompt=prompt, objects=json.dumps(names, ensure_ascii=False))
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _request(self, messages, schema, *, n, max_tokens, seed, name) -> JSONRequest:
        return JSONRequest(messages, schema, n, self.temperature, max_tokens, seed, name)

    # one prompt -----------------------------------------------------------------------------------------------
    def _steps(self, prompt: str, seed: int, canvas: Canvas) -> Generator[_Call, list[Completion], Blueprint]:
        lim = self.limits
        schema = layout_schema(lim)
        base = self._layout_messages(prompt, canvas)
        budget = self.repairs
        max_tokens = self.max_tokens
        k = self.layouts if self.temperature > 0 else 1
        short = _one_line_prompt(prompt)

        # 1. k layouts (retrying cut-off or unparseable answers within the budget)
        messages, kind, n, attempt = base, KIND_LAYOUT, k, 0
        while True:
            comps = yield _Call(
                kind,
                self._request(
                    messages, schema, n=n, max_tokens=max_tokens, seed=_sample_seed(seed, attempt), name="layout"
                ),
            )
            layouts, problems, truncated = self._usable_layouts(comps)
            if layouts:
                break
            if budget <= 0:
                raise PlanningError(f"{self._who()} gave no usable layout for {short}: {problems[0]}")
            budget -= 1
            attempt += 1
            if truncated:
                if max_tokens >= self.max_tokens_cap:
                    raise PlanningError(
                        f"{self._who()} layout was cut off at max_tokens={max_tokens} for {short};"
                        " raise planner.max_tokens or lower the schema limits"
                    )
                max_tokens = min(2 * max_tokens, self.max_tokens_cap)
                messages, kind, n = base, KIND_LAYOUT, k
            else:
                bad = next(c.text for c in comps if c.finish_reason != "length")
                messages = base + [
                    {"role": "assistant", "content": bad},
                    {"role": "user", "content": prompts.render("repair_user", errors="- " + problems[0])[0]},
                ]
                kind, n = KIND_REPAIR, 1
        layout = self._fix(interpolate_layouts(layouts, mode=self.interpolation, threshold=self.merge_threshold))
        marked = {n for lay in layouts for n in lay.references}  # any layout's mark survives the merge of names
        layout.references = [n for n, _ in layout.objects
                             if any(n == m or name_similarity(n, m) >= self.merge_threshold for m in marked)]

        descriptions: dict[str, str] = {}
        desc_tokens = self.max_tokens
        while True:
            # 2. descriptions for the names we do not have yet
            names = [nm for nm, _ in layout.objects]
            missing = [nm for nm in names if nm not in descriptions]
            if missing:
                got, desc_tokens, budget = yield from self._describe(prompt, missing, seed, desc_tokens, budget)
                descriptions.update(got)
            # 3. checks
            bp, errors = self._build(prompt, seed, canvas, layout, descriptions)
            if not errors:
                return bp
            if budget <= 0:
                more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
                raise PlanningError(
                    f"{self._who()} could not produce a valid blueprint for {short} after {self.repairs} repairs:"
                    f" {errors[0]}{more}"
                )
            budget -= 1
            attempt += 1
            # 4. repair turn: the checked layout as the model's answer, then the errors
            messages = base + [
                {"role": "assistant", "content": layout.to_json()},
                {
                    "role": "user",
                    "content": prompts.render("repair_user", errors="\n".join(f"- {e}" for e in errors[:8]))[0],
                },
            ]
            comps = yield _Call(
                KIND_REPAIR,
                self._request(
                    messages, schema, n=1, max_tokens=max_tokens, seed=_sample_seed(seed, attempt), name="layout"
                ),
            )
            fixed, problems, truncated = self._usable_layouts(comps)
            if fixed:
                layout = self._fix(
                    interpolate_layouts(fixed[:1], mode=self.interpolation, threshold=self.merge_threshold)
                )
                layout.references = [n for n, _ in layout.objects if n in fixed[0].references]
            elif truncated and max_tokens < self.max_tokens_cap:
                max_tokens = min(2 * max_tokens, self.max_tokens_cap)
            # an unusable repair answer keeps the previous layout; the loop reports its errors when the budget ends

    def _describe(self, prompt, names, seed, max_tokens, budget):
        """Descriptions call (retried with more tokens within the budget); returns (descriptions, tokens, budget)."""
        schema = descriptions_schema(names, self.limits)
        messages = self._describe_messages(prompt, names)
        while True:
            comps = yield _Call(
                KIND_DESCRIPTIONS,
                self._request(
                    messages, schema, n=1, max_tokens=max_tokens, seed=_sample_seed(seed, 0) + 8, name="descriptions"
                ),
            )
            c = comps[0] if comps else Completion("", "")
            if c.finish_reason == "length" and budget > 0 and max_tokens < self.max_tokens_cap:
                budget -= 1
                max_tokens = min(2 * max_tokens, self.max_tokens_cap)
                continue
            got = _parse_descriptions(c.text, names) if c.finish_reason != "length" else None
            if got is None:
                log.warning(
                    "%s: no usable object descriptions (%s); objects keep empty descriptions",
                    self._who(),
                    c.finish_reason,
                )
                got = {}
            return got, max_tokens, budget

    def _usable_layouts(self, comps: list[Completion]) -> tuple[list[Layout], list[str], bool]:
        layouts, problems = [], []
        truncated = bool(comps) and all(c.finish_reason == "length" for c in comps)
        for c in comps:
            if c.finish_reason == "length":
                problems.append(f"the answer was cut off at the token limit: {c.text[-60:]!r}")
                continue
            try:
                lay = parse_layout(c.text, self.limits)
            except ValueError as err:
                problems.append(str(err))
                continue
            # corners sorted before interpolation: averaging an inverted box with upright ones would be meaningless
            layouts.append(
                replace(
                    lay,
                    objects=[(n, _sorted_box(b)) for n, b in lay.objects],
                    texts=[(t, _sorted_box(b)) for t, b in lay.texts],
                )
            )
        if not comps:
            problems.append("the LLM returned no answer")
        return layouts, problems, truncated

    def _fix(self, layout: Layout) -> Layout:
        objs = [(n, fix_box(b, self.min_box_side)) for n, b in layout.objects]
        if self.deoverlap_iou is not None and len(objs) > 1:
            boxes = deoverlap([b for _, b in objs], self.deoverlap_iou)
            objs = [(n, b) for (n, _), b in zip(objs, boxes)]
        texts = [(c, fix_box(b, self.min_box_side)) for c, b in layout.texts]
        return replace(layout, objects=objs, texts=texts)

    def _build(
        self, prompt, seed, canvas, layout: Layout, descriptions: dict[str, str]
    ) -> tuple[Blueprint | None, list[str]]:
        data = {
            "prompt": prompt,
            "canvas": canvas.model_dump(),
            "style": layout.style,
            "background": layout.background,
            "negative_prompt": layout.negative_prompt,
            "objects": [{"name": n, "description": descriptions.get(n, ""), "box": list(b),
                         "needs_reference": n in layout.references} for n, b in layout.objects],
            "texts": [{"content": c, "box": list(b)} for c, b in layout.texts],
            "seed": seed,
        }
        try:
            bp = parse_blueprint(data, check=False)
        except BlueprintError as err:
            return None, list(err.errors)
        counts = None
        if self.expected_counts is not None:
            try:
                counts = self.expected_counts(prompt) or None
            except Exception as err:  # noqa: BLE001  a helper's bug must not break planning
                log.warning("expected_counts failed: %s", err)
        errors = semantic_errors(bp) + count_errors(bp, counts or {}) + self._missing_objects(prompt, bp)
        contents = {t.content for t in bp.texts}
        for q in quoted_strings(prompt):
            if q not in contents:
                errors.append(
                    f'the caption quotes "{q}" but no texts[] entry has exactly that content;'
                    f' add {{"content": "{q}", "box": [x0, y0, x1, y1]}} where it should appear'
                )
        return bp, errors

    def _missing_objects(self, prompt: str, bp: Blueprint) -> list[str]:
        """A layout with fewer objects than the prompt names (a random or confused model answering with an empty
        list) goes back for repair instead of being painted as background only."""
        if self.expected_objects is None:
            return []
        try:
            named = self.expected_objects(prompt) or []
        except Exception as err:  # noqa: BLE001  a helper's bug must not break planning
            log.warning("expected_objects failed: %s", err)
            return []
        if len(bp.objects) >= len(named):
            return []
        kinds = ", ".join(dict.fromkeys(named))
        return [f"the request names {len(named)} objects ({kinds}) but the layout has {len(bp.objects)};"
                " give each object the request names its own entry in objects with a box"]

    def _who(self) -> str:
        return f"the {self.kind} planner ({self.client.identity().get('model') or 'model'})"


def _sample_seed(seed: int, attempt: int) -> int:
    """Request seed for layout ``attempt`` of a plan with ``seed``. vLLM seeds sample i of an n-sample request with
    request seed + i, so attempts are spaced 16 apart (n <= 8; the descriptions call uses + 8) and plans 256 apart
    (at most 16 attempts): no two samples of different plans or attempts share a seed."""
    return seed * 256 + attempt * 16


def _one_line_prompt(prompt: str, limit: int = 48) -> str:
    p = " ".join(prompt.split())
    return repr(p if len(p) <= limit else p[: limit - 1] + "…")


def _parse_descriptions(text: str, names: Sequence[str]) -> dict[str, str] | None:
    try:
        data = json.loads(text)
        items = data["descriptions"]
    except (ValueError, KeyError, TypeError):
        return None
    out: dict[str, str] = {}
    if not isinstance(items, list):
        return None
    for it in items:
        if isinstance(it, dict) and it.get("name") in names and isinstance(it.get("description"), str):
            desc = " ".join(it["description"].split())[:400]
            out.setdefault(it["name"], desc)
    return out


# --- chat edits: the bounded edit schema and the scene summary -----------------------------------------------------
KIND_EDIT = "llm.edit"
EDIT_TEMPLATES = ("edit_system", "edit_user", "edit_repair")
_EDIT_TARGETS_OBJECT = ("remove_object", "move_object", "set_box", "resize_object", "describe_object")


def _edit_op_models() -> tuple[type[BaseModel], ...]:
    """The EditOp union's member models, in their declared order."""
    return typing.get_args(typing.get_args(EditOp)[0])


def edit_schema(blueprint: Blueprint, limits: SchemaLimits | None = None, *, max_ops: int = MAX_OPS) -> dict:
    """The bounded JSON schema of one :class:`~agent.edits.EditPlan` against ``blueprint``.

    Derived from the EditOp models: one ``anyOf`` branch per op, every field required (the model defaults are
    spelled out by the LLM), numbers bounded by the models' own ``ge``/``le``, free text by ``limits`` patterns
    (``_repeat`` chunks of at most 128, ``(|x)`` for optional text), boxes as 4 numbers in [0, 1]. Ops that target an
    existing object take its ``name`` from an ``enum`` of the blueprint's object names (and are left out when there
    are none); ``old`` (which text) is an ``enum`` of the current texts' contents plus "" (the first one).
    No ``multipleOf``, no ``minLength``/``maxLength`` next to a pattern, no discriminator: what xgrammar 0.2.8 takes.
    """
    lim = limits or SchemaLimits()
    names = list(dict.fromkeys(o.name for o in blueprint.objects))
    texts = list(dict.fromkeys([""] + [t.content for t in blueprint.texts]))
    chars = {
        "name": lim.name_chars,
        "description": lim.description_chars,
        "content": lim.text_chars,
        "style": lim.style_chars,
        "background": lim.background_chars,
        "adjustment": min(80, lim.text_chars),
    }
    box = {
        "type": "array",
        "items": {"type": "number", "minimum": 0.0, "maximum": 1.0},
        "minItems": 4,
        "maxItems": 4,
    }
    branches = []
    for model in _edit_op_models():
        op = model.model_fields["op"].default
        if op in _EDIT_TARGETS_OBJECT and not names:
            continue
        src = model.model_json_schema()
        required = set(src.get("required", []))
        props: dict[str, dict] = {}
        for fname, spec in src["properties"].items():
            if fname == "op":
                props[fname] = {"type": "string", "enum": [op]}
            elif fname == "name" and op in _EDIT_TARGETS_OBJECT:
                props[fname] = {"type": "string", "enum": names}
            elif fname == "old":
                props[fname] = {"type": "string", "enum": texts}
            elif fname == "box":
                props[fname] = box
            elif spec.get("type") in ("number", "integer"):
                if "minimum" not in spec or "maximum" not in spec:
                    raise ValueError(f"edit fname {op}.{fname} has no numeric bounds")
                props[fname] = {"type": spec["type"], "minimum": spec["minimum"], "maximum": spec["maximum"]}
            elif spec.get("type") == "string" and fname in chars:
                body = lim.first_char_class + _repeat(lim.char_class, chars[fname] - 1)
                pattern = f"^{body}$" if fname in required else f"^(|{body})$"
                props[fname] = {"type": "string", "pattern": pattern}
            else:
                raise ValueError(f"edit fname {op}.{fname} has no bound in edit_schema; add one")
        branches.append({"type": "object", "properties": props, "required": list(props), "additionalProperties": False})
    return {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["edit", "undo"]},
            "ops": {"type": "array", "items": {"anyOf": branches}, "maxItems": max(1, min(max_ops, MAX_OPS))},
        },
        "required": ["action", "ops"],
        "additionalProperties": False,
    }


def edit_scene_summary(blueprint: Blueprint, look: Sequence[str] = ()) -> str:
    """The current picture for the edit prompt: canvas, objects (name, description, box), texts, background, style,
    look; one JSON value per line, boxes rounded to 3 decimals."""

    def box(b) -> list[float]:
        return [round(float(v), 3) for v in b]

    def js(v) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))

    lines = [f"canvas: {blueprint.canvas.width} x {blueprint.canvas.height} pixels", "objects:"]
    lines += [
        "  " + js({"name": o.name, "description": o.description, "box": box(o.box)}) for o in blueprint.objects
    ] or ["  (none)"]
    lines.append("texts:")
    lines += ["  " + js({"content": t.content, "box": box(t.box)}) for t in blueprint.texts] or ["  (none)"]
    lines.append(f"background: {js(blueprint.background)}")
    lines.append(f"style: {js(blueprint.style)}")
    lines.append(f"look adjustments: {js(list(look))}")
    return "\n".join(lines)
