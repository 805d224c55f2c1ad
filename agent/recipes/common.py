"""Pieces every recipe builds with: tool nodes pinned to the registry's versions, slugs, the global scene."""

from __future__ import annotations

import re
from collections.abc import Callable

from agent.blueprint import Blueprint
from agent.graph import ToolNode
from tools.base import Registry

NodeMaker = Callable[..., ToolNode]


def node_maker(registry: Registry) -> NodeMaker:
    """``node(id, tool, **inputs)``: a tool node carrying the version the registry has for ``tool``."""

    def node(id: str, tool: str, **inputs) -> ToolNode:
        return ToolNode(id=id, tool=tool, version=registry.get(tool).version, inputs=inputs)

    return node


def slug(name: str, taken: set[str], *, limit: int = 40, default: str = "object") -> str:
    """A node-id-safe, unique-within-``taken`` form of a name ('apple 2' → 'apple_2')."""
    base = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:limit] or default
    out, n = base, 2
    while out in taken:
        out, n = f"{base}_{n}", n + 1
    taken.add(out)
    return out


def scene_node(node: NodeMaker, bp: Blueprint, *, steps: int, guidance: float, prompt: str | None = None) -> ToolNode:
    """LLM Blueprint's global pass: every object's box and phrase in one layout-to-image call, id ``scene``.
    ``prompt``: the scene prompt when a recipe has its own (ImageRepainter's rewrites), else the blueprint's."""
    return node(
        "scene",
        "layout_to_image",
        prompt=prompt or bp.global_prompt(),
        background=bp.background,
        style=bp.style,
        negative_prompt=bp.negative_prompt,
        objects=[{"name": o.name, "phrase": o.description or o.name, "box": o.box} for o in bp.objects],
        width=bp.canvas.width,
        height=bp.canvas.height,
        steps=steps,
        guidance=guidance,
    )
