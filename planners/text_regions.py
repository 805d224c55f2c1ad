"""LLM text-region planner: SceneVTG's TRCG two-turn protocol (``shared/notes/methods.md`` §2.2, §2.5), zero-shot.

Turn 1 (``llm.text_regions.1``): given the blueprint (objects with boxes, background, style, the user's texts),
the LLM answers, per text line, a ``center`` point and an approximate ``size`` (normalised). Turn 2
(``llm.text_regions.2``): given turn 1's answer in the same conversation, it answers a quadrilateral per line
(8 numbers, normalised, clockwise from the top-left) and optionally word-level quads for multi-word lines.

Choices, written down:
- **The user's texts are never generated**: in both schemas the lines are a fixed sequence (``prefixItems``, one
  item per text, its ``text`` a ``const``; turn 2: turn 1's lines, and a multi-word line's optional ``words`` are
  its words as consts), and the answer is checked again (each text exactly once) for engines without
  ``prefixItems``. With
  ``add_plausible=True`` a separate ``extra`` array (at most ``limits.max_extra`` items, short bounded strings)
  lets the LLM add scene texts of its own; they are never mixed with the user's.
- Every schema leaf is bounded (patterns, numbers in [0, 1], ``maxItems``), as in :mod:`planners.llm_planner`.
- Line quads are checked with :func:`tools.scene_text.validate_regions` (inside the canvas, convex, no overlaps,
  text fits). Problems go back to the LLM as a repair turn (the answer as the assistant's turn, then the errors,
  template ``text_regions_repair``), at most ``repairs`` times over both turns. Word quads are optional: invalid
  ones (texts not the line's words in order, failing validation, or outside the line) are dropped with a note.
- When the budget runs out, or the transport fails, the plan falls back to the blueprint's axis-aligned text
  boxes (:func:`agent.recipes.scene_text.text_regions`), with the reason in ``TextRegionPlan.reason``: a bad LLM
  answer never fails the run.
- Every exchange goes through the recorder (``lookup`` first, else the client, then ``record``), with requests
  shaped like the layout planner's (client kind, model, messages, schema, sampling, template versions).
- **The planner sees the image** (TRCG plans on the text-free background): ``plan(bp, image=...)`` puts the
  rendered scene into turn 1 as an OpenAI-style image part (``llm_client.image_part``; a VLM client: vLLM
  multimodal or transformers), recorded by its SHA-256, not inline. Without an image the plan says so in
  ``notes`` (``regions planned blind``): a text-only LLM guessing from the object boxes is not TRCG.
- **Plausible content** (TRCG's "text content"): when the prompt asks for text without giving it ("a shop
  sign", "a poster for a jazz night"; :func:`asks_for_text`), ``plan(bp, wanted=[...])`` asks the LLM to
  propose the words in ``extra`` (at least one item); the proposals are marked ``plausible`` in the plan (and
  its ``text_regions.json``). Zero-shot, not the paper's fine-tuned LLaVA: said in ``notes``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import prompts
from agent.blueprint import Blueprint
from planners.base import NullRecorder, Recorder
from planners.llm_client import Completion, JSONRequest, LLMClient, LLMError, image_part
from planners.llm_planner import _repeat

log = logging.getLogger(__name__)

KIND_TURN1, KIND_TURN2 = "llm.text_regions.1", "llm.text_regions.2"
TEMPLATES = ("text_regions_system", "text_regions_user1", "text_regions_user2", "text_regions_repair")


@dataclass(frozen=True)
class TextRegionLimits:
    max_extra: int = 3  # extra plausible texts with add_plausible=True
    extra_chars: int = 24
    max_words: int = 8  # lines with more words get no word-level split
    char_class: str = r"[^\x00-\x1f]"
    first_char_class: str = r"[^\x00-\x20]"

    def __post_init__(self):
        if not (0 <= self.max_extra <= 8 and 1 <= self.extra_chars <= 80 and 0 <= self.max_words <= 16):
            raise ValueError("max_extra must be in 0..8, extra_chars in 1..80 and max_words in 0..16")

    def pattern(self, chars: int) -> str:
        return f"^{self.first_char_class}{_repeat(self.char_class, chars - 1)}$"


@dataclass
class TextRegion:
    text: str
    quad: list[float]
    style: str = ""
    words: list[dict] = field(default_factory=list)  # [{"text", "quad"}], left to right; may be empty
    plausible: bool = False  # added by the LLM (add_plausible), not the user's text

    def as_dict(self) -> dict:
        d = {"text": self.text, "quad": list(self.quad), "style": self.style}
        if self.words:
            d["words"] = [dict(w) for w in self.words]
        return d


@dataclass
class TextRegionPlan:
    regions: list[TextRegion]
    source: str  # "llm" | "fallback"
    reason: str = ""  # why the fallback was taken
    repairs_used: int = 0
    notes: list[str] = field(default_factory=list)
    image_sha256: str = ""  # the scene image the planner saw (its data URI's SHA-256); "" = planned blind
    proposed: list[str] = field(default_factory=list)  # contents the LLM proposed for text the prompt asked for

    def as_dicts(self) -> list[dict]:
        """The ``regions`` argument of the scene-text recipe."""
        return [r.as_dict() for r in self.regions]

    def to_json(self) -> dict:
        return {**asdict(self), "regions": self.as_dicts()}


# --- schemas ------------------------------------------------------------------------------------------------------
_COORD = {"type": "number", "minimum": 0.0, "maximum": 1.0}


def _pair() -> dict:
    return {"type": "array", "items": dict(_COORD), "minItems": 2, "maxItems": 2}


def _quad() -> dict:
    return {"type": "array", "items": dict(_COORD), "minItems": 8, "maxItems": 8}


def _obj(props: dict, required: Sequence[str]) -> dict:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


def _fixed_array(texts: Sequence[str], item: Callable[[str], dict]) -> dict:
    """One item per text, in order, its ``text`` a ``const``: the LLM cannot change, drop or repeat a text
    (``prefixItems`` + ``items: false``, which xgrammar 0.2.8 compiles to a fixed sequence)."""
    n = len(texts)
    return {"type": "array", "prefixItems": [item(t) for t in texts], "items": False, "minItems": n, "maxItems": n}


def turn1_schema(texts: Sequence[str], limits: TextRegionLimits, *, add_plausible: bool,
                 min_extra: int = 0) -> dict:
    """``min_extra``: proposals the answer must hold (the prompt asked for text it did not give)."""
    line = lambda t: _obj({"text": {"type": "string", "const": t}, "center": _pair(), "size": _pair()},
                          ["text", "center", "size"])  # fmt: skip
    props = {"lines": _fixed_array(texts, line)}
    if add_plausible and limits.max_extra:
        extra = _obj({"text": {"type": "string", "pattern": limits.pattern(limits.extra_chars)}, "center": _pair(),
                      "size": _pair()}, ["text", "center", "size"])
        props["extra"] = {"type": "array", "items": extra, "maxItems": limits.max_extra}
        if min_extra:
            props["extra"]["minItems"] = min(min_extra, limits.max_extra)
    return _obj(props, list(props))


def turn2_schema(texts: Sequence[str], limits: TextRegionLimits) -> dict:
    def region(t: str) -> dict:
        props = {"text": {"type": "string", "const": t}, "quad": _quad()}
        words = t.split()
        if limits.max_words and 1 < len(words) <= limits.max_words:  # word texts fixed too, quads optional
            props["words"] = _fixed_array(words, lambda w: _obj({"text": {"type": "string", "const": w},
                                                                 "quad": _quad()}, ["text", "quad"]))
        return _obj(props, ["text", "quad"])

    return _obj({"regions": _fixed_array(texts, region)}, ["regions"])


# --- parsing and checks ---------------------------------------------------------------------------------------------
def _load(text: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"the answer is not valid JSON ({err.msg} at char {err.pos})") from None
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")  # noqa: TRY004  caught with the parse errors
    return data


def _nums(v, n: int) -> list[float] | None:
    if isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return [float(x) for x in v]
    return None


def parse_turn1(text: str, user_texts: Sequence[str], limits: TextRegionLimits, *, add_plausible: bool,
                min_extra: int = 0):
    """(lines, errors): lines = [{"text", "center", "size", "plausible"}]; user texts first, exactly once each;
    at least ``min_extra`` usable proposals in ``extra`` when the prompt asked for text it did not give."""
    data = _load(text)
    errors: list[str] = []
    lines: list[dict] = []
    seen: set[str] = set()
    for i, it in enumerate(data.get("lines") or []):
        if not isinstance(it, dict):
            errors.append(f"lines[{i}] is not an object")
            continue
        t, c, s = it.get("text"), _nums(it.get("center"), 2), _nums(it.get("size"), 2)
        if t not in user_texts:
            errors.append(f"lines[{i}]: text {t!r} is not one of the given texts; copy them exactly")
        elif t in seen:
            errors.append(f"lines[{i}]: text {t!r} is listed twice; list each given text once")
        elif c is None or s is None or not all(0 <= v <= 1 for v in c + s) or min(s) <= 0:
            errors.append(f"lines[{i}] {t!r}: center and size must be two numbers in [0, 1] each, size > 0")
        else:
            seen.add(t)
            lines.append({"text": t, "center": c, "size": s, "plausible": False})
    for t in user_texts:
        if t not in seen:
            errors.append(f"the text {t!r} has no line; add it to \"lines\" exactly as written")
    if add_plausible:
        for it in (data.get("extra") or [])[: limits.max_extra]:
            t = it.get("text") if isinstance(it, dict) else None
            c, s = (_nums(it.get("center"), 2), _nums(it.get("size"), 2)) if isinstance(it, dict) else (None, None)
            ok = isinstance(t, str) and t.strip() and len(t) <= limits.extra_chars and t not in seen
            if ok and c and s and all(0 <= v <= 1 for v in c + s) and min(s) > 0:
                seen.add(t)
                lines.append({"text": t, "center": c, "size": s, "plausible": True})
    got = sum(ln["plausible"] for ln in lines)
    if add_plausible and got < min(min_extra, limits.max_extra):
        errors.append(f"propose at least {min_extra} text(s) in \"extra\": the words that would be written there"
                      f" (at most {limits.extra_chars} characters each), with center and size in [0, 1]")
    return lines, errors


def _inside(inner: list[float], outer: list[float], tol: float = 0.02) -> bool:
    from tools.scene_text import quad_bbox

    a, b = quad_bbox(inner), quad_bbox(outer)
    return a[0] >= b[0] - tol and a[1] >= b[1] - tol and a[2] <= b[2] + tol and a[3] <= b[3] + tol


def parse_turn2(text: str, lines: Sequence[dict], width: int, height: int):
    """(regions, errors, notes): regions in turn 1's order; errors go back to the LLM; notes record dropped words."""
    from tools.scene_text import validate_regions

    data = _load(text)
    by_text: dict[str, dict] = {}
    errors: list[str] = []
    for i, it in enumerate(data.get("regions") or []):
        t = it.get("text") if isinstance(it, dict) else None
        if not any(t == ln["text"] for ln in lines):
            errors.append(f"regions[{i}]: text {t!r} is not one of the planned lines; copy them exactly")
        elif t in by_text:
            errors.append(f"regions[{i}]: text {t!r} is given twice; one region per line")
        else:
            by_text[t] = it
    for ln in lines:
        if ln["text"] not in by_text:
            errors.append(f"the line {ln['text']!r} has no region; add it")
    if errors:
        return [], errors, []
    regions = [{"text": ln["text"], "quad": _nums(by_text[ln["text"]].get("quad"), 8) or by_text[ln["text"]].get("quad")}
               for ln in lines]
    errors = validate_regions(regions, width, height)
    notes: list[str] = []
    for r in regions:
        words = by_text[r["text"]].get("words") or []
        want = r["text"].split()
        if not words or len(want) < 2:
            r["words"] = []
            continue
        ws = [{"text": w.get("text"), "quad": _nums(w.get("quad"), 8)} for w in words if isinstance(w, dict)]
        problem = ""
        if [w["text"] for w in ws] != want:
            problem = "the word texts are not the line's words in order"
        elif any(w["quad"] is None for w in ws) or validate_regions(ws, width, height):
            problem = "the word quads are not valid"
        elif isinstance(r["quad"], list) and not all(_inside(w["quad"], r["quad"]) for w in ws):
            problem = "a word quad leaves the line's quad"
        if problem:
            notes.append(f"{r['text']!r}: word regions dropped ({problem})")
            r["words"] = []
        else:
            r["words"] = ws
    return regions, errors, notes


# --- the planner --------------------------------------------------------------------------------------------------
class TextRegionPlanner:
    """Two-turn text-region planning with one client, one recorder and a repair budget (see the module docstring)."""

    def __init__(self, client: LLMClient, *, recorder: Recorder | None = None, kind: str | None = None,
                 repairs: int = 2, temperature: float = 0.2, max_tokens: int = 1024,
                 limits: TextRegionLimits | None = None):
        if not (0 <= repairs <= 8):
            raise ValueError("repairs must be in 0..8")
        self.client = client
        self.recorder = recorder or NullRecorder()
        self.kind = kind or getattr(client, "kind", "llm")
        self.repairs = repairs
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.limits = limits or TextRegionLimits()
        self.templates = {t: prompts.version(t) for t in TEMPLATES}

    def identity(self) -> dict:
        return {"planner": "text_regions", "kind": self.kind, "repairs": self.repairs,
                "temperature": self.temperature, "templates": dict(self.templates), "limits": asdict(self.limits)}

    # exchanges ---------------------------------------------------------------------------------------------------
    def _ask(self, kind: str, messages: list[dict], schema: dict, seed: int) -> Completion:
        """One JSON call through the recorder; raises LLMError on transport failure."""
        req = JSONRequest(messages, schema, 1, self.temperature, self.max_tokens, seed, "text_regions")
        request = json.loads(json.dumps({
            "client": self.kind, "model": self.client.model, "messages": _recordable(messages), "schema": schema,
            "n": 1,
            "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": seed,
            "templates": self.templates,
        }, sort_keys=True, ensure_ascii=False))
        recorded = self.recorder.lookup(kind, request)
        if recorded is not None:
            comps = [Completion.from_dict(c) for c in recorded.get("completions", [])]
        else:
            out = self.client.complete_json_batch([req])[0]
            comps = getattr(out, "completions", None) if isinstance(out, LLMError) else out
            if comps is None:  # a transport error with no answer in it
                raise out  # type: ignore[misc]
            comps = list(comps)
            self.recorder.record(kind, request, {"completions": [c.to_dict() for c in comps]})
        return comps[0] if comps else Completion("", "")

    # plan --------------------------------------------------------------------------------------------------------
    def plan(self, bp: Blueprint, *, add_plausible: bool = False, image=None,
             wanted: Sequence[str] = ()) -> TextRegionPlan:
        """``image``: the scene as painted, before its text (a PIL image) for a VLM client; None plans blind (said
        in ``notes``). ``wanted``: what the prompt asks text on without giving it (:func:`asks_for_text`): the
        LLM proposes the content."""
        from agent.recipes.scene_text import text_regions as box_regions

        fallback = [TextRegion(r["text"], list(r["quad"]), r.get("style", "")) for r in box_regions(bp)]
        wanted = [] if bp.texts else [w for w in wanted if w][: self.limits.max_extra]
        if not bp.texts and not wanted:
            return TextRegionPlan(fallback, "fallback", "the blueprint has no texts")
        url = image_part(image)["image_url"]["url"] if image is not None else ""
        sha = hashlib.sha256(url.encode()).hexdigest() if url else ""
        notes = [] if url else [BLIND_NOTE]
        if wanted:
            notes.append(f"text content proposed by the LLM (zero-shot, not SceneVTG's fine-tuned TRCG) for: "
                         f"{', '.join(wanted)}")
        try:
            plan = self._plan(bp, add_plausible or bool(wanted), url, list(wanted))
        except _GiveUp as err:
            reason = str(err)
        except LLMError as err:
            reason = f"the LLM call failed: {err}"
        else:
            plan.notes = notes + plan.notes
            plan.image_sha256 = sha
            return plan
        log.warning("text regions: falling back to the blueprint's boxes: %s", reason)
        if wanted:
            notes.append(f"no text content was proposed ({reason}); the scene gets no text")
        return TextRegionPlan(fallback, "fallback", reason, self.repairs, notes, sha)

    def _plan(self, bp: Blueprint, add_plausible: bool, image_url: str = "",
              wanted: Sequence[str] = ()) -> TextRegionPlan:
        W, H = bp.canvas.width, bp.canvas.height
        user_texts = list(dict.fromkeys(t.content for t in bp.texts))
        styles = {t.content: t.style for t in bp.texts}
        seed = bp.seed * 256
        budget = self.repairs
        system, _ = prompts.render("text_regions_system")
        objects = "\n".join(f"- {o.name}: {[round(v, 3) for v in o.box]}" for o in bp.objects) or "- (none)"
        extra = (f"You may add up to {self.limits.max_extra} short extra texts that would plausibly be written in"
                 f" this scene (at most {self.limits.extra_chars} characters each) in \"extra\"; or leave it empty."
                 if add_plausible and self.limits.max_extra else "")
        if wanted:
            extra = (f"The prompt ({json.dumps(bp.prompt[:200], ensure_ascii=False)}) asks for text on: "
                     f"{'; '.join(wanted)}, but does not say what it reads. Propose the words that would plausibly"
                     f" be written there (at most {self.limits.extra_chars} characters each) in \"extra\", one item"
                     f" per text, at least {len(wanted)}.")
        seen = ("The attached picture is this image as painted so far, before any text: put each line on a surface"
                " of it where such text would be written, not over the main objects.\n" if image_url else "")
        user1, _ = prompts.render(
            "text_regions_user1", width=W, height=H, background=bp.background or "(not described)",
            style=bp.style or "photo", objects=objects, extra=extra, seen=seen,
            texts="\n".join(f"- {json.dumps(t, ensure_ascii=False)}" for t in user_texts) or "- (none given)")
        content1 = ([{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": user1}]
                    if image_url else user1)
        base1 = [{"role": "system", "content": system}, {"role": "user", "content": content1}]
        schema1 = turn1_schema(user_texts, self.limits, add_plausible=add_plausible, min_extra=len(wanted))

        # turn 1: lines (content + point + size)
        messages, attempt = base1, 0
        while True:
            c = self._ask(KIND_TURN1, messages, schema1, seed + attempt)
            try:
                lines, errors = parse_turn1(c.text, user_texts, self.limits, add_plausible=add_plausible,
                                            min_extra=len(wanted))
            except ValueError as err:
                lines, errors = [], [str(err)]
            if c.finish_reason == "length":
                errors = [f"the answer was cut off at the token limit ({self.max_tokens} tokens)"]
            if not errors:
                break
            if budget <= 0:
                raise _GiveUp(f"turn 1 gave no usable lines: {errors[0]}")
            budget, attempt = budget - 1, attempt + 1
            messages = base1 + [{"role": "assistant", "content": c.text},
                                {"role": "user", "content": _repair(errors)}]

        # turn 2: quads (+ optional words), in the same conversation
        lines_json = json.dumps([{k: ln[k] for k in ("text", "center", "size")} for ln in lines],
                                ensure_ascii=False, separators=(",", ":"))
        user2, _ = prompts.render("text_regions_user2", lines=lines_json)
        base2 = base1 + [{"role": "assistant", "content": json.dumps(
            {"lines": [{k: ln[k] for k in ("text", "center", "size")} for ln in lines]},
            ensure_ascii=False, separators=(",", ":"))}, {"role": "user", "content": user2}]
        schema2 = turn2_schema([ln["text"] for ln in lines], self.limits)
        messages = base2
        while True:
            c = self._ask(KIND_TURN2, messages, schema2, seed + 128 + attempt)
            try:
                regions, errors, notes = parse_turn2(c.text, lines, W, H)
            except ValueError as err:
                regions, errors, notes = [], [str(err)], []
            if c.finish_reason == "length":
                errors = [f"the answer was cut off at the token limit ({self.max_tokens} tokens)"]
            if not errors:
                break
            if budget <= 0:
                more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
                raise _GiveUp(f"turn 2 gave no valid quads after {self.repairs} repairs: {errors[0]}{more}")
            budget, attempt = budget - 1, attempt + 1
            messages = base2 + [{"role": "assistant", "content": c.text},
                                {"role": "user", "content": _repair(errors)}]
        plausible = {ln["text"] for ln in lines if ln["plausible"]}
        out = [TextRegion(r["text"], [round(v, 4) for v in r["quad"]], styles.get(r["text"], ""),
                          [{"text": w["text"], "quad": [round(v, 4) for v in w["quad"]]} for w in r["words"]],
                          r["text"] in plausible) for r in regions]
        proposed = [r.text for r in out if r.plausible] if wanted else []
        return TextRegionPlan(out, "llm", "", self.repairs - budget, notes, proposed=proposed)


BLIND_NOTE = ("text regions planned blind: the planner saw no image (the profile has no VLM), only the object"
              " boxes; SceneVTG's planner looks at the scene")


class _GiveUp(Exception):
    pass


def _recordable(messages: list[dict]) -> list[dict]:
    """Messages with data-URI images replaced by their SHA-256 (``llm.jsonl`` stays small; replays still match)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [{"type": "image", "sha256": hashlib.sha256(p["image_url"]["url"].encode()).hexdigest()}
                       if p.get("type") == "image_url" else p for p in content]
        out.append({"role": m["role"], "content": content})
    return out


# what carries text in a picture: "a shop sign", "a poster for a jazz night", "a neon sign"
_CARRIERS = (r"sign|signs|signboard|signage|poster|posters|banner|banners|billboard|billboards|placard|plaque|"
             r"label|labels|menu|menus|marquee|flyer|flyers|headline|caption|graffiti|slogan|logo|book cover|"
             r"cover|t-shirt slogan|street sign|storefront|shopfront|shop front|name tag|nameplate|ticket")
_ASK = re.compile(
    rf"\b(?:(?P<mod>[a-z][a-z-]*)\s+)?(?P<what>{_CARRIERS})\b"
    r"(?P<rest>\s+(?:for|of|about|advertising|announcing|saying|with)\s+[^,.;:!?\"]{1,60})?", re.IGNORECASE)
_NOT_MOD = {"a", "an", "the", "and", "with", "of", "on", "in", "at", "some", "two", "three", "big", "small", "old"}


def asks_for_text(prompt: str) -> list[str]:
    """What the prompt asks text on without saying what it reads ("a shop sign" -> ["shop sign"]); [] when it
    quotes any text (the quoted words are the texts) or names no text carrier. A rule reader: say what it found."""
    if not prompt or re.search(r"[\"“”«»]|'[^']+'", prompt):
        return []
    found: list[str] = []
    for m in _ASK.finditer(prompt):
        mod = m.group("mod") or ""
        what = (mod + " " if mod and mod.lower() not in _NOT_MOD else "") + m.group("what")
        rest = (m.group("rest") or "").strip()
        rest = re.split(r"\s+(?:and|with|in|on|at|next to|under|beside)\s+", rest, maxsplit=1)[0] if rest else ""
        item = f"{what} {rest}".strip().lower()
        if item not in found:
            found.append(item)
    return found[:4]


def _repair(errors: Sequence[str]) -> str:
    return prompts.render("text_regions_repair", errors="\n".join(f"- {e}" for e in list(errors)[:8]))[0]


def plan_text_regions(client: LLMClient, blueprint: Blueprint, *, add_plausible: bool = False,
                      recorder: Recorder | None = None, limits: TextRegionLimits | None = None,
                      repairs: int = 2, temperature: float = 0.2, max_tokens: int = 1024, image=None,
                      wanted: Sequence[str] = ()) -> TextRegionPlan:
    """Plan the blueprint's text regions with the two-turn protocol; never raises for a bad LLM answer."""
    planner = TextRegionPlanner(client, recorder=recorder, repairs=repairs, temperature=temperature,
                                max_tokens=max_tokens, limits=limits)
    return planner.plan(blueprint, add_plausible=add_plausible, image=image, wanted=wanted)
