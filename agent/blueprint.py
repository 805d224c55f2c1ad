"""The Blueprint: what the planner decided the picture should contain.

Every leaf an LLM fills is bounded (patterns, lengths, ranges, list sizes) so that grammar-constrained decoding
stays finite and garbage cannot be represented. Structural rules live in the pydantic model; rules that need
the whole picture (overlaps, sizes, counts) live in :func:`semantic_errors`, which returns messages written so
that a user *or an LLM being asked to repair its output* can act on them.

Boxes are normalised ``[x0, y0, x1, y1]`` in ``[0, 1]``, origin top-left, ``x0 < x1`` and ``y0 < y1``.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION = "1"

MAX_OBJECTS = 24
MAX_TEXTS = 12
MAX_REFERENCES = 12
MIN_BOX_SIDE = 0.02  # 2 % of the canvas: anything smaller cannot be drawn or checked meaningfully
MAX_PAIR_OVERLAP = 0.85  # IoU above which two boxes are "piled up" on each other

Coord = Annotated[float, Field(ge=0.0, le=1.0)]
Box = Annotated[list[Coord], Field(min_length=4, max_length=4)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]
Phrase = Annotated[str, Field(max_length=400, pattern=r"^[^\x00-\x1f]*$")]
ShortPhrase = Annotated[str, Field(max_length=120, pattern=r"^[^\x00-\x1f]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_box(box: list[float]) -> list[float]:
    x0, y0, x1, y1 = box
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"box {box} is inverted or empty: need x0 < x1 and y0 < y1 (normalised [x0, y0, x1, y1])")
    return [round(float(v), 4) for v in box]


class Canvas(_Strict):
    width: int = Field(512, ge=64, le=2048, multiple_of=8)
    height: int = Field(512, ge=64, le=2048, multiple_of=8)


class SceneObject(_Strict):
    """One foreground object: a short name, a detailed description and where it goes."""

    name: Name
    description: Phrase = ""
    box: Box
    needs_reference: bool = False

    @field_validator("box")
    @classmethod
    def _box_ordered(cls, v: list[float]) -> list[float]:
        return _check_box(v)


class SceneText(_Strict):
    """Text that appears in the scene (a sign, a label); ``content`` is kept exactly as the user wrote it."""

    content: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
    box: Box
    style: ShortPhrase = ""

    @field_validator("box")
    @classmethod
    def _box_ordered(cls, v: list[float]) -> list[float]:
        return _check_box(v)


class Reference(_Strict):
    """A real image to retrieve for an object the generator is unlikely to know (RealRAG)."""

    object: Name
    query: ShortPhrase


class Blueprint(_Strict):
    schema_version: Literal["1"] = SCHEMA_VERSION
    prompt: Annotated[str, Field(max_length=8000)] = ""
    canvas: Canvas = Canvas()
    style: ShortPhrase = ""
    background: Phrase = ""
    negative_prompt: Phrase = ""
    objects: Annotated[list[SceneObject], Field(max_length=MAX_OBJECTS)] = []
    texts: Annotated[list[SceneText], Field(max_length=MAX_TEXTS)] = []
    references: Annotated[list[Reference], Field(max_length=MAX_REFERENCES)] = []
    critiques: Annotated[list[Literal["aesthetic"]], Field(max_length=2)] = []
    seed: int = Field(0, ge=0, le=2**32 - 1)

    def to_json(self) -> str:
        """Canonical JSON: the same blueprint always serialises to the same bytes."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    def global_prompt(self) -> str:
        """One text-to-image prompt for the whole scene: objects, background, style."""
        parts = [o.description or o.name for o in self.objects]
        if self.background:
            parts.append(self.background)
        if self.style:
            parts.append(self.style)
        return ", ".join(p for p in parts if p) or self.prompt or "a scene"


class BlueprintError(ValueError):
    """A blueprint that is structurally or semantically wrong; ``errors`` holds one message per problem."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def semantic_errors(bp: Blueprint, expected_counts: dict[str, int] | None = None) -> list[str]:
    """Whole-picture rules. Each message names the element, what is wrong and what to do."""
    errors: list[str] = []
    for kind, items in (("objects", bp.objects), ("texts", bp.texts)):
        for i, item in enumerate(items):
            x0, y0, x1, y1 = item.box
            if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
                label = getattr(item, "name", None) or getattr(item, "content", "")
                errors.append(
                    f"{kind}[{i}] '{label}' box {item.box} is smaller than {MIN_BOX_SIDE} of the canvas on a side;"
                    " make it larger"
                )
    for i, a in enumerate(bp.objects):
        for j in range(i + 1, len(bp.objects)):
            b = bp.objects[j]
            if iou(a.box, b.box) > MAX_PAIR_OVERLAP:
                errors.append(
                    f"objects[{i}] '{a.name}' and objects[{j}] '{b.name}' overlap almost completely"
                    f" (IoU {iou(a.box, b.box):.2f}); move one of them so each object has its own box"
                )
    names = {o.name for o in bp.objects}
    for i, r in enumerate(bp.references):
        if r.object not in names:
            errors.append(f"references[{i}] names object '{r.object}' which is not in objects; use one of {sorted(names)}")
    if expected_counts:
        for noun, want in expected_counts.items():
            got = sum(1 for o in bp.objects if _base_name(o.name) == noun)
            if got != want:
                errors.append(f"the request asks for {want} '{noun}' but the blueprint has {got}; add or remove boxes")
    return errors


def _base_name(name: str) -> str:
    """'apple 2' -> 'apple': objects of one kind are numbered to keep names unique."""
    head, _, tail = name.rpartition(" ")
    return head if head and tail.isdigit() else name


def printable(text: str) -> str:
    """``text`` with control and line-break characters escaped (``\\x85``): a key from an untrusted file must not
    break a one-line error in two."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def format_validation_error(err: ValidationError, limit: int = 3) -> list[str]:
    """Pydantic errors as short 'where: what' lines (used for user messages and LLM repair prompts)."""
    lines = []
    for e in err.errors()[:limit]:
        where = printable(".".join(str(p) for p in e["loc"])) or "blueprint"
        lines.append(f"{where}: {e['msg']}")
    if len(err.errors()) > limit:
        lines.append(f"... and {len(err.errors()) - limit} more")
    return lines


def parse_blueprint(data: object, check: bool = True) -> Blueprint:
    """Parse untrusted data (already JSON-decoded) into a Blueprint, raising BlueprintError with readable errors."""
    try:
        bp = Blueprint.model_validate(data)
    except ValidationError as err:
        raise BlueprintError(format_validation_error(err)) from None
    if check:
        errors = semantic_errors(bp)
        if errors:
            raise BlueprintError(errors)
    return bp


def json_schema() -> dict:
    """The JSON schema given to grammar-constrained decoders and exported by ``scenewright schema``."""
    return Blueprint.model_json_schema()
