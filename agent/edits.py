"""Edit operations: what a chat turn does to the current blueprint.

A planner turns a message ("make the cat bigger", "the sign should say CLOSED") into an :class:`EditPlan`: a short
list of typed operations. LLM planners produce it with grammar-constrained decoding against
:func:`edit_plan_schema` (every leaf is bounded, like the Blueprint's); the preview profile's rule-based parser
(``planners/edit_rules.py``) builds the same models. :func:`apply_edits` applies the operations to a
:class:`SceneState` and returns the next state and one human-readable line per change.

The state is the blueprint plus ``look``: global adjustments ("warmer light", "brighter") that the session
compiles into one final ``image_to_image`` node (``adjust``) instead of re-planning the scene. The Blueprint has no
field for post-adjustments, and a lighting tweak should not repaint every object; so the look lives beside it,
in the session's turn record.

Model output is untrusted input: :func:`parse_edit_plan` validates it and every operation is checked against the
current blueprint (an unknown object name is an :class:`EditError` that lists the names there are), and the
result goes through the Blueprint's own structural and semantic checks.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.blueprint import (
    MIN_BOX_SIDE,
    Blueprint,
    BlueprintError,
    Box,
    Name,
    Phrase,
    ShortPhrase,
    format_validation_error,
    parse_blueprint,
    semantic_errors,
)

MAX_OPS = 12
MAX_LOOK = 6
TextContent = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class EditError(ValueError):
    """An edit that cannot be applied (unknown object, a box that would leave the canvas…). One actionable line."""


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AddObject(_Op):
    op: Literal["add_object"] = "add_object"
    name: Name
    description: Phrase = ""
    box: Box


class RemoveObject(_Op):
    op: Literal["remove_object"] = "remove_object"
    name: Name


class MoveObject(_Op):
    """Shift a box by ``dx``/``dy`` (fractions of the canvas); it is clamped to stay inside the canvas."""

    op: Literal["move_object"] = "move_object"
    name: Name
    dx: float = Field(0.0, ge=-1.0, le=1.0)
    dy: float = Field(0.0, ge=-1.0, le=1.0)


class SetBox(_Op):
    op: Literal["set_box"] = "set_box"
    name: Name
    box: Box


class ResizeObject(_Op):
    """Scale a box about its centre (bottom-centre when it rests on the ground, so things do not float)."""

    op: Literal["resize_object"] = "resize_object"
    name: Name
    scale: float = Field(ge=0.2, le=5.0)


class DescribeObject(_Op):
    op: Literal["describe_object"] = "describe_object"
    name: Name
    description: Phrase


class SetText(_Op):
    """Replace a scene text. ``old`` picks which one (its current content); empty means the only/first one."""

    op: Literal["set_text"] = "set_text"
    old: Annotated[str, Field(max_length=200)] = ""
    content: TextContent


class AddText(_Op):
    op: Literal["add_text"] = "add_text"
    content: TextContent
    box: Box
    style: ShortPhrase = ""


class RemoveText(_Op):
    op: Literal["remove_text"] = "remove_text"
    old: Annotated[str, Field(max_length=200)] = ""


class SetBackground(_Op):
    op: Literal["set_background"] = "set_background"
    background: Phrase


class SetStyle(_Op):
    op: Literal["set_style"] = "set_style"
    style: ShortPhrase


class Adjust(_Op):
    """A global look adjustment ("warmer light", "more contrast"), applied to the finished image."""

    op: Literal["adjust"] = "adjust"
    adjustment: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f]+$")]


class ClearAdjustments(_Op):
    op: Literal["clear_adjustments"] = "clear_adjustments"


class SetSeed(_Op):
    op: Literal["set_seed"] = "set_seed"
    seed: int = Field(ge=0, le=2**32 - 1)


EditOp = Annotated[
    Union[
        AddObject,
        RemoveObject,
        MoveObject,
        SetBox,
        ResizeObject,
        DescribeObject,
        SetText,
        AddText,
        RemoveText,
        SetBackground,
        SetStyle,
        Adjust,
        ClearAdjustments,
        SetSeed,
    ],
    Field(discriminator="op"),
]

# Ops that change where things are or how the whole scene is drawn: the global pass must run again.
LAYOUT_OPS = {
    "add_object",
    "remove_object",
    "move_object",
    "set_box",
    "resize_object",
    "set_background",
    "set_style",
    "set_seed",
}


class EditPlan(BaseModel):
    """What one chat message asks for: ``action="edit"`` with ``ops``, or ``action="undo"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["edit", "undo"] = "edit"
    ops: Annotated[list[EditOp], Field(max_length=MAX_OPS)] = []


class SceneState(BaseModel):
    """Everything a turn's image is compiled from: the blueprint and the global look adjustments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    blueprint: Blueprint
    look: Annotated[list[Annotated[str, Field(max_length=80)]], Field(max_length=MAX_LOOK)] = []


def edit_plan_schema() -> dict:
    """The JSON schema an LLM planner constrains its edit output to."""
    return EditPlan.model_json_schema()


def parse_edit_plan(data: object) -> EditPlan:
    """Validate untrusted edit output (a JSON string or decoded JSON); raise EditError with readable lines."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as err:
            raise EditError(
                f"the edit plan is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
            ) from None
    try:
        return EditPlan.model_validate(data)
    except ValidationError as err:
        raise EditError("invalid edit plan: " + "; ".join(format_validation_error(err))) from None


# --- applying ---------------------------------------------------------------------------------------------------
def _clamp_box(box: list[float]) -> list[float]:
    """Keep a box's size (up to the canvas) and slide it back inside [0, 1]."""
    x0, y0, x1, y1 = box
    w, h = min(1.0, max(MIN_BOX_SIDE, x1 - x0)), min(1.0, max(MIN_BOX_SIDE, y1 - y0))
    x0 = min(max(0.0, x0), 1.0 - w)
    y0 = min(max(0.0, y0), 1.0 - h)
    return [round(x0, 4), round(y0, 4), round(x0 + w, 4), round(y0 + h, 4)]


def _fmt(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"


def _find(objects: list[dict], name: str) -> int:
    for i, o in enumerate(objects):
        if o["name"] == name:
            return i
    for i, o in enumerate(objects):
        if o["name"].lower() == name.lower():
            return i
    names = ", ".join(o["name"] for o in objects) or "none"
    raise EditError(f"there is no object named '{name}' in the picture; objects: {names}")


def _find_text(texts: list[dict], old: str) -> int:
    if not texts:
        raise EditError("the picture has no text to change; say what it should say, e.g. 'add a sign that says OPEN'")
    if not old:
        return 0
    for i, t in enumerate(texts):
        if t["content"] == old:
            return i
    for i, t in enumerate(texts):
        if old.lower() in t["content"].lower():
            return i
    raise EditError(f"there is no text '{old}' in the picture; texts: {', '.join(repr(t['content']) for t in texts)}")


def apply_edits(state: SceneState, ops: list) -> tuple[SceneState, list[str]]:
    """Apply ``ops`` in order; return the new state and one line per change. Raise EditError if one cannot apply."""
    if not ops:
        raise EditError("the message asks for no change")
    data = state.blueprint.model_dump(mode="json")
    look = list(state.look)
    objects, texts = data["objects"], data["texts"]
    changes: list[str] = []
    for op in ops:
        kind = op.op
        if kind == "add_object":
            if any(o["name"] == op.name for o in objects):
                raise EditError(f"an object named '{op.name}' is already there; give the new one another name")
            box = _clamp_box(list(op.box))
            objects.append({"name": op.name, "description": op.description, "box": box, "needs_reference": False})
            changes.append(f"added {op.name} at {_fmt(box)}")
        elif kind == "remove_object":
            i = _find(objects, op.name)
            removed = objects.pop(i)
            data["references"] = [r for r in data["references"] if r["object"] != removed["name"]]
            changes.append(f"removed {removed['name']}")
        elif kind in ("move_object", "set_box", "resize_object"):
            i = _find(objects, op.name)
            old = objects[i]["box"]
            if kind == "move_object":
                new = [old[0] + op.dx, old[1] + op.dy, old[2] + op.dx, old[3] + op.dy]
            elif kind == "set_box":
                new = list(op.box)
            else:
                cx, w, h = (old[0] + old[2]) / 2, (old[2] - old[0]) * op.scale, (old[3] - old[1]) * op.scale
                if old[3] >= 0.6:  # standing on the ground: grow upwards from the same base line
                    new = [cx - w / 2, old[3] - h, cx + w / 2, old[3]]
                else:
                    cy = (old[1] + old[3]) / 2
                    new = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            new = _clamp_box(new)
            if new == old:
                raise EditError(f"{objects[i]['name']} is already as far as it can go ({_fmt(old)})")
            objects[i]["box"] = new
            verb = {"move_object": "moved", "set_box": "placed", "resize_object": "resized"}[kind]
            changes.append(f"{verb} {objects[i]['name']}: {_fmt(old)} → {_fmt(new)}")
        elif kind == "describe_object":
            i = _find(objects, op.name)
            before = objects[i]["description"]
            objects[i]["description"] = op.description
            changes.append(f"{objects[i]['name']}: '{before or objects[i]['name']}' → '{op.description}'")
        elif kind == "set_text":
            i = _find_text(texts, op.old)
            before = texts[i]["content"]
            texts[i]["content"] = op.content
            changes.append(f"text '{before}' → '{op.content}'")
        elif kind == "add_text":
            texts.append({"content": op.content, "box": _clamp_box(list(op.box)), "style": op.style})
            changes.append(f"added text '{op.content}'")
        elif kind == "remove_text":
            i = _find_text(texts, op.old)
            changes.append(f"removed text '{texts.pop(i)['content']}'")
        elif kind == "set_background":
            changes.append(f"background: '{data['background']}' → '{op.background}'")
            data["background"] = op.background
        elif kind == "set_style":
            changes.append(f"style: '{data['style']}' → '{op.style}'")
            data["style"] = op.style
        elif kind == "adjust":
            if len(look) >= MAX_LOOK:
                raise EditError(f"at most {MAX_LOOK} look adjustments; say 'reset the look' to start over")
            look.append(op.adjustment)
            changes.append(f"look: {op.adjustment}")
        elif kind == "clear_adjustments":
            if not look:
                raise EditError("there are no look adjustments to reset")
            changes.append(f"look reset (was: {', '.join(look)})")
            look = []
        elif kind == "set_seed":
            changes.append(f"seed {data['seed']} → {op.seed}")
            data["seed"] = op.seed
        else:  # pragma: no cover - the discriminated union admits nothing else
            raise EditError(f"unknown edit operation '{kind}'")
    try:
        bp = parse_blueprint(data, check=False)
    except BlueprintError as err:
        raise EditError(f"that edit would break the picture: {err.errors[0]}") from None
    new_errors = [e for e in semantic_errors(bp) if e not in set(semantic_errors(state.blueprint))]
    if new_errors:  # only problems this edit introduced; an old blueprint's quirks do not block a text change
        raise EditError(f"that edit would break the picture: {new_errors[0]}")
    return SceneState(blueprint=bp, look=look), changes


def changes_layout(ops: list) -> bool:
    return any(op.op in LAYOUT_OPS for op in ops)
