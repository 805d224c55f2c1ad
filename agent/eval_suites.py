"""Prompt suites for ``scenewright eval``, all read into one form: GenEval's clauses.

A case is a prompt with ``include`` clauses (a class, at least ``count`` of it, optionally a ``color`` and a
``position`` relative to another include clause) and ``exclude`` clauses (fewer than ``count`` of a class), plus
``texts`` that must be legible in the picture. Three sources:

* a GenEval ``evaluation_metadata.jsonl`` (one JSON object a line: ``tag``, ``prompt``, ``include``, ``exclude``;
  tags single_object / two_object / counting / colors / position / color_attr). The format is GenEval's
  (github.com/djghosh13/geneval, MIT); its data is not shipped here, point ``--geneval`` at your copy.
* an LMD-style suite that scenewright writes itself from a list of object names: negation, numeracy, attribution
  and spatial prompts (:func:`lmd_suite`), deterministic for a given list and seed.
* any JSONL of ``{"prompt", "objects": {noun: count}, "texts": [...], "relations": [[A, rel, B], ...]}``
  (optional ``tag``); a count is exact (at least n and fewer than n + 1), rel is left/right/above/below.

Everything read from a file is validated: one clear line names the file, the line and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.api import UserError
from agent.store import canonical_json
from planners import lexicon as lx

MAX_SUITE_BYTES = 20 * 1024 * 1024
MAX_CASES = 50_000
Relation = Literal["left of", "right of", "above", "below"]
_REL_WORDS = {"left": "left of", "right": "right of", "above": "above", "below": "below", "left of": "left of",
              "right of": "right of", "under": "below", "beneath": "below", "over": "above"}
Noun = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]


class Clause(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    cls: Noun = Field(alias="class")
    count: int = Field(1, ge=1, le=24)
    color: Noun | None = None
    position: tuple[Relation, Annotated[int, Field(ge=0, le=63)]] | None = None

    def text(self) -> str:
        parts = [str(self.count), self.color or "", self.cls]
        where = f" {self.position[0]} #{self.position[1]}" if self.position else ""
        return " ".join(p for p in parts if p) + where


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    tag: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_ -]+$")]
    prompt: Annotated[str, Field(min_length=1, max_length=8000)]
    include: Annotated[list[Clause], Field(max_length=64)] = []
    exclude: Annotated[list[Clause], Field(max_length=64)] = []
    texts: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=12)] = []

    @model_validator(mode="after")
    def _targets_exist(self) -> Case:
        for i, c in enumerate(self.include):
            if c.position and (c.position[1] >= len(self.include) or c.position[1] == i):
                target = c.position[1]
                raise ValueError(f"include[{i}] position refers to include[{target}], which is not another clause")
        return self

    def digest(self) -> str:
        """Changes when anything that is scored changes: a resumed eval re-runs an edited case."""
        return hashlib.sha256(canonical_json(self.model_dump(mode="json", by_alias=True)).encode()).hexdigest()[:16]


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise UserError(f"suite file {path} does not exist (or is not a file)")
    if path.stat().st_size > MAX_SUITE_BYTES:
        raise UserError(f"{path} is larger than {MAX_SUITE_BYTES // 1024 // 1024} MiB; split the suite")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; a suite is JSONL (one JSON object a line)") from None
    rows = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    if not rows:
        raise UserError(f"{path} has no cases; a suite is JSONL (one JSON object a line)")
    if len(rows) > MAX_CASES:
        raise UserError(f"{path} has {len(rows)} cases; at most {MAX_CASES} per eval")
    return rows


def _object(path: Path, n: int, line: str) -> dict:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}:{n}: each line must be a JSON object, not {type(data).__name__}")
    return data


def _case(path: Path, n: int, data: dict) -> Case:
    try:
        return Case.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        where = ".".join(str(p) for p in e["loc"]) or "case"
        raise UserError(f"{path}:{n}: {where}: {e['msg']}") from None


def load_suite(path: str | Path) -> list[Case]:
    """A suite file of either form, told apart by its first case: clauses (``include``) or ``objects``."""
    path = Path(path)
    first = _object(path, *_lines(path)[0])
    return load_geneval(path) if "include" in first or "exclude" in first else load_jsonl(path)


def load_geneval(path: str | Path) -> list[Case]:
    """GenEval's evaluation_metadata.jsonl; cases are numbered in file order like GenEval's image folders.
    Lines may also carry ``id`` and ``texts`` (what :func:`write_jsonl` adds)."""
    path = Path(path)
    cases = []
    for k, (n, line) in enumerate(_lines(path)):
        data = _object(path, n, line)
        unknown = set(data) - {"tag", "prompt", "include", "exclude", "id", "texts"}
        if unknown:
            raise UserError(f"{path}:{n}: unknown field(s) {sorted(unknown)}; GenEval lines hold tag, prompt,"
                            " include, exclude")
        cases.append(_case(path, n, {"id": f"{k:05d}", **data}))
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise UserError(f"{path}: two cases share the id {next(i for i in ids if ids.count(i) > 1)!r}")
    return cases


def load_jsonl(path: str | Path) -> list[Case]:
    """``{prompt, objects, texts, relations}`` lines (planner_eval's case form) as clauses."""
    path = Path(path)
    cases = []
    for k, (n, line) in enumerate(_lines(path)):
        data = _object(path, n, line)
        unknown = set(data) - {"prompt", "objects", "texts", "relations", "tag", "id"}
        if unknown:
            raise UserError(f"{path}:{n}: unknown field(s) {sorted(unknown)}; lines hold prompt, objects, texts,"
                            " relations (and optional tag, id)")
        objects = data.get("objects") or {}
        if isinstance(objects, list):
            objects = {o: 1 for o in objects}
        counts_ok = isinstance(objects, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in objects.values())
        if not counts_ok:
            raise UserError(f"{path}:{n}: objects must map each noun to a whole count, e.g. {{\"apple\": 3}}")
        include: list[dict] = [{"class": noun, "count": count} for noun, count in objects.items()]
        exclude = [{"class": noun, "count": count + 1} for noun, count in objects.items() if count < 24]
        for rel in data.get("relations") or []:
            if not (isinstance(rel, list) and len(rel) == 3 and all(isinstance(x, str) for x in rel)):
                raise UserError(f"{path}:{n}: a relation is [A, rel, B] with rel left/right/above/below, got {rel!r}")
            a, word, b = rel
            if word.lower() not in _REL_WORDS:
                raise UserError(f"{path}:{n}: relation {word!r} is not one of left, right, above, below")
            if a not in objects or b not in objects:
                raise UserError(f"{path}:{n}: relation {rel} names an object not in objects")
            target = list(objects).index(b)
            include.append({"class": a, "count": objects[a], "position": [_REL_WORDS[word.lower()], target]})
        cases.append(_case(path, n, {
            "id": str(data.get("id") or f"{k:05d}"), "tag": data.get("tag") or _tag(include, data.get("texts")),
            "prompt": data.get("prompt", ""), "include": include, "exclude": exclude, "texts": data.get("texts") or [],
        }))
    return cases


def _tag(include: list[dict], texts) -> str:
    if any("position" in c for c in include):
        return "position"
    if texts:
        return "text"
    if any(c["count"] > 1 for c in include):
        return "counting"
    return "single_object" if len(include) == 1 else "objects"


# --- the LMD-style suite ------------------------------------------------------------------------------------

DEFAULT_OBJECTS = (
    "apple banana cat dog bird car bicycle chair table vase cup bottle clock book lamp umbrella horse boat "
    "teddy bear backpack"
).split()
_TWO_WORD = {"teddy": "teddy bear"}
_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
_PLURALS = {v: k for k, v in lx.IRREGULAR_PLURALS.items() if v != k}
CATEGORIES = ("negation", "numeracy", "attribution", "spatial")


def plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    if last in _PLURALS:
        word = _PLURALS[last]
    elif last in lx.INVARIANT:
        word = last
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}".strip()


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def read_objects(path: str | Path) -> list[str]:
    """Object names for the LMD-style suite: one a line (``#`` comments allowed), at least two."""
    path = Path(path)
    names = [line.strip().lower() for _, line in _lines(path)]
    bad = [x for x in names if len(x) > 64 or not all(c.isalpha() or c in " -" for c in x)]
    if bad:
        raise UserError(f"{path}: {bad[0]!r} is not an object name (letters, spaces and hyphens, up to 64)")
    names = list(dict.fromkeys(names))
    if len(names) < 2:
        raise UserError(f"{path}: the suite needs at least two different object names")
    return names


def lmd_suite(objects: list[str] | None = None, per_category: int = 25, seed: int = 0) -> list[Case]:
    """Negation, numeracy, attribution and spatial prompts in LMD's four categories, written by scenewright:
    the same objects, count and seed always give the same suite."""
    names = list(objects or DEFAULT_OBJECTS)
    rng = random.Random(seed)
    cases: list[Case] = []

    def add(tag: str, prompt: str, include: list[dict], exclude: list[dict] | None = None) -> None:
        cases.append(Case.model_validate({"id": f"{tag}-{sum(c.tag == tag for c in cases):03d}", "tag": tag,
                                          "prompt": prompt, "include": include, "exclude": exclude or []}))

    negations = ("a realistic photo of {a} with no {bs}", "a realistic photo of a scene without {bs}",
                 "a realistic photo of {a} and no {bs} anywhere", "a realistic photo of {a}, without any {bs}")
    for _ in range(per_category):
        a, b = rng.sample(names, 2)
        form = rng.choice(negations)
        include = [{"class": a}] if "{a}" in form else []
        add("negation", form.format(a=_a(a), bs=plural(b)), include, [{"class": b, "count": 1}])
    for _ in range(per_category):
        a, b = rng.sample(names, 2)
        n, m = rng.randint(1, 5), rng.randint(1, 5)
        words = lambda k, x: f"{_NUMBERS[k]} {x if k == 1 else plural(x)}"  # noqa: E731
        add("numeracy", f"a realistic photo of {words(n, a)} and {words(m, b)}",
            [{"class": a, "count": n}, {"class": b, "count": m}],
            [{"class": a, "count": n + 1}, {"class": b, "count": m + 1}])
    for _ in range(per_category):
        a, b = rng.sample(names, 2)
        ca, cb = rng.sample(_COLOURS, 2)
        add("attribution", f"a realistic photo of {_a(ca + ' ' + a)} and {_a(cb + ' ' + b)}",
            [{"class": a, "color": ca}, {"class": b, "color": cb}])
    # "A to the left of B" and LMD's two-sided form "A on the left and B on the right"
    phrases = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
    sides = {"left of": ("on the left", "on the right"), "right of": ("on the right", "on the left"),
             "above": ("at the top", "at the bottom"), "below": ("at the bottom", "at the top")}
    for _ in range(per_category):
        a, b = rng.sample(names, 2)
        rel = rng.choice(list(phrases))
        if rng.random() < 0.5:
            prompt = f"a realistic photo of {_a(a)} {phrases[rel]} {_a(b)}"
        else:
            prompt = f"a realistic photo of {_a(a)} {sides[rel][0]} and {_a(b)} {sides[rel][1]}"
        add("spatial", prompt, [{"class": b}, {"class": a, "position": [rel, 0]}])
    return cases


def write_jsonl(cases: list[Case], path: str | Path) -> None:
    """A suite as GenEval-style JSONL (with ids), e.g. to pin the generated LMD suite in a repository."""
    with open(path, "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c.model_dump(mode="json", by_alias=True, exclude_none=True), ensure_ascii=False) + "\n")
