"""The preview profile's chat parser: one message → an :class:`agent.edits.EditPlan`, by rules, no model.

It understands short imperative edits, one or several joined by "and" / ";" / ", then":

    make the cat bigger · make the apples much smaller · enlarge the lamp
    move the lamp to the left · move the cat a bit up · put the vase next to the lamp
    the sign should say CLOSED · change the text to "SALE" · replace OPEN with CLOSED
    add a dog next to the bench · add two birds above the tree · remove the lamp
    make the cat red · paint the vase blue and white · the cat should be fluffy
    warmer light · make it brighter · more contrast · reset the look
    watercolor style · change the background to a beach at night · try again (new seed) · seed 42
    undo

Objects are named the way the blueprint names them ("apple", "apple 2"); "the apples" means all of them,
"the left apple" / "the second apple" / "apple 2" one of them, and an ambiguous "the apple" is an error that
lists the choices. Anything it cannot read is an :class:`agent.edits.EditError` that says what it can read.
"""

from __future__ import annotations

import re

from agent.blueprint import Blueprint
from agent.edits import (
    AddObject,
    AddText,
    Adjust,
    ClearAdjustments,
    DescribeObject,
    EditError,
    EditPlan,
    MoveObject,
    RemoveObject,
    RemoveText,
    ResizeObject,
    SceneState,
    SetBackground,
    SetBox,
    SetSeed,
    SetStyle,
    SetText,
    apply_edits,
)
from planners.lexicon import COLOURS, NUMBERS, singular
from planners.placement import overlap, place, place_sized

EXAMPLES = (
    "'make the cat bigger', 'move the lamp to the left', 'the sign should say CLOSED', "
    "'add a dog next to the bench', 'make the cat red', 'remove the lamp', 'warmer light', "
    "'watercolor style', 'try again', 'undo'"
)

_QUOTE = r"[\"'“”‘’«»]"
_DET = r"(?:the|a|an|that|this|my|our|all(?: of)?(?: the)?|both(?: of)?(?: the)?|every|each)\s+"
_AMOUNT = {
    "a tiny bit": 0.5,
    "a little bit": 0.5,
    "a bit": 0.5,
    "a little": 0.5,
    "slightly": 0.5,
    "somewhat": 0.5,
    "much": 1.8,
    "a lot": 1.8,
    "way": 1.8,
    "far": 1.8,
    "very": 1.5,
    "even": 1.0,
    "all the way": 3.0,
}
_AMOUNT_RE = r"(?P<amt>" + "|".join(sorted(map(re.escape, _AMOUNT), key=len, reverse=True)) + r")?\s*"

_BIGGER = {"bigger", "larger", "taller", "wider", "huge", "huger", "giant", "enormous", "large", "big", "longer"}
_SMALLER = {"smaller", "tinier", "tiny", "small", "little", "shorter", "narrower", "thinner", "littler"}
_STYLES = (
    "watercolor",
    "watercolour",
    "pencil sketch",
    "sketch",
    "cartoon",
    "pixel art",
    "black and white",
    "black-and-white",
    "sepia",
    "oil painting",
    "photorealistic",
    "photo",
    "anime",
    "comic",
    "impressionist",
    "pastel",
    "line art",
    "ink drawing",
    "3d render",
    "low poly",
    "noir",
    "vintage",
    "digital art",
)
_TIMES = (
    "night",
    "sunset",
    "sunrise",
    "dusk",
    "dawn",
    "midnight",
    "noon",
    "daytime",
    "daylight",
    "winter",
    "summer",
    "autumn",
    "spring",
    "rain",
    "snow",
    "fog",
)
_LOOK_EFFECTS = {
    "warmer",
    "warm",
    "cooler",
    "cool",
    "colder",
    "cold",
    "brighter",
    "bright",
    "brighten",
    "lighter",
    "darker",
    "dark",
    "darken",
    "dimmer",
    "dim",
    "contrast",
    "saturated",
    "desaturated",
    "saturation",
    "vivid",
    "vibrant",
    "colorful",
    "colourful",
    "muted",
    "dull",
    "duller",
    "softer",
    "soft",
    "crisper",
    "crisp",
    "punchy",
    "moody",
    "moodier",
    "golden",
    "cozy",
    "cosy",
    "sepia",
    "monochrome",
    "vintage",
    "faded",
    "hazy",
    "dramatic",
    "sunny",
    "gloomy",
}
_LOOK_FILLER = {
    "make",
    "it",
    "the",
    "image",
    "picture",
    "scene",
    "photo",
    "light",
    "lighting",
    "lights",
    "colors",
    "colours",
    "color",
    "colour",
    "tones",
    "tone",
    "mood",
    "atmosphere",
    "more",
    "less",
    "much",
    "very",
    "slightly",
    "a",
    "bit",
    "little",
    "lot",
    "way",
    "please",
    "should",
    "be",
    "feel",
    "look",
    "and",
    "with",
    "black",
    "white",
    "b&w",
    "give",
    "somewhat",
    "even",
    "overall",
    "too",
    "is",
    "hour",
    "blue",
    "tint",
    "tinted",
    "use",
    "add",
    "higher",
    "lower",
    "stronger",
    "weaker",
}
_UNDO = re.compile(
    r"^(?:undo|undo (?:that|it|this|the last (?:change|edit|step|turn))|go back|revert(?: that)?|"
    r"take (?:that|it) back|never ?mind|back)$"
)


def parse_message(message: str, state: SceneState) -> EditPlan:
    """Read one chat message against the current state. Raises EditError with a one-line explanation."""
    text = re.sub(r"\s+", " ", (message or "").strip())
    if not text:
        raise EditError("the message is empty; say what to change, e.g. " + EXAMPLES)
    if len(text) > 2000:
        raise EditError("the message is longer than 2000 characters; describe one change at a time")
    low = _norm(text)
    if _UNDO.match(low):
        return EditPlan(action="undo")
    ops = None
    parts = _split(text)
    if len(parts) > 1:  # several edits ("make the cat bigger and move the lamp left"), unless a part is not one
        ops, working = [], state
        for part in parts:
            try:
                got = _clause(part, working)
            except EditError:
                got = None
            if got is None:
                ops = None
                break
            ops += got
            working = _preview(working, got)
    if ops is None:
        ops = _clause(text, state)  # one edit whose words include "and" ("paint it black and white")
    if not ops:
        raise EditError(f"I did not understand '{text}'; I can read edits like {EXAMPLES}")
    return EditPlan(action="edit", ops=ops)


def _preview(state: SceneState, ops: list) -> SceneState:
    """Apply ops so that a later clause sees earlier ones ("add a dog and make it bigger")."""
    return apply_edits(state, ops)[0]


def _norm(text: str) -> str:
    low = text.lower().replace("’", "'").strip()
    low = re.sub(r"^(?:please|pls|ok|okay|now|and|then|also|can you|could you|would you|let's|lets)\b[ ,]*", "", low)
    low = re.sub(r"^(?:please|now|then|also)\b[ ,]*", "", low)
    low = re.sub(r"[ ,]*\b(?:please|thanks|thank you)$", "", low)
    return low.rstrip(" .!?").strip()


def _split(text: str) -> list[str]:
    """Split on ';', ', then', ' and then ', ' and ', ', ' — never inside quotes."""
    parts, buf, quote = [], "", None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            buf += ch
            if ch == quote or (quote in "“‘" and ch in "”’"):
                quote = None
            i += 1
            continue
        if ch in '"“‘«':
            quote = {"“": "”", "‘": "’", "«": "»"}.get(ch, ch)
            buf += ch
            i += 1
            continue
        m = re.match(r"(?:;|\.\s|,\s*and then\s|,\s*then\s|\s+and then\s|\s+and\s|,\s)", text[i:], re.I)
        if m:
            parts.append(buf)
            buf = ""
            i += m.end()
            continue
        buf += ch
        i += 1
    parts.append(buf)
    return [p.strip() for p in parts if p.strip()]


def _clause(text: str, state: SceneState) -> list | None:
    """The first handler that recognises the clause wins; their order resolves overlaps ("make it brighter" is a
    look adjustment, "make the cat brighter" a description)."""
    low = _norm(text)
    for handler in (_text, _seed, _look, _style, _background, _add, _remove, _move, _resize, _recolor, _describe):
        ops = handler(text, low, state)
        if ops is not None:
            return ops
    return None


# --- scene text ---------------------------------------------------------------------------------------------------
def _unquote(s: str) -> str:
    s = s.strip().rstrip(".!")
    m = re.match(rf"^{_QUOTE}(.+?){_QUOTE}$", s)
    return (m.group(1) if m else s).strip()


def _text(text: str, low: str, state: SceneState) -> list | None:
    bp = state.blueprint
    # "replace OPEN with CLOSED", "change 'OPEN' to 'CLOSED'"
    m = re.match(
        rf"^(?:replace|change|swap)\s+(?P<old>{_QUOTE}.+?{_QUOTE}|\S+)\s+(?:with|to|for|into)\s+(?P<new>.+)$",
        text.strip(),
        re.I,
    )
    if m and bp.texts:
        old = _unquote(m.group("old"))
        if any(old.lower() in t.content.lower() for t in bp.texts):
            return [SetText(old=old, content=_unquote(m.group("new")))]
    # "change the text to X", "text: X", "the sign should say X", "make the banner read X"
    m = re.match(
        r"^(?:(?:please|now|and|then)\s+)?(?:change|set|make)\s+(?:the\s+)?(?:text|words?|writing|caption|lettering)"
        r"(?:\s+on\s+the\s+\w+)?\s+(?:to|say|read)\s+(?P<new>.+)$",
        text.strip(),
        re.I,
    ) or re.match(r"^(?:the\s+)?(?:text|caption)\s*[:=]\s*(?P<new>.+)$", text.strip(), re.I)
    carrier = None
    if not m:
        m = re.match(
            r"^(?:(?:please|now|and|then)\s+)?(?:make\s+|have\s+|let\s+)?(?:the\s+|that\s+)?(?P<carrier>[\w\s-]{0,40}?)\s*"
            r"(?:should\s+|must\s+|to\s+|will\s+|needs\s+to\s+|could\s+)?"
            r"(?:say|says|saying|read|reads|reading|show|shows|display|displays|spell|spells)\s*:?\s+(?P<new>.+)$",
            text.strip(),
            re.I,
        )
        if not m:
            return None
        carrier = (m.group("carrier") or "").strip().lower() or None
    content = _unquote(m.group("new"))
    if not content:
        return None
    verb = re.search(r"\b(show|shows|display|displays)\b", text, re.I)
    if carrier is not None and verb and not (re.match(_QUOTE, m.group("new").strip()) or content.isupper()):
        return None  # "the cat should show its teeth" is not scene text; quoted or capitals are
    if bp.texts:
        old = ""
        if carrier and len(bp.texts) > 1:  # the text inside the named object's box
            names = _match_objects(carrier, bp, quiet=True)
            if names:
                box = next(o.box for o in bp.objects if o.name == names[0])
                best = max(bp.texts, key=lambda t: overlap(t.box, box))
                old = best.content
        return [SetText(old=old, content=content)]
    box = [0.25, 0.04, 0.75, 0.16]
    if carrier:
        names = _match_objects(carrier, bp, quiet=True)
        if names:
            ob = next(o.box for o in bp.objects if o.name == names[0])
            mx, my = (ob[2] - ob[0]) * 0.1, (ob[3] - ob[1]) * 0.2
            box = [ob[0] + mx, ob[1] + my, ob[2] - mx, ob[3] - my]
    return [AddText(content=content, box=box)]


# --- seed, look, style, background ------------------------------------------------------------------------------
def _seed(text: str, low: str, state: SceneState) -> list | None:
    m = re.match(r"^(?:use |set |change )?(?:the )?seed(?: to| =|:)? ?(\d{1,10})$", low)
    if m:
        seed = int(m.group(1))
        if seed > 2**32 - 1:
            raise EditError(f"seed {seed} is too large; use 0 to {2**32 - 1}")
        return [SetSeed(seed=seed)]
    if re.match(
        r"^(?:try (?:it )?again|another (?:one|version|take|variation)|re-?roll|regenerate|re-?do it|"
        r"(?:a |use a )?(?:different|new|another) seed|shuffle|surprise me|again)$",
        low,
    ):
        return [SetSeed(seed=(state.blueprint.seed + 1) % 2**32)]
    return None


def _look(text: str, low: str, state: SceneState) -> list | None:
    if re.match(r"^(?:reset|clear|remove|undo) (?:the |all )?(?:look|adjustments?|colou?r grading|filters?)$", low):
        return [ClearAdjustments()]
    words = re.findall(r"[a-z&]+", low)
    if not words or not any(w in _LOOK_EFFECTS for w in words):
        return None
    if not all(w in _LOOK_EFFECTS or w in _LOOK_FILLER for w in words):
        return None
    phrase = re.sub(r"^(?:make|give)\s+(?:it|the (?:image|picture|scene|photo))\s+", "", low)
    phrase = re.sub(r"^(?:the )?(?:light|lighting|colou?rs|mood) should (?:be|feel|look) ", "", phrase)
    return [Adjust(adjustment=phrase[:80])]


def _style(text: str, low: str, state: SceneState) -> list | None:
    m = re.match(r"^(?:(?:change|set|switch) (?:the )?style to|style\s*[:=])\s*(?P<s>.+)$", low)
    if m:
        return [SetStyle(style=m.group("s").strip()[:120])]
    styles = "|".join(re.escape(s) for s in sorted(_STYLES, key=len, reverse=True))
    m = re.match(
        rf"^(?:(?:make|render|draw|paint|redo) it|turn it into|do it|as|in)?\s*(?:as |in )?(?:a |an )?"
        rf"(?P<s>{styles})(?: style| painting| drawing| art| version| look)?$",
        low,
    )
    if m:
        s = m.group("s")
        return [
            SetStyle(style=f"{s} style" if s not in ("pixel art", "oil painting", "digital art", "line art") else s)
        ]
    return None


def _background(text: str, low: str, state: SceneState) -> list | None:
    bg_now = state.blueprint.background
    m = (
        re.match(
            r"^(?:change|set|make|switch|turn) (?:the )?(?:background|backdrop|setting|scenery|location) "
            r"(?:to|into|as|be) (?P<bg>.+)$",
            low,
        )
        or re.match(r"^(?:the )?(?:background|backdrop)\s*(?:[:=]|should be|is) (?P<bg>.+)$", low)
        or re.match(
            r"^(?:put|set|move|place) (?:it|everything|them|the scene|it all) (?:in|on|at|into|inside) (?P<bg>.+)$", low
        )
    )
    if m:
        return [SetBackground(background=m.group("bg").strip()[:400])]
    times = "|".join(_TIMES)
    m = re.match(
        rf"^(?:make it|set it|change it to|turn it into|it should be)? ?(?:at |in |during |in the )?(?:a |the )?"
        rf"(?P<t>{times})(?:time| ?-?time| scene)?$",
        low,
    )
    if m:
        t = m.group("t")
        base = re.sub(rf",? (?:at|in|during) (?:the )?(?:{times})\b", "", bg_now).strip()
        prep = "at" if t in ("night", "sunset", "sunrise", "dusk", "dawn", "midnight", "noon") else "in"
        return [SetBackground(background=(f"{base}, {prep} {t}" if base else f"{prep} {t}")[:400])]
    return None


# --- objects ----------------------------------------------------------------------------------------------------
_REL = (
    r"(?P<rel>next to|beside|near|close to|by|to the left of|left of|to the right of|right of|on top of|above|over|"
    r"on|below|beneath|under|underneath|in front of|behind|between)"
)
_COUNT_WORDS = {
    "a": 1,
    "an": 1,
    "another": 1,
    "one": 1,
    "some": 2,
    "a few": 3,
    "few": 3,
    "several": 3,
    "a couple of": 2,
    **{k: v for k, v in NUMBERS.items() if v <= 6},
}


def _add(text: str, low: str, state: SceneState) -> list | None:
    m = re.match(
        r"^(?:add|put|place|include|draw|insert|give me|there should be|i want|we need|paint) "
        r"(?P<np>.+?)(?: " + _REL + r" (?:the |a |an )?(?P<ref>.+?))?"
        r"(?: (?:to|in|into) the (?:picture|image|scene))?$",
        low,
    )
    if not m:
        return None
    np_text = m.group("np").strip()
    cm = re.match(
        r"^(?P<count>a couple of|a few|"
        + "|".join(sorted(_COUNT_WORDS, key=len, reverse=True))
        + r"|\d+) (?P<rest>.+)$",
        np_text,
    )
    if not cm:
        return None  # "add more contrast" etc. is not an object
    count_word, rest = cm.group("count"), cm.group("rest").strip()
    count = int(count_word) if count_word.isdigit() else _COUNT_WORDS.get(count_word, 1)
    if not 1 <= count <= 6:
        raise EditError(f"add at most 6 objects at once (asked for {count})")
    words = rest.split()
    if not words:
        return None
    head = singular(words[-1]) if count > 1 else words[-1]
    description = " ".join(words[:-1] + [head]) if count > 1 else rest
    bp = state.blueprint
    ref_box = None
    rel = m.group("rel")
    if m.group("ref"):
        names = _match_objects(m.group("ref"), bp)
        ref_box = next(o.box for o in bp.objects if o.name == names[0])
    taken = {o.name for o in bp.objects}
    boxes = [o.box for o in bp.objects]
    ops = []
    for k in range(count):
        name = head
        n = 2
        while name in taken:
            name, n = f"{head} {n}", n + 1
        taken.add(name)
        box = place(head, rel, ref_box, boxes, k)
        boxes.append(box)
        ops.append(AddObject(name=name, description=description, box=box))
    return ops


def _remove(text: str, low: str, state: SceneState) -> list | None:
    m = re.match(
        r"^(?:remove|delete|erase|get rid of|take out|take away|drop|lose|hide|no more|no|without) (?P<obj>.+?)"
        r"(?: from the (?:picture|image|scene))?$",
        low,
    )
    if not m:
        return None
    obj = m.group("obj")
    if re.match(r"^(?:the )?(?:text|sign text|caption|writing|words|lettering)$", obj):
        if not state.blueprint.texts:
            raise EditError("the picture has no text to remove")
        return [_remove_text()]
    if re.match(r"^(?:the )?(?:look|adjustments?|filters?)$", obj):
        return [ClearAdjustments()]
    return [RemoveObject(name=n) for n in _match_objects(obj, state.blueprint, plural_ok=True)]


def _remove_text():
    return RemoveText()


_DIRS = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "upwards": (0, -1),
    "higher": (0, -1),
    "top": (0, -1),
    "down": (0, 1),
    "downwards": (0, 1),
    "lower": (0, 1),
    "bottom": (0, 1),
    "center": (0, 0),
    "centre": (0, 0),
    "middle": (0, 0),
}


def _move(text: str, low: str, state: SceneState) -> list | None:
    bp = state.blueprint
    m = re.match(
        r"^(?:move|shift|put|place|slide|push|nudge|bring|drag|set) (?:the )?(?P<obj>.+?) "
        + _REL
        + r" (?:the |a |an )?(?P<ref>.+)$",
        low,
    )
    if m and m.group("rel") != "between":
        names = _match_objects(m.group("obj"), bp, plural_ok=True)
        ref_names = _match_objects(m.group("ref"), bp)
        ref_box = next(o.box for o in bp.objects if o.name == ref_names[0])
        others = [o.box for o in bp.objects if o.name not in names]
        ops = []
        for k, name in enumerate(names):
            box = next(o.box for o in bp.objects if o.name == name)
            w, h = box[2] - box[0], box[3] - box[1]
            placed = place_sized(w, h, m.group("rel"), ref_box, others, k)
            others.append(placed)
            ops.append(SetBox(name=name, box=placed))
        return ops
    m = re.match(
        r"^(?:move|shift|put|place|slide|push|nudge|bring|drag) (?:the )?(?P<obj>.+?) "
        + _AMOUNT_RE
        + r"(?:over )?(?:to(?:wards?)? (?:the )?|in the |into the )?"
        r"(?P<dir>left|right|up|upwards|down|downwards|higher|"
        r"lower|top|bottom|center|centre|middle)(?: side| edge| corner| a bit| slightly)?"
        r"(?: of the (?:picture|image|canvas|scene|frame))?$",
        low,
    ) or re.match(
        r"^(?:the )?(?P<obj>.+?) (?:should be |should go |goes )?"
        + _AMOUNT_RE
        + r"(?:more )?(?:to|on|at|towards) the (?P<dir>left|right|top|bottom|center|centre|middle)$",
        low,
    )
    if not m:
        return None
    names = _match_objects(m.group("obj"), bp, plural_ok=True)
    amount = _AMOUNT.get((m.group("amt") or "").strip(), 1.0)
    direction = m.group("dir")
    ops = []
    for name in names:
        box = next(o.box for o in bp.objects if o.name == name)
        if direction in ("center", "centre", "middle"):
            dx = round(0.5 - (box[0] + box[2]) / 2, 4)
            ops.append(MoveObject(name=name, dx=dx, dy=0.0))
            continue
        sx, sy = _DIRS[direction]
        step = 0.2 * amount
        if direction in ("top", "bottom") or "edge" in low or "all the way" in low:
            step = 1.0  # "to the top": as far as it goes (clamped)
        ops.append(MoveObject(name=name, dx=round(sx * step, 4), dy=round(sy * step, 4)))
    return ops


def _resize(text: str, low: str, state: SceneState) -> list | None:
    sizes = "|".join(sorted(_BIGGER | _SMALLER, key=len, reverse=True))
    m = (
        re.match(
            r"^(?:make|making|have) (?:the )?(?P<obj>.+?) (?:look )?"
            + _AMOUNT_RE
            + rf"(?P<dir>{sizes})(?: than (?:it is|before|now))?$",
            low,
        )
        or re.match(
            r"^(?:the )?(?P<obj>.+?) "
            r"(?:should be|must be|needs to be|could be|is too|looks too|is a bit too|is way too|is) "
            + _AMOUNT_RE
            + rf"(?P<dir>{sizes})$",
            low,
        )
        or re.match(
            r"^(?P<verb>enlarge|grow|shrink|scale up|scale down|upsize|downsize|magnify) (?:the )?(?P<obj>.+?)"
            r"(?: (?P<amt>a bit|a little|slightly|a lot))?$",
            low,
        )
        or re.match(
            r"^(?:make )?(?:the )?(?P<obj>.+?) (?P<times>twice|three times|half|double)"
            r" (?:as big|the size|as large|as small|size)$",
            low,
        )
    )
    if not m:
        return None
    groups = m.groupdict()
    amount = _AMOUNT.get((groups.get("amt") or "").strip(), 1.0)
    if groups.get("times"):
        scale = {"twice": 2.0, "double": 2.0, "three times": 3.0, "half": 0.5}[groups["times"]]
    else:
        word = groups.get("dir") or ""
        bigger = word in _BIGGER or groups.get("verb") in ("enlarge", "grow", "scale up", "upsize", "magnify")
        if "too" in low.split():
            bigger = not bigger  # "the cat is too small" → bigger
        scale = 1 + 0.3 * amount if bigger else 1 / (1 + 0.3 * amount)
    return [
        ResizeObject(name=n, scale=round(scale, 4))
        for n in _match_objects(groups["obj"], state.blueprint, plural_ok=True)
    ]


def _colour_phrase(words: list[str]) -> bool:
    return (
        bool(words)
        and all(w in COLOURS or w in ("and", "with", "-") for w in words)
        and any(w in COLOURS for w in words)
    )


def _recolor(text: str, low: str, state: SceneState) -> list | None:
    m = re.match(r"^(?:make|paint|turn|colou?r|change|dye|recolou?r) (?:the )?(?P<rest>.+)$", low)
    if m:
        rest = m.group("rest")
    else:
        m = re.match(
            r"^(?:the )?(?P<obj>.+?) (?:should be|must be|needs to be|could be|is|should look) (?P<col>[a-z -]+)$", low
        )
        if not m:
            return None
        rest = f"{m.group('obj')} {m.group('col')}"
    words = rest.replace("-", " ").split()
    k = len(words)
    while k > 0 and (words[k - 1] in COLOURS or words[k - 1] == "and"):
        k -= 1
    col_words, obj_words = words[k:], words[:k]
    while col_words and col_words[0] == "and":
        obj_words, col_words = obj_words + ["and"], col_words[1:]
    while obj_words and obj_words[-1] in ("to", "into", "in", "all"):
        obj_words = obj_words[:-1]
    if not obj_words or not _colour_phrase(col_words):
        return None
    colour = " ".join(col_words)
    names = _match_objects(" ".join(obj_words), state.blueprint, plural_ok=True)
    ops = []
    for name in names:
        obj = next(o for o in state.blueprint.objects if o.name == name)
        ops.append(
            DescribeObject(name=name, description=_with_colour(obj.description or _base(obj.name), colour, obj.name))
        )
    return ops


def _with_colour(description: str, colour: str, name: str) -> str:
    """Replace the colour words of a description (the first run of them), or put the colour before the noun."""
    words = description.split()
    idx = [i for i, w in enumerate(words) if w.lower().strip(",.") in COLOURS]
    if idx:
        start = idx[0]
        end = start
        while end + 1 < len(words) and (
            words[end + 1].lower().strip(",.") in COLOURS or words[end + 1].lower() == "and"
        ):
            end += 1
        return _article(" ".join(words[:start] + [colour] + words[end + 1 :]))[:400]
    if words and words[0].lower() in ("a", "an", "the"):  # colour first, as English orders adjectives
        return _article(" ".join([words[0], colour] + words[1:]))[:400]
    return f"{colour} {description}"[:400]


def _article(text: str) -> str:
    """Fix 'a'/'an' before the word that now follows it ("a orange cat" → "an orange cat")."""
    return re.sub(r"\b([Aa])n? (?=(\w))", lambda m: m.group(1) + ("n " if m.group(2).lower() in "aeiou" else " "), text)


def _describe(text: str, low: str, state: SceneState) -> list | None:
    m = (
        re.match(
            r"^(?:make|have) (?:the )?(?P<obj>.+?)(?: look| appear| seem)? (?P<adj>[a-z-]+(?: and [a-z-]+)?)$", low
        )
        or re.match(r"^(?:the )?(?P<obj>.+?) (?:should be|should look|must be|needs to be) (?P<adj>.+)$", low)
        or re.match(
            r"^(?:the )?(?P<obj>.+?) (?P<with>should (?:have|wear|hold)|(?:is )?(?:wearing|holding)) (?P<adj>.+)$", low
        )
        or re.match(r"^(?:give|put) (?:the )?(?P<obj>.+?) (?P<with2>a|an|some) (?P<adj>.+)$", low)
    )
    if not m:
        return None
    groups = m.groupdict()
    try:
        names = _match_objects(groups["obj"], state.blueprint, plural_ok=True)
    except EditError:
        if groups.get("with") or groups.get("with2") or "should" in low:
            raise
        return None
    adj = groups["adj"].strip()
    ops = []
    for name in names:
        obj = next(o for o in state.blueprint.objects if o.name == name)
        desc = obj.description or _base(obj.name)
        if groups.get("with"):
            verb = re.sub(r"^(?:should |is )", "", groups["with"])
            verb = {"have": "with", "wear": "wearing", "hold": "holding"}.get(verb, verb)
            new = f"{desc} {verb} {adj}"
        elif groups.get("with2"):
            new = f"{desc} with {groups['with2']} {adj}"
        else:
            new = _with_adjective(desc, adj, name)
        ops.append(DescribeObject(name=name, description=new[:400]))
    return ops


def _with_adjective(description: str, adj: str, name: str) -> str:
    words = description.split()
    if words and words[0].lower() in ("a", "an", "the"):
        article = "the" if words[0].lower() == "the" else ("an" if adj[0] in "aeiou" else "a")
        return " ".join([article, adj] + words[1:])
    return f"{adj} {description}"


# --- naming objects ---------------------------------------------------------------------------------------------
_ORDINALS = {
    "first": 0,
    "1st": 0,
    "second": 1,
    "2nd": 1,
    "third": 2,
    "3rd": 2,
    "fourth": 3,
    "4th": 3,
    "fifth": 4,
    "5th": 4,
    "last": -1,
}
_SIDES = {
    "left": 0,
    "leftmost": 0,
    "right": -1,
    "rightmost": -1,
    "top": "top",
    "upper": "top",
    "topmost": "top",
    "bottom": "bottom",
    "lower": "bottom",
    "bottommost": "bottom",
}


def _base(name: str) -> str:
    head, _, tail = name.rpartition(" ")
    return head if head and tail.isdigit() else name


def _match_objects(phrase: str, bp: Blueprint, *, plural_ok: bool = False, quiet: bool = False) -> list[str]:
    """The object names a phrase refers to. Raises EditError (unless ``quiet``) when none or ambiguous."""
    objects = list(bp.objects)
    p = phrase.strip().lower().strip(" .,!?")
    p = re.sub(r"\s+(?:in|from|of) the (?:picture|image|scene)$", "", p)
    allq = bool(re.match(r"^(?:all|both|every|each)\b", p))
    p = re.sub(r"^(?:" + _DET + r")+", "", p + " ").strip()
    p = re.sub(r"^(?:" + _DET + r")+", "", p + " ").strip()
    if p in ("it", "them", "that", "this", "everything", "") and len(objects) == 1:
        return [objects[0].name]
    exact = [o for o in objects if o.name.lower() == p]
    if (
        exact
        and sum(_base(o.name).lower() == _base(exact[0].name).lower() for o in objects) == 1
        or exact
        and exact[0].name != _base(exact[0].name)
    ):
        return [exact[0].name]  # "cat 2" is exact; plain "cat" beside "cat 2" is ambiguous (handled below)
    # "the apple on the left", "the left apple", "the second apple"
    pick = None
    m = re.match(r"^(?P<rest>.+?) (?:on|at|to) the (?P<side>left|right|top|bottom)(?: side)?$", p)
    if m:
        p, pick = m.group("rest"), _SIDES[m.group("side")]
    words = p.split()
    if words and (words[0] in _ORDINALS or words[0] in _SIDES) and len(words) > 1:
        pick = _ORDINALS.get(words[0], _SIDES.get(words[0]))
        words = words[1:]
    if not words or len(words) > 6:  # a name is a few words; more means the clause was misread
        return _none(phrase, objects, quiet)
    last = words[-1]
    plural = allq or (last != singular(last))
    head = singular(last)
    cands = [o for o in objects if singular(_base(o.name).lower().split()[-1]) == head]
    if not cands:
        cands = [o for o in objects if head in [singular(w) for w in _base(o.name).lower().split()]]
    if not cands:
        cands = [o for o in objects if head in [singular(w.strip(",.")) for w in o.description.lower().split()]]
    if not cands:
        return _none(phrase, objects, quiet)
    extra = [w for w in words[:-1] if w not in ("of",)]
    if extra and len(cands) > 1:
        narrowed = [o for o in cands if all(w in (o.name + " " + o.description).lower() for w in extra)]
        cands = narrowed or cands
    if pick is not None and len(cands) > 1:
        if pick in ("top", "bottom"):
            ordered = sorted(cands, key=lambda o: (o.box[1] + o.box[3]) / 2)
            return [(ordered[0] if pick == "top" else ordered[-1]).name]
        ordered = sorted(cands, key=lambda o: (o.box[0] + o.box[2]) / 2)
        if isinstance(pick, int) and -len(ordered) <= pick < len(ordered):
            return [ordered[pick].name]
        return _none(phrase, objects, quiet)
    if len(cands) == 1 or plural:
        if plural and not plural_ok and len(cands) > 1:
            if quiet:
                return [cands[0].name]
            raise EditError(
                f"'{phrase}' means {len(cands)} objects here; name one of: {', '.join(o.name for o in cands)}"
            )
        return [o.name for o in cands]
    if quiet:
        return [cands[0].name]
    raise EditError(
        f"which {head}? there are {len(cands)}: {', '.join(o.name for o in cands)}"
        f" (say 'the left {head}', 'the second {head}', '{cands[1].name}' or 'the {head}s' for all)"
    )


def _none(phrase: str, objects, quiet: bool) -> list[str]:
    if quiet:
        return []
    names = ", ".join(o.name for o in objects) or "none"
    raise EditError(f"there is no '{phrase.strip()}' in the picture; objects: {names}")
