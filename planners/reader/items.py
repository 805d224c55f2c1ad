"""Pass 2 of reading a prompt: tokens, and the multi-word markers (relations, regions, conjunctions,
attachments) that turn a sentence into a list of items."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from planners import lexicon as lx
from planners.reader.scene import Target
from planners.reader.spans import _PH

# ---------------------------------------------------------------------------------------------------------------
# Pass 2: tokens and items
# ---------------------------------------------------------------------------------------------------------------

_TOKEN = re.compile("\ue000\\d+\ue001|\u00a6|[^\\W_](?:[\\w'\u2019-]*[^\\W_])?|[.!?;]+|[,:]|&|\\S")


@dataclass
class Tok:
    text: str
    low: str
    first: bool  # first token of its sentence: its capital is grammar, not a name

    @property
    def is_word(self) -> bool:
        return self.text[0].isalnum() and "\ue000" not in self.text

    @property
    def text_id(self) -> int | None:
        m = _PH.fullmatch(self.text)
        return int(m.group(1)) if m else None


def _phrases() -> dict[tuple[str, ...], tuple[str, str, bool]]:
    """Multi-word markers: words -> (kind, value, pronoun_object). The longest match wins."""
    table: dict[tuple[str, ...], tuple[str, str, bool]] = {}

    def add(phrase: str, kind: str, value: str, pron: bool = False) -> None:
        table.setdefault(tuple(phrase.split()), (kind, value, pron))

    for side in ("left", "right"):
        for pre in ("", "to ", "on ", "at ", "toward ", "towards ", "from "):
            for art in ("", "the "):
                for far in ("", "far ", "immediate ", "very "):
                    for suf in ("", " side", " hand side", "-hand side", " edge", " half", " part", " end"):
                        core = f"{pre}{art}{far}{side}{suf}"
                        add(core + " of", "rel", side)
                        if pre and art:
                            add(core, "region", side)
        for pre in ("to ", "on ", "at "):
            for owner in ("its ", "his ", "her ", "their "):
                for suf in ("", " side", " hand side", "-hand side"):
                    add(f"{pre}{owner}{side}{suf}", "rel", side, True)
    for pre in ("at", "in", "on", "along", "near", "toward", "towards", "from", "across"):
        for v, val in (("top", "top"), ("bottom", "bottom"), ("upper part", "top"), ("lower part", "bottom"),
                       ("upper half", "top"), ("lower half", "bottom"), ("very top", "top"),
                       ("very bottom", "bottom"), ("top edge", "top"), ("bottom edge", "bottom")):
            add(f"{pre} the {v}", "region", val)
            add(f"{pre} the {v} of", "rel", val + "_of")
        for v in ("top", "upper", "bottom", "lower"):
            for h in ("left", "right"):
                val = f"{'top' if v in ('top', 'upper') else 'bottom'}-{h}"
                for form in (f"{v} {h}", f"{v}-{h}", f"{v} {h}-hand", f"{v}-{h}-hand"):
                    for suf in ("", " corner", " side", " area", " part", " quadrant", " edge"):
                        add(f"{pre} the {form}{suf}", "region", val)
                        add(f"{pre} the {form}{suf} of", "rel", val + "_of")
    for p in ("in the center", "in the centre", "in the middle", "at the center", "at the centre",
              "in the very center", "in the very middle", "centered", "centred", "center stage", "in the midst",
              "across the middle", "across the center", "through the middle"):
        add(p, "region", "center")
        add(p + " of", "rel", "center_of")
    for p, val in (("in the foreground", "front"), ("the foreground", "front"), ("at the front", "front"),
                   ("in the background", "back"), ("the background", "back"), ("in the distance", "back"),
                   ("in the far distance", "back"), ("far in the distance", "back"), ("far away", "back"),
                   ("in the far background", "back"), ("at the back", "back"), ("in the back", "back"),
                   ("far off", "back"), ("in the sky", "top"), ("up in the sky", "top"), ("high in the sky", "top"),
                   ("overhead", "top"), ("up high", "top")):
        add(p, "region", val)
    for p, val in (("above", "above"), ("over", "above"), ("up above", "above"), ("high above", "above"),
                   ("higher than", "above"), ("below", "below"), ("beneath", "under"), ("under", "under"),
                   ("underneath", "under"), ("lower than", "below"), ("at the foot of", "below"),
                   ("at the base of", "below"), ("on", "on"), ("on top of", "on"), ("atop", "on"), ("upon", "on"),
                   ("onto", "on"), ("on the top of", "on"), ("in front of", "front"), ("in the front of", "front"),
                   ("at the front of", "front"), ("behind", "behind"), ("in back of", "behind"),
                   ("beyond", "behind"), ("at the back of", "behind"), ("in the back of", "behind"),
                   ("next to", "near"), ("beside", "near"), ("besides", "near"), ("near", "near"),
                   ("near to", "near"), ("close to", "near"), ("by", "near"), ("alongside", "near"),
                   ("adjacent to", "near"), ("across from", "near"), ("opposite", "near"), ("opposite to", "near"),
                   ("against", "near"), ("by the side of", "near"), ("at the side of", "near"), ("around", "near"),
                   ("between", "between"), ("in between", "between"), ("in", "inside"), ("inside", "inside"),
                   ("inside of", "inside"), ("within", "inside"), ("into", "inside"),
                   ("on either side of", "flank"), ("on both sides of", "flank"), ("on each side of", "flank"),
                   ("flanked by", "flanked"), ("riding", "on"), ("rides", "on"), ("riding on", "on"),
                   ("astride", "on")):
        add(p, "rel", val)
    for p in ("and", "or", ",", "&", "as well as", "along with", "together with", "plus", "and also"):
        add(p, "conj", "")
    for p, val in (("wearing", "wear"), ("wears", "wear"), ("wore", "wear"), ("dressed in", "wear"),
                   ("clad in", "wear"), ("dressed as", "wear"), ("holding", "hold"), ("holds", "hold"),
                   ("holding up", "hold"), ("carrying", "hold"), ("carries", "hold"), ("clutching", "hold"),
                   ("wielding", "hold"), ("grasping", "hold"), ("with", "with"), ("has", "with"), ("have", "with"),
                   ("having", "with"), ("featuring", "with"), ("filled with", "with"), ("topped with", "with"),
                   ("covered with", "with"), ("covered in", "with"), ("decorated with", "with"),
                   ("full of", "with"), ("loaded with", "with"), ("play with", "hold"), ("plays with", "hold"),
                   ("playing with", "hold"), ("selling", "sell"), ("sells", "sell"), ("sold", "sell"),
                   ("vending", "sell")):
        add(p, "acc", val)
    for p, val in (("from left to right", "x"), ("left to right", "x"), ("from top to bottom", "y"),
                   ("top to bottom", "y"), ("side by side", "row"), ("in a row", "row"), ("in a line", "row"),
                   ("in line", "row")):
        add(p, "order", val)
    return table


PHRASES = _phrases()
_MAX_PHRASE = max(len(k) for k in PHRASES)
# "a cup on a table next to a lamp": after these the table's own relations hold for the cup too
ATTACHING = frozenset({"on", "inside", "under", "center_of"})
_BE = lx._words("is are was were looks look appears appear seems seem")
_PRONOUNS = lx._words("it them him her this that these those")
_VERBS = {"wear": "wearing", "hold": "holding", "sell": "selling"}  # how an attachment reads in its owner's description
_SINGULAR_DETS = frozenset({"a", "an", "one", "another", "this", "each", "every"})
_ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "sixth": 5, "last": -1}


@dataclass
class Mention:
    """A noun phrase as read, before linking decides whether it is an object, the background or nothing."""

    words: list[str]  # as written, head last and singular (quoted-text placeholders removed)
    head: str  # singular, lower case (proper names keep their case)
    name: str
    count: int
    explicit: bool  # the count was written ("three", "a pair of")
    definite: bool  # "the", "his": may refer back
    fresh: bool  # "another": always a new thing
    proper: bool
    plural: bool
    det: str
    written: str = ""  # determiner and words as in the prompt: "two glasses"
    absorbed: str = ""  # "of fruit"
    texts: list[int] = field(default_factory=list)
    predicates: list[str] = field(default_factory=list)  # "the car is red"
    elliptical: bool = False  # "one black" after "two dogs"
    anaphor: bool = False  # "the one on the left": one instance of the last counted group
    each: bool = False  # "each topped with a cherry": one per owner instance
    part: bool = False  # "its side": part of something already there
    which: str = ""  # "latter" or "former": the last or the one before it of the things just named
    # set while linking
    role: str = ""  # object | background | feature | drop
    target: Target | None = None
    owner: Mention | None = None
    acc: str = ""
    object_of: Item | None = None
    placed: bool = False  # the direct subject of a relation or region

    @property
    def stated(self) -> bool:
        """Whether the count is written out ("three", "12", "a pair of"), not guessed from a plural."""
        det = self.det.split()
        return any(w in lx.NUMBERS or w.isdigit() or w in ("pair", "couple", "both", "half") for w in det)

    @property
    def kind(self) -> str:
        """What the head noun says by itself, before linking decides."""
        h = self.head.lower()
        if self.anaphor or (" " in self.name and self.name.lower() in lx.COMPOUNDS):
            return "thing"  # "a traffic light" is a thing although "light" alone is not
        if h in lx.BACKGROUND_HEADS:
            return "backdrop"
        if h in lx.NON_OBJECTS or self.part or self.elliptical:
            return "none"
        if h in lx.TIME_WORDS:
            return "time"
        if h in lx.SETTINGS:
            return "setting"
        if h in lx.SITES or (self.plural and not self.explicit and self.words[-1].lower() in lx.SCENERY_PLURALS) or (
            self.plural and not self.explicit and lx.singular(self.words[-1].lower()) + "s" in lx.SCENERY_PLURALS
        ):
            return "site"
        return "thing"

    @property
    def can_be_subject(self) -> bool:
        return self.kind in ("thing", "site")


@dataclass
class Item:
    kind: str  # np rel region conj acc text order other
    value: str = ""
    mention: Mention | None = None
    pron: bool = False
    low: str = ""
    subjects: list[Mention] = field(default_factory=list)
    objects: list[Mention] = field(default_factory=list)
    pronoun_object: bool = False


def _tokens(text: str) -> list[list[Tok]]:
    """Sentences of tokens; '.', '!', '?' and ';' end a sentence ("From left to right: a, b, c" is one)."""
    sentences: list[list[Tok]] = [[]]
    for m in _TOKEN.finditer(text):
        t = m.group(0)
        if re.fullmatch(r"[.!?;]+", t):
            if sentences[-1]:
                sentences.append([])
            continue
        sentences[-1].append(Tok(t, t.lower().replace("\u2019", "'"), not sentences[-1]))
    return [s for s in sentences if s]


def _match_phrase(toks: list[Tok], i: int) -> tuple[int, tuple[str, str, bool]] | None:
    for n in range(min(_MAX_PHRASE, len(toks) - i), 0, -1):
        key = tuple(t.low for t in toks[i:i + n])
        if key in PHRASES:
            return n, PHRASES[key]
    return None


def _article_kind(m: Mention) -> str:
    """How a description of one instance starts: names keep their "the"; pair words take none."""
    if m.count == 1 and m.det.split()[-2:] == ["pair", "of"] and m.head in lx.PAIRED | lx.PLURALIA:
        return "a pair of"
    if m.head in lx.PLURALIA:
        return ""
    if m.proper:
        return "the" if m.det == "the" else "a" if m.det in ("a", "an") else ""
    return "a"


def _overlaps(a: Target, b: Target) -> bool:
    """Whether two targets can share instances (a group and one of its own instances do)."""
    return a.group == b.group and (a.instance is None or b.instance is None or a.instance == b.instance)
