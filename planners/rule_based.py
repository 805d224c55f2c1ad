"""The offline planner: a prompt becomes a Blueprint by rules alone, with no model and no network.

It is the embedded default, so it must always answer: any non-empty prompt (any language, any length, any
punctuation) gives a Blueprint that passes both the pydantic limits and ``semantic_errors``. The work is split by
what it needs to know: :mod:`planners.grammar` reads the prompt into a scene (things, counts, words, relations,
texts, style, setting, exclusions), :mod:`planners.layout` turns the scene into boxes, and this module caps the
scene to the Blueprint's limits, names and describes each instance and assembles the result.

Choices the rest of the system relies on:

* Object names are the singular noun without colour/size words ("red apples" -> ``apple``), numbered
  ``"<noun> <n>"`` only when there is more than one (the convention ``agent.blueprint._base_name`` reads).
* Things worn or held ("a cat wearing a tiny hat") are objects of their own whose box sits inside the wearer's,
  and the wearer's description mentions them too; features ("with long hair") only go into the description.
* Deterministic: no randomness at all, so the same prompt always gives the same Blueprint (the seed is recorded,
  not used).
"""

from __future__ import annotations

import re

from agent.blueprint import MAX_OBJECTS, MAX_REFERENCES, MAX_TEXTS, Blueprint, Canvas, Reference, SceneObject, SceneText
from planners import grammar
from planners.base import PlanningError
from planners.grammar import Group, Relation, Scene, Target, Text
from planners.layout import layout

VERSION = "1"
MAX_PROMPT = 8000


class RuleBasedPlanner:
    name = "rule"

    def identity(self) -> dict:
        return {"planner": "rule", "version": VERSION}

    def plan(self, prompt: str, *, seed: int = 0, canvas: Canvas | None = None, recorder=None) -> Blueprint:
        if not prompt or not prompt.strip():
            raise PlanningError("the prompt is empty; describe the image you want")
        canvas = canvas or Canvas()
        scene = _capped(grammar.read(prompt))
        placed = layout(scene, canvas.width, canvas.height)
        names = _names(scene.groups)

        objects, references = [], []
        for gi, g in enumerate(scene.groups):
            for k in range(g.count):
                objects.append(SceneObject(
                    name=names[(gi, k)], description=_describe(g, k), box=placed.boxes[(gi, k)],
                    needs_reference=g.proper,
                ))
            if g.proper and len(references) < MAX_REFERENCES:
                references.append(Reference(object=names[(gi, 0)], query=_clip(" ".join(g.words), 120)))
        texts = [
            SceneText(content=t.content, box=box, style=_clip(t.style, 120))
            for t, box in zip(scene.texts, placed.text_boxes)
        ]
        return Blueprint(
            prompt=prompt[:MAX_PROMPT], canvas=canvas, seed=seed,
            style=_join(scene.style, 120),
            background=_join(scene.background, 400) or ("" if objects else _clip(grammar.clean(prompt), 400)),
            negative_prompt=_join(scene.negatives, 400),
            objects=objects, texts=texts, references=references,
        )


def expected_counts(prompt: str) -> dict[str, int]:
    """The counts the prompt states outright, by base name ("three red apples and a plate" -> {"apple": 3}).

    Meant for checking another planner's blueprint with ``semantic_errors``, so it leaves out every count this
    planner only guessed (a bare plural, "some", "a") and every name that also has guessed instances: a wrong
    expectation would send an LLM planner into pointless repairs.
    """
    counts: dict[str, int] = {}
    guessed: set[str] = set()
    for g in _capped(grammar.read(prompt)).groups:
        if g.stated:
            counts[g.name] = counts.get(g.name, 0) + g.count
        else:
            guessed.add(g.name)
    return {name: n for name, n in counts.items() if name not in guessed}


def _capped(scene: Scene) -> Scene:
    """At most MAX_OBJECTS instances (first mentioned kept) and MAX_TEXTS texts; references to dropped ones go."""
    kept: list[Group] = []
    new_index: dict[int, int] = {}
    room = MAX_OBJECTS
    for gi, g in enumerate(scene.groups):
        if room == 0:
            break
        g.count = min(g.count, room)
        room -= g.count
        new_index[gi] = len(kept)
        kept.append(g)

    def remap(t: Target | None) -> Target | None:
        if t is None or t.group not in new_index:
            return None
        if t.instance is not None and t.instance >= scene.groups[t.group].count:
            return None
        return Target(new_index[t.group], t.instance)

    relations = []
    for r in scene.relations:
        subject, objects = remap(r.subject), tuple(remap(o) for o in r.objects)
        if subject is not None and all(o is not None for o in objects):
            relations.append(Relation(r.kind, subject, objects))
    regions = [(remap(t), region) for t, region in scene.regions if remap(t) is not None]
    texts = [Text(t.content, remap(t.owner), t.style, t.region) for t in scene.texts[:MAX_TEXTS]]
    return Scene(kept, relations, regions, texts, scene.style, scene.background, scene.negatives)


def _names(groups: list[Group]) -> dict[tuple[int, int], str]:
    """'apple' alone, 'apple 1' .. 'apple n' when there are several (across every group with that name)."""
    totals: dict[str, int] = {}
    for g in groups:
        totals[g.name.lower()] = totals.get(g.name.lower(), 0) + g.count
    seen: dict[str, int] = {}
    names = {}
    for gi, g in enumerate(groups):
        for k in range(g.count):
            key = g.name.lower()
            if totals[key] == 1:
                names[(gi, k)] = g.name
            else:
                seen[key] = seen.get(key, 0) + 1
                names[(gi, k)] = f"{g.name[:60]} {seen[key]}"
    return names


def _describe(g: Group, instance: int) -> str:
    """'a red apple', 'a golden retriever wearing a red bandana', 'a wooden sign reading "OPEN"'."""
    words = [w for w in g.instance_words.get(instance, []) if w.lower() not in {x.lower() for x in g.words}]
    phrase = " ".join(words + g.words).replace(" ,", ",")
    art = grammar.article(phrase) if g.article == "a" else g.article
    parts = [" ".join(p for p in (art, phrase) if p)]
    by_verb: dict[str, list[str]] = {}
    for extra in g.extras:
        verb, _, rest = extra.partition(" ")
        if verb in ("with", "wearing", "holding") and not rest.startswith("the text"):
            by_verb.setdefault(verb, []).append(rest)
        else:
            parts.append(extra)
    for verb, items in by_verb.items():
        listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
        parts.append(f"{verb} {listed}")
    return _clip(" ".join(parts), 400)


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut or text[:limit]).strip()


def _join(parts: list[str], limit: int) -> str:
    """Unique parts (case-insensitive) joined with commas, dropping whole parts that would not fit."""
    out: list[str] = []
    seen: set[str] = set()
    for p in parts:
        p = _clip(p, limit)
        if p and p.lower() not in seen and len(", ".join(out + [p])) <= limit:
            out.append(p)
            seen.add(p.lower())
    return ", ".join(out)
