"""The offline planner: a prompt becomes a Blueprint by rules alone, with no model and no network.

It is the embedded default, so it must always answer: any non-empty prompt (any language, any length, any
punctuation) gives a Blueprint that passes both the pydantic limits and ``semantic_errors``. The work is split by
what it needs to know: :mod:`planners.reader` reads the prompt into a scene (things, counts, words, relations,
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
from planners import lexicon as lx
from planners import reader
from planners.base import PlanningError
from planners.layout import layout
from planners.reader import Group, Relation, Scene, Target, Text

VERSION = "1"
MAX_PROMPT = 8000


class RuleBasedPlanner:
    name = "rule"

    def identity(self) -> dict:
        return {"planner": "rule", "version": VERSION}

    def plan(self, prompt: str, *, seed: int = 0, canvas: Canvas | None = None, recorder=None) -> Blueprint:
        return self.plan_with_notices(prompt, seed=seed, canvas=canvas)[0]

    def plan_with_notices(
        self, prompt: str, *, seed: int = 0, canvas: Canvas | None = None, recorder=None
    ) -> tuple[Blueprint, list[str]]:
        """The blueprint and one line per thing of the prompt it could not keep (cut text, dropped objects,
        a prompt it could not read), for the CLI, the API and the record to show: nothing is lost silently."""
        if not prompt or not prompt.strip():
            raise PlanningError("the prompt is empty; describe the image you want")
        canvas = canvas or Canvas()
        notices: list[str] = []
        if len(prompt) > MAX_PROMPT:
            notices.append(f"the prompt has {len(prompt)} characters; only the first {MAX_PROMPT} were read")
        read_text = prompt[:MAX_PROMPT]  # the cap applies before parsing: reading time stays bounded
        scene = _capped(reader.read(read_text), notices)
        placed = layout(scene, canvas.width, canvas.height)
        names = _names(scene.groups)

        objects, references = [], []
        for gi in _paint_order(scene):
            g = scene.groups[gi]
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
        if not objects and not texts:
            notices.append(_unread_notice(read_text))
        return Blueprint(
            prompt=prompt[:MAX_PROMPT], canvas=canvas, seed=seed,
            style=_join(scene.style, 120),
            background=_join(scene.background, 400) or ("" if objects else _clip(reader.clean(read_text), 400)),
            negative_prompt=_join(scene.negatives, 400),
            objects=objects, texts=texts, references=references,
        ), notices


_ENGLISH = frozenset("a an the of on in with and to at is are under next".split())


def _unread_notice(prompt: str) -> str:
    """Why a prompt gave no object: most often it is not English, which this planner cannot read."""
    words = re.findall(r"[^\W\d_]+", prompt.lower())
    latin = sum(c.isascii() for w in words for c in w)
    letters = sum(len(w) for w in words)
    if letters and (latin < 0.5 * letters or not _ENGLISH & set(words)):
        return ("the rule planner reads English only and found no object in this prompt; the whole prompt became"
                " the background (an LLM planner, e.g. --planner vllm, reads other languages)")
    return "the rule planner found no object to draw in this prompt; the whole prompt became the background"


def expected_counts(prompt: str) -> dict[str, int]:
    """The counts the prompt states outright, by base name ("three red apples and a plate" -> {"apple": 3}).

    Meant for checking another planner's blueprint with ``semantic_errors``, so it leaves out every count this
    planner only guessed (a bare plural, "some", "a") and every name that also has guessed instances: a wrong
    expectation would send an LLM planner into pointless repairs.
    """
    counts: dict[str, int] = {}
    guessed: set[str] = set()
    for g in _capped(reader.read(prompt[:MAX_PROMPT])).groups:
        if g.stated:
            counts[g.name] = counts.get(g.name, 0) + g.count
        else:
            guessed.add(g.name)
    return {name: n for name, n in counts.items() if name not in guessed}


def named_objects(prompt: str) -> list[str]:
    """One base name per object instance the prompt names ("a cat and a dog in a garden" → ["cat", "dog"]; "three
    apples" → three "apple"): a lower bound for another planner's blueprint. A guessed count ("apples") counts
    once, so the bound never asks for more than the prompt says."""
    names: list[str] = []
    for g in _capped(reader.read(prompt[:MAX_PROMPT])).groups:
        names += [g.name] * (g.count if g.stated else 1)
    return names


def _capped(scene: Scene, notices: list[str] | None = None) -> Scene:
    """At most MAX_OBJECTS instances (first mentioned kept) and MAX_TEXTS texts; references to dropped ones go.
    What is dropped is said in ``notices``."""
    kept: list[Group] = []
    new_index: dict[int, int] = {}
    room = MAX_OBJECTS
    dropped: dict[str, int] = {}
    for gi, g in enumerate(scene.groups):
        if g.count > room:
            dropped[g.name] = dropped.get(g.name, 0) + g.count - room
        if room == 0:
            continue
        g.count = min(g.count, room)
        room -= g.count
        new_index[gi] = len(kept)
        kept.append(g)
    if notices is not None and dropped:
        total = sum(dropped.values())
        listed = ", ".join(f"{n} {name}" for name, n in list(dropped.items())[:6])
        listed += ", ..." if len(dropped) > 6 else ""
        notices.append(f"a blueprint holds at most {MAX_OBJECTS} objects; {total} more named in the prompt were left"
                       f" out ({listed})")
    if notices is not None and len(scene.texts) > MAX_TEXTS:
        more = len(scene.texts) - MAX_TEXTS
        notices.append(f"a blueprint holds at most {MAX_TEXTS} texts; {more} more were left out")

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


# relations whose subject is seen in front of its object: drawn after it, so "a dog under a table" stays visible
_IN_FRONT = frozenset({"on", "under", "inside", "wear", "hold", "with", "front"})


def _paint_order(scene: Scene) -> list[int]:
    """Group indices in drawing order: what sits on, under, in or in front of a thing comes after it, what is
    behind it before; otherwise the order of mention. Cycles are cut by the bound on the passes."""
    depth = [0] * len(scene.groups)
    for _ in range(len(scene.groups)):
        changed = False
        for r in scene.relations:
            for o in r.objects:
                front, back = (r.subject.group, o.group) if r.kind in _IN_FRONT else (
                    (o.group, r.subject.group) if r.kind == "behind" else (None, None))
                if front is not None and front != back and depth[front] <= depth[back]:
                    depth[front] = depth[back] + 1
                    changed = True
        if not changed:
            break
    return sorted(range(len(scene.groups)), key=lambda gi: depth[gi])


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
    art = lx.article(phrase) if g.article == "a" else g.article
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
