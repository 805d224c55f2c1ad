"""What a prompt reads into: groups of things, their relations and regions, texts, style, background."""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Group:
    """One kind of thing introduced by one mention ("three red apples"), drawn ``count`` times."""

    name: str  # singular and adjective-free: "apple", "coffee mug", "Eiffel Tower"
    count: int
    words: list[str]  # the phrase as written, head made singular: ["red", "apple"]
    extras: list[str] = field(default_factory=list)  # "of fruit", "wearing a tiny hat"
    instance_words: dict[int, list[str]] = field(default_factory=dict)  # "one black and one white"
    proper: bool = False  # a specific named thing: worth a reference image
    article: str = "a"  # "a" (a/an by sound), "the" ("the Eiffel Tower") or "" ("sunglasses", "Mount Fuji")
    claimed: int = 0  # instances already singled out by "the blue boat"
    stated: bool = False  # the prompt gave the count in words or digits ("three", "a pair of")


@dataclass(frozen=True)
class Target:
    """A group, or one instance of it (``instance`` counts from 0)."""

    group: int
    instance: int | None = None


@dataclass
class Relation:
    kind: str  # left right above below on under front behind near between inside flank wear hold with
    subject: Target
    objects: tuple[Target, ...]


@dataclass
class Text:
    content: str
    owner: Target | None = None
    style: str = ""
    region: str = ""


@dataclass
class Scene:
    groups: list[Group] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    regions: list[tuple[Target, str]] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    style: list[str] = field(default_factory=list)
    background: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
