"""Read a prompt into a :class:`Scene`: the things to draw with their counts and words, how they are placed
relative to each other and to the frame, the text that appears in the picture, and the style, setting and
exclusions.

There is no tagger. The reader works in three passes, each removing an ambiguity the next would trip on:

1. *Spans* are cut out of the raw text: quoted or "that says ..." text (so words on a sign never become objects),
   style phrases, exclusions ("no people") and times of day. Each leaves a placeholder or a neutral mark, so the
   sentence keeps its shape.
2. Each sentence becomes a list of *items*: noun phrases (found by their determiner, or by a known noun, and ended
   by the first word that cannot be inside one), relation phrases ("to the left of"), frame regions ("in the
   top-left corner"), conjunctions, and "wearing/holding/with" attachments.
3. Items are *linked*: a relation's object is the phrase right after it and its subject the phrase before it (or,
   when the relation is fronted - "Above the fireplace hangs a painting" - the phrase after its object); "the cat"
   refers back to "a cat"; places become the background; relations to the background or the frame become regions.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from planners import lexicon as lx

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


def read(prompt: str) -> Scene:
    """The whole reading: spans, then sentence by sentence."""
    scene = Scene()
    contents: list[str] = []
    text = clean(prompt)
    text = _cut_names(text)
    text = _cut_texts(text, contents)
    text, text_styles = _cut_text_styles(text)
    text = _cut_style(text, scene.style)
    text = _cut_prose(text, scene.style)
    text = _cut_negatives(text, scene.negatives)
    text = _cut_times(text, scene.background)
    scene.texts = [Text(c, style=text_styles.get(i, "")) for i, c in enumerate(contents)]
    words = re.findall(r"[^\W\d_][\w'-]*", text)
    titlecase = len(words) > 3 and sum(w[0].isupper() for w in words) > 0.6 * len(words)
    reader = _Reader(scene, titlecase)
    for sentence in _tokens(text):
        reader.sentence(sentence)
    return scene


# ---------------------------------------------------------------------------------------------------------------
# Pass 1: spans cut from the raw text
# ---------------------------------------------------------------------------------------------------------------

MARK = " \u00a6 "  # left where a span was cut: ends a noun phrase, links nothing
_PH = re.compile("\ue000(\\d+)\ue001")
_COLOUR_ALT = "|".join(sorted(lx.COLOURS, key=len, reverse=True))

_QUOTES = [
    re.compile(r'"([^"\n]+?)"'),
    re.compile(r"\u201c([^\u201d\n]+?)\u201d"),
    re.compile(r"\u201e([^\u201c\u201d\n]+?)[\u201c\u201d]"),
    re.compile(r"\u00ab\s?([^\u00bb\n]+?)\s?\u00bb"),
    re.compile(r"\u2039([^\u203a\n]+?)\u203a"),
    re.compile(r"\u300c([^\u300d\n]+?)\u300d"),
    re.compile(r"\u300e([^\u300f\n]+?)\u300f"),
    re.compile(r"(?<!\w)\u2018(.+?)\u2019(?!\w)"),
    re.compile(r"(?<![\w'])'(\S(?:[^\n]*?\S)?)'(?![\w'])"),  # "Joe's Diner" inside '...' keeps its apostrophe
]
# After these words comes the text itself, quoted or not: "a sign that says OPEN", "labeled EXIT".
_SAYS = re.compile(
    r"\b(?:(?:that|which)\s+)?(says|reads|said|spells|saying|reading|spelling|labell?ed|titled|entitled|"
    r"with\s+the\s+(?:words?|text|phrase|message|slogan|caption|letters))\s+(?=\S)",
    re.IGNORECASE,
)
_CAPS_RUN = re.compile(r"[A-Z0-9][A-Z0-9&'!?/:-]*(?:\s+[A-Z0-9][A-Z0-9&'!?/:-]*)*")
_TEXT_STYLE = re.compile(
    r"\b(?:in|with|using)\s+((?:[\w-]+\s+){0,3}?(?:letters|lettering|font|script|typeface|characters|capitals|"
    r"caps|handwriting|chalk|calligraphy|ink))\b",
    re.IGNORECASE,
)
_TEXT_COLOUR = re.compile(
    rf"(\ue000\d+\ue001)\s+in\s+((?:bright |dark |light |glowing )?(?:{_COLOUR_ALT}))\b", re.IGNORECASE
)
_TEXT_STYLE_WORDS = lx._words(
    """neon handwritten cursive bold graffiti chalk embossed engraved carved painted stitched embroidered glowing
    gold golden serif italic stenciled stencilled typewritten calligraphic"""
)

_STYLE_KEYWORDS = lx.alternatives(
    """watercolor|watercolour|watercolor painting|watercolour painting|oil painting|acrylic painting|gouache|
    photorealistic|photo-realistic|hyperrealistic|hyper-realistic|ultra-realistic|ultra realistic|realistic|
    pixel art|8-bit|16-bit|cinematic lighting|cinematic|dramatic lighting|soft lighting|studio lighting|
    soft studio lighting|volumetric lighting|rim lighting|natural lighting|neon lighting|rgb lighting|
    moody lighting|warm lighting|golden hour lighting|anime|manga|3d render|3d rendering|3d art|3d animation|
    cgi|digital art|digital painting|concept art|matte painting|illustration|pencil sketch|pencil drawing|
    charcoal drawing|ink drawing|line art|low poly|low-poly|isometric|vaporwave|synthwave|steampunk|cyberpunk|
    minimalist|minimalism|impressionist|impressionism|expressionist|expressionism|surreal|surrealism|surrealist|
    art deco|art nouveau|pop art|ukiyo-e|woodblock print|claymation|stop motion|studio ghibli|ghibli|pixar|
    comic book|cartoonish|flat design|flat illustration|vector art|8k|4k|hdr|uhd|highly detailed|ultra detailed|
    hyper detailed|intricate details|intricate detail|octane render|unreal engine|ray tracing|bokeh|
    shallow depth of field|depth of field|fisheye lens|fisheye|wide angle|wide-angle|wide-angle lens|telephoto|
    macro photography|long exposure|film grain|35mm film|35mm|polaroid|black and white photo|
    black and white photograph|black and white photography|sepia tone|sepia|trending on artstation|masterpiece|
    best quality|award winning|award-winning|soft pastel colors|soft pastel colours|pastel colors|
    pastel colours|vibrant colors|vibrant colours|muted colors|muted colours|warm tones|cool tones|soft colors|
    high contrast|product photography|portrait photography|street photography|national geographic|
    children's book illustration|storybook illustration|renaissance painting|baroque|graphic novel|still life"""
)
_STYLE_RE = re.compile(
    r"(?<![\w-])(?:" + "|".join(re.escape(k) for k in sorted(_STYLE_KEYWORDS, key=len, reverse=True)) + r")(?![\w-])",
    re.IGNORECASE,
)
_STYLE_OF = re.compile(
    r"\b(?:in\s+)?the\s+style\s+of\s+[^,.;:!?\ue000\u00a6]+?(?=\s*(?:[,.;:!?]|$|\band\b|\bwith\b))", re.IGNORECASE
)
_X_STYLE = re.compile(
    r"\b(?:in\s+(?:an?\s+|the\s+)?)?(?:[\w'-]+\s+){0,2}[\w'-]+[\s-]+(?:style|aesthetic)\b", re.IGNORECASE
)
_MEDIUM = re.compile(
    r"^\s*(?:(?:an?|the)\s+)?((?:[\w'-]+\s+){0,3}?(?:photo|photograph|photography|picture|image|painting|"
    r"illustration|drawing|render|rendering|sketch|artwork|art|portrait|shot|snapshot|depiction|close-up|closeup|"
    r"view|scene|print|cartoon|animation|still|watercolou?r))\s+(?:of|showing|depicting|featuring)\b",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"\b(?:without|with\s+no|no|not\s+any|free\s+of|devoid\s+of|do\s*n[o'\u2019]?t\s+(?:include|show|draw|add|put)|"
    r"avoid|exclude|excluding)\s+(?:any\s+)?([\w'-]+(?:(?:\s*,\s*|\s+(?:or|and|nor)\s+|\s+)[\w'-]+){0,5})",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\b(?:at|during|in|on|under|before|after)\s+(?:the\s+|a\s+|an\s+)?"
    r"(?:(?!(?:at|during|in|on|under|with|of|and)\b)[\w-]+\s+){0,2}?(?:sunset|sunrise|dusk|"
    r"dawn|twilight|night|midnight|noon|golden\s+hour|blue\s+hour|daytime|nighttime|night-time|winter|summer|"
    r"autumn|spring|morning|evening|afternoon|day|storm|snowstorm|thunderstorm|rain|rainstorm|blizzard|fog|mist)\b"
    rf"(?!\s+(?:{'|'.join(sorted(lx.NOUNS - lx.TIME_WORDS, key=len, reverse=True))})\b)",  # "an autumn forest"
    re.IGNORECASE,
)
_STOPISH = (
    lx.PREPOSITIONS | lx.CONJUNCTIONS | lx.AUXILIARIES | lx.PRONOUNS | frozenset(lx.QUANTIFIERS) | lx.IRREGULAR_VERBS
)


def clean(text: str) -> str:
    """Control characters become spaces (line breaks end a sentence); runs of blanks collapse."""
    text = re.sub(r"[\r\n\u2028\u2029]+", " . ", text)
    text = re.sub(r"[\x00-\x1f\x7f\ue000-\uf8ff\u00a6]", " ", text)
    return re.sub(r"[ \t\u00a0]+", " ", text).strip()


_QUOTED = r'(?:"[^"\n]{1,80}"|\u201c[^\u201d\n]{1,80}\u201d|\u2018[^\u2019\n]{1,80}\u2019|\'[^\'\n]{1,80}\')'
# 'a dog we call "Biscuit"', 'a cat named "Mochi"', 'the kids call it "Frosty"': a name, not words in the picture
_NAMED = re.compile(
    r"(?:,\s*)?\b(?:(?:which|that|whom|who)\s+)?(?:(?:we|they|i|you|people|everyone|the\s+\w+)\s+(?:call|calls|called|"
    r"named?|nicknamed?|dubbed?)(?:\s+(?:it|him|her|them))?|(?:is\s+|was\s+)?(?:called|named|nicknamed|dubbed|"
    r"known\s+as))\s+" + _QUOTED + r"(?:\s+(?:in|for|at|on|from|by)\s+(?:our|my|your)\b[^,.;:!?\n]*)?",
    re.IGNORECASE,
)
# 'feels "cozy"', 'looks very "rustic"': scare quotes around a word of prose keep the word and lose the quotes
_SCARE = re.compile(
    r"\b((?:feels?|feel|looks?|seems?|appears?|sounds?|smells?|tastes?|is|are|was|were)\s+(?:(?:very|so|quite|rather|"
    r"pretty|really|a\s+bit|kind\s+of)\s+)?)[\"\u201c\u2018']([a-z][a-z -]{0,30})[\"\u201d\u2019']",
)


def _cut_names(text: str) -> str:
    """Nicknames and scare quotes are prose: neither becomes scene text (the quote is dropped or unquoted)."""
    text = _NAMED.sub(MARK, text)
    return _SCARE.sub(lambda m: m.group(1) + m.group(2), text)


def _cut_texts(text: str, contents: list[str]) -> str:
    """Quoted text and "says X" text become placeholders; ``contents`` collects what they held, exactly."""

    def keep(match: re.Match) -> str:
        inner = match.group(1).strip()[:200].strip()
        if not inner:
            return match.group(0)
        contents.append(inner)
        return f" \ue000{len(contents) - 1}\ue001 "

    for pattern in _QUOTES:
        text = pattern.sub(keep, text)

    out, pos = [], 0
    for m in _SAYS.finditer(text):
        if m.start() < pos or text[m.end():].startswith("\ue000"):
            continue
        said = _unquoted_said(text[m.end():], m.group(1).lower())
        if said:
            contents.append(said[:200])
            out += [text[pos:m.end()], f" \ue000{len(contents) - 1}\ue001 "]
            pos = m.end() + len(said)
    return "".join(out) + text[pos:]


def _unquoted_said(rest: str, trigger: str) -> str:
    """The words after "says" that are the text: an all-caps run, or a few words up to a word that ends it."""
    caps = _CAPS_RUN.match(rest)
    if caps and sum(c.isalpha() for c in caps.group(0)) > 1:
        return caps.group(0).rstrip(":-")
    m = re.match(r"[^\s,.;:!?()\ue000\u00a6]+(?: [^\s,.;:!?()\ue000\u00a6]+)*", rest)
    words = []
    for w in (m.group(0).split(" ") if m else []):
        if w.lower() in _STOPISH or len(words) == 6:
            break
        words.append(w)
    if not words or (len(words) == 1 and _adverb(words[0].lower())):
        return ""  # "a jar labeled clearly", "a box titled upwards": how, not what
    if trigger in ("reading", "saying", "spelling") and not words[0][0].isupper() and not words[0][0].isdigit():
        return ""  # "a girl reading comics" is a girl reading, not a sign
    return " ".join(words)


def _adverb(low: str) -> bool:
    return low in _DIRECTIONS or (low.endswith("ly") and len(low) > 4 and low not in lx.ADVERB_OK)


_DIRECTIONS = lx._words(
    """upwards upward downwards downward forwards forward backwards backward sideways outwards outward inwards inward
    skyward skywards homeward onward onwards"""
)


def _cut_text_styles(text: str) -> tuple[str, dict[int, str]]:
    """'in bold red letters' near a text is that text's style, not a noun phrase."""
    styles: dict[int, str] = {}

    def colour(m: re.Match) -> str:
        styles.setdefault(int(_PH.match(m.group(1)).group(1)), m.group(2))
        return m.group(1) + MARK

    pieces = []
    for sentence in re.split(r"(?<=[.!?;])", text):
        ids = [int(p) for p in _PH.findall(sentence)]
        if ids:
            for m in _TEXT_STYLE.finditer(sentence):
                before = [int(p) for p in _PH.findall(sentence[: m.start()])]
                styles.setdefault(before[-1] if before else ids[0], m.group(1))
            found = [w for w in re.findall(r"[\w-]+", sentence.lower()) if w in _TEXT_STYLE_WORDS]
            for i in ids:
                if found and i not in styles:
                    styles[i] = " ".join(dict.fromkeys(found))
            sentence = _TEXT_STYLE.sub(MARK, sentence)
        pieces.append(sentence)
    return _TEXT_COLOUR.sub(colour, "".join(pieces)), styles


def _cut_style(text: str, style: list[str]) -> str:
    """The medium ("a watercolor painting of"), "in the style of X", "X style" and known style words."""
    m = _MEDIUM.match(text)
    if m:
        if not re.fullmatch(r"image|picture|scene|view", m.group(1).strip(), re.IGNORECASE):
            style.append(m.group(1).strip())
        text = MARK + text[m.end():]

    def take(match: re.Match) -> str:
        phrase = re.sub(r"^(?:in|with)\s+(?:an?\s+|the\s+)?", "", match.group(0).strip(), flags=re.IGNORECASE)
        if phrase.split()[0].lower() in _STOPISH:
            return match.group(0)
        style.append(phrase)
        return MARK

    text = _STYLE_OF.sub(take, text)
    text = _X_STYLE.sub(take, text)
    return _STYLE_RE.sub(take, text)


# "seen from a balcony", "viewed from above": where the camera is, not a thing in the picture
_VIEWPOINT = re.compile(
    r"\b(?:as\s+)?(?:seen|viewed|shot|photographed|pictured|captured|looking|drawn|painted)\s+(?:from|through)\s+"
    r"(?:(?:the|a|an|its|his|her|their)\s+)?(?:[\w'-]+\s+){0,3}?[\w'-]+(?=\s*(?:[,.;:!?\u00a6]|$|\band\b|\bwith\b))"
    r"|\bfrom\s+(?:the\s+)?(?:perspective|point\s+of\s+view|viewpoint|vantage\s+point)\s+of\s+[^,.;:!?\u00a6]+",
    re.IGNORECASE,
)
# "like a magazine spread", "the kind of photo you'd find in ...": comparisons describe the look, draw nothing
_LIKENESS = re.compile(
    r"(?:,\s*)?\b(?:(?:just|much|rather|a\s+bit|looking|looks|look|feels|feel|feeling)\s+)?like\s+"
    r"(?:a|an|the|something|"
    r"from|in|out\s+of)\b[^,.;:!?\u00a6\ue000]*"
    r"|(?:,\s*)?\b(?:the|a)\s+(?:kind|sort|type)\s+of\s+(?:photo|photograph|picture|image|scene|shot|thing|place|"
    r"view|room|painting|illustration)\b[^,.;:!?\u00a6\ue000]*"
    r"|\breminiscent\s+of\s+[^,.;:!?\u00a6\ue000]*",
    re.IGNORECASE,
)


def _cut_prose(text: str, style: list[str]) -> str:
    """Viewpoints and comparisons go to the style (they say how the picture looks), never into objects."""

    def take(match: re.Match) -> str:
        phrase = match.group(0).strip(" ,")
        if phrase:
            style.append(phrase)
        return MARK

    return _LIKENESS.sub(take, _VIEWPOINT.sub(take, text))


def _cut_negatives(text: str, negatives: list[str]) -> str:
    """"no people", "without any cars or trucks": what must not appear, and must not become an object."""

    def take(match: re.Match) -> str:
        things: list[list[str]] = []
        end, new_thing = match.start(1), True
        for w in re.finditer(r"[\w'-]+|,", match.group(1)):
            low = w.group(0).lower()
            if low in (",", "or", "and", "nor"):
                new_thing = True
                continue
            if low in _STOPISH or low in lx.DEFINITE or (things and lx.is_verbish(low)):
                break
            if new_thing:
                things.append([])
            things[-1].append(w.group(0))
            new_thing, end = False, match.start(1) + w.end()
        if not things:
            return match.group(0)
        negatives.extend(" ".join(t) for t in things)
        return MARK + match.string[end:match.end()]

    for _ in range(4):  # "no people, no text": one match can hide the next
        before = len(negatives)
        text = _NEGATIVE.sub(take, text)
        if len(negatives) == before:
            break
    return text


def _cut_times(text: str, background: list[str]) -> str:
    """"at sunset", "on a rainy winter morning": when, not what; goes to the background."""

    def take(match: re.Match) -> str:
        between = match.group(0).split()[1:-1]
        allowed = lx.DEFINITE | lx.TIME_WORDS | {"a", "an"}
        if any(not (is_adjective(w.lower()) or w.lower() in allowed) for w in between):
            return match.group(0)  # "on the wall shows noon"
        background.append(match.group(0).strip())
        return MARK

    return _TIME.sub(take, text)


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


def is_adjective(low: str) -> bool:
    if low in lx.COLOURS or low in lx.SIZES or low in lx.MATERIALS or low in lx.ADJECTIVES or low in lx.INTENSIFIERS:
        return True
    head, _, tail = low.rpartition("-")
    # "mint-green", "rose-tinted", "front-loading", "child-like": a hyphenated word ending like an adjective
    return bool(head) and (tail in lx.COLOURS or tail in lx.ADJECTIVES or tail.endswith(_ADJECTIVE_ENDINGS))


_ADJECTIVE_ENDINGS = ("ed", "ing", "ish", "like", "less", "ful", "proof", "free", "sized", "shaped", "colored",
                      "coloured", "toned")


def article(word: str) -> str:
    low = word.lower()
    vowel = low[:1] in "aeiou" and not low.startswith(("uni", "use", "eu", "one", "uk"))
    return "an" if vowel or low.startswith(("hour", "honest", "heir")) else "a"


# ---------------------------------------------------------------------------------------------------------------
# Noun phrases
# ---------------------------------------------------------------------------------------------------------------


class _Phrases:
    """Finds noun phrases in a token list."""

    def __init__(self, titlecase: bool):
        self.titlecase = titlecase  # "A Red Apple On A Table": capitals say nothing about names

    def read(self, toks: list[Tok], i: int, nested: bool = False) -> tuple[Mention, int] | None:
        """The noun phrase starting at ``i`` as (mention, end), or None."""
        det = self._determiner(toks, i)
        if det is None:
            return None
        det_text, count, explicit, fresh, j = det
        words, texts, k = self._run(toks, j, bool(det_text), det_text in _SINGULAR_DETS)
        if not words and det_text == "the one":  # "the one on the far right"
            m = self._mention(["one"], "the", None, False, False, False)
            m.anaphor = True
            return m, j
        if not words:
            return None
        elliptical = all(is_adjective(w.lower()) or w in (",", "and", "or") for w in words) and not (
            # "a glass of beer" is a glass, "an orange orange" an orange, "a heavy brick" a brick
            words[-1].lower() in lx.NOUNS or words[-1].lower() in lx.THING_WORDS
        )
        one_after = k < len(toks) and toks[k].low in ("one", "ones")  # "a red one"
        if elliptical and det_text not in ("a", "an", "one", "another") and not one_after:
            return None  # "the top", "the left": not a phrase about a thing
        if elliptical and one_after:
            k += 1
        if not det_text and (elliptical or not (nested or self._bare_ok(words, toks[i].first))):
            return None
        if not det_text and i > 0 and toks[i - 1].low in _BE and all(is_adjective(w.lower()) for w in words):
            return None  # "no people are present": a predicate, not a thing
        if toks[j].first and words[0] == toks[j].text and not all(w[:1].isupper() for w in words):
            words[0] = words[0].lower()  # "Paper lanterns hang ...": a capital that only starts the sentence
        m = self._mention(words, det_text, count, explicit, fresh, toks[i].first)
        m.texts, m.elliptical = texts, elliptical
        m.written = " ".join([det_text] + words if det_text else words)
        absorbs = m.head.lower() not in lx.NON_OBJECTS | lx.PARTS  # "the driver's seat of a Porsche": both count
        if not nested and k < len(toks) and toks[k].low == "of" and absorbs:
            sub = self.read(toks, k + 1, nested=True) if k + 1 < len(toks) else None
            counted = sub is not None and sub[0].count > 1 and any(
                w.isdigit() or w in lx.NUMBERS for w in sub[0].det.split())
            if sub is not None and not counted:  # "a box of 6 eggs": the six eggs are drawn too
                m.absorbed = "of " + " ".join(t.text for t in toks[k + 1:sub[1]] if t.text_id is None)
                m.texts += sub[0].texts
                k = sub[1]
        possessive = det_text in ("its", "their", "his", "her") or (len(words) > 1 and words[-2].endswith("'s"))
        m.part = possessive and m.head in lx.PARTS | lx.FEATURES  # "at her feet", "at the man's feet"
        if det_text == "the" and [w.lower() for w in words] in (["latter"], ["former"]):
            m.anaphor, m.which = True, words[0].lower()  # "the latter is on the left"
        return m, k

    @staticmethod
    def _determiner(toks: list[Tok], i: int) -> tuple[str, int | None, bool, bool, int] | None:
        """(determiner, count, explicit, fresh, index after it); ('', None, ...) when there is none."""
        n = len(toks)

        def at(k: int) -> str:
            return toks[k].low if k < n else ""

        low, det, count, explicit, fresh, j = at(i), "", None, False, False, i
        if low in ("a", "an") and at(i + 1) in lx.COLLECTIVES and (at(i + 2) == "of" or at(i + 1) == "dozen"):
            det, count, explicit = f"{low} {at(i + 1)}", lx.COLLECTIVES[at(i + 1)], True
            det, j = (det + " of", i + 3) if at(i + 2) == "of" else (det, i + 2)
        elif low == "half" and at(i + 1) in ("a", "an") and at(i + 2) == "dozen":
            det, count, explicit, j = "half a dozen", 6, True, i + 3
        elif low in ("a", "an") and at(i + 1) == "few":
            det, count, explicit, j = "a few", 3, True, i + 2
        elif low in ("lots", "plenty", "dozens", "hundreds", "thousands") and at(i + 1) == "of":
            det, count, explicit, j = low + " of", lx.COLLECTIVES[low], True, i + 2
        elif low in lx.QUANTIFIERS or low == "both":
            det, j = low, i + 1
            count = 2 if low == "both" else lx.QUANTIFIERS[low]
            explicit, fresh = low not in lx.DEFINITE, low == "another"
            if at(j) == "of" and low in ("both", "some", "many", "several", "few", "each"):
                j += 2 if at(j + 1) in lx.DEFINITE else 1
        word = at(j)
        after_name = j > 0 and toks[j - 1].text[:1].isupper() and not toks[j - 1].first  # "a Porsche 911"
        if word in lx.NUMBERS or (word.isdigit() and not after_name):
            if at(j + 1) == "of":  # "one of the dogs" names nothing new
                return None
            number = min(int(word), 99) if word.isdigit() else lx.NUMBERS[word]
            det, count, explicit, j = f"{det} {word}".strip(), number, True, j + 1
        elif word in ("second", "third", "fourth", "fifth", "other") and det in ("a", "an"):
            fresh = True
        return det, count, explicit, fresh, j

    def _run(self, toks: list[Tok], j: int, has_det: bool, singular_det: bool) -> tuple[list[str], list[int], int]:
        """The words of the phrase: up to the first word that cannot be inside a noun phrase."""
        words: list[str] = []
        texts: list[int] = []
        k, n = j, len(toks)
        while k < n:
            t = toks[k]
            if t.text_id is not None:  # 'a "STOP" sign': a quoted text as a modifier
                nxt = toks[k + 1] if k + 1 < n else None
                modifier = nxt and nxt.is_word and nxt.low not in _STOPISH and not _match_phrase(toks, k + 1)
                if (words or has_det) and modifier:
                    texts.append(t.text_id)
                    k += 1
                    continue
                break
            can_noun = t.low == "can" and has_det and not words  # "a can of soda"
            if not t.is_word or _match_phrase(toks, k) or (t.low in _STOPISH and not can_noun):
                break
            if (t.low.isdigit() or t.low in lx.NUMBERS) and not (words and words[-1][:1].isupper()):
                break
            if words and self._verb_at(words, toks, k, singular_det):
                break
            if words and self._after_noun(words[-1].lower(), toks, k):
                break  # "a kite high in the sky": an adjective after a noun describes where or how it is
            words.append(t.text)
            k += 1
            # "black and white", "red, white and blue": coordinated adjectives stay in the phrase
            if (is_adjective(t.low) and k + 2 < n and toks[k].low in ("and", ",", "or")
                    and is_adjective(toks[k + 1].low) and toks[k + 2].is_word):
                words.append("and" if toks[k].low != "," else ",")
                k += 1
        return words, texts, k

    @staticmethod
    def _after_noun(prev: str, toks: list[Tok], k: int) -> bool:
        low = toks[k].low
        noun_before = (prev in lx.NOUNS or prev in lx.PARTS) and not is_adjective(prev)
        if not noun_before or not is_adjective(low) or low in lx.NOUNS or "-" in low:
            return False
        nxt = toks[k + 1] if k + 1 < len(toks) else None
        return nxt is None or not nxt.is_word or nxt.low in _STOPISH or _match_phrase(toks, k + 1) is not None

    @staticmethod
    def _verb_at(words: list[str], toks: list[Tok], k: int, singular_det: bool) -> bool:
        """Whether the word at ``k`` after the phrase so far is a verb or adverb rather than more of the phrase."""
        prev, low = words[-1].lower(), toks[k].low
        nxt = toks[k + 1].low if k + 1 < len(toks) else ""
        if is_adjective(prev) or prev.endswith(("'s", "-")):
            return False  # "a big sleeping cat", "a dog's bed"
        if low in lx.IRREGULAR_VERBS or lx.verb_form(low):
            return True  # "a cat sits", "a man fishing", "a car parked"
        plural_before = lx.is_plural(prev) or prev in lx.INVARIANT
        object_next = nxt in lx.QUANTIFIERS or nxt in lx.NUMBERS
        if low in lx.VERB_STEMS and (plural_before or low not in lx.NOUNS or object_next):
            return True  # "two cats sit", "five clownfish swim", "a girl sit", "above the bed hang three pictures"
        if singular_det and lx.is_plural(low) and low not in lx.PLURALIA:
            return True  # "a white coat examines": after "a", a plural-looking word is a verb
        unknown_s = low.endswith("s") and low not in lx.NOUNS and lx.singular(low) not in lx.NOUNS
        after_noun = (prev in lx.NOUNS or prev in lx.NON_OBJECTS) and not lx.is_plural(prev)
        if unknown_s and after_noun and (nxt in lx.QUANTIFIERS or nxt in lx.NUMBERS):
            return True  # "the dog wags its tail": an unknown -s word between a noun and a determiner is its verb
        return low.endswith("ly") and len(low) > 4 and low not in lx.ADVERB_OK

    def _bare_ok(self, words: list[str], sentence_start: bool) -> bool:
        """Without a determiner a phrase counts if its head is a known noun, or it is a multi-word proper name."""
        head = words[-1].lower()
        if len(words) == 1 and head in lx.COLOURS:
            return False  # "glows orange"
        if head in lx.NOUNS or lx.singular(head) in lx.NOUNS:
            return True
        caps = [w for w in words if w[:1].isupper()]
        return not self.titlecase and len(caps) >= 2 and len(caps) == len(words) and not sentence_start

    def _mention(self, words: list[str], det: str, count: int | None, explicit: bool, fresh: bool,
                 sentence_start: bool) -> Mention:
        head_raw = words[-1]
        head_low = head_raw.lower()
        capitals = [w for w in words if w[:1].isupper()]
        proper = not self.titlecase and (
            (head_raw[:1].isupper() and not (len(words) == 1 and sentence_start and not det))
            or (head_raw.isdigit() and len(words) > 1 and words[-2][:1].isupper())
        ) and not all(w.isupper() and len(w) > 1 for w in capitals)
        plural = lx.is_plural(head_low) and not proper
        pair = det.split()[-2:] == ["pair", "of"]
        if pair and (head_low in lx.PLURALIA or head_low in lx.PAIRED):
            plural, head, count = False, head_low, 1  # "a pair of gloves", "a pair of pliers": one thing
        elif head_low == "glasses":  # eyewear, unless counted like drinking glasses
            plural = bool(explicit and (count or 1) > 1)
            head = "glass" if plural else "glasses"
        elif head_low in lx.PLURALIA:
            plural, head = bool(explicit and (count or 1) > 1), head_low
        else:
            head = head_raw if proper else lx.singular(head_low)
        if count is None or (det in ("a", "an", "another", "this", "every", "each") and not explicit):
            count = lx.BARE_PLURAL_COUNT if plural and det not in ("a", "an", "another", "this") else 1
        return Mention(
            words=words[:-1] + [head], head=head, name=self._name(words[:-1], head, proper),
            count=max(1, min(count, 24)), explicit=explicit,
            definite=bool(det) and det.split()[0] in lx.DEFINITE, fresh=fresh, proper=proper, plural=plural, det=det,
        )

    @staticmethod
    def _name(mods: list[str], head: str, proper: bool) -> str:
        """The short name: the head plus modifiers that make a different thing ("coffee mug", not "red mug")."""
        kept: list[str] = []
        for w in mods:
            low = w.lower()
            if proper and (w[:1].isupper() or w[:1].isdigit()):
                kept.append(w)
            elif (is_adjective(low) or low in lx.NUMBERS or w[:1].isupper() or low.endswith(("'s", "'"))
                  or w in (",", "and", "or") or "-" in low or lx.verb_form(low) in ("ing", "ed")):
                kept = []  # what came before a dropped modifier does not belong to the head either
            else:
                kept.append(low)
        compound = lx.known_compound([m.lower() for m in mods] + [head.lower()])
        words = compound.split() if compound and not proper else kept + [head]
        limit = 3 if compound or proper else 2  # "bakery display case" is a display case
        while len(words) > limit or (len(" ".join(words)) > 48 and len(words) > 1):
            words.pop(0)
        name = " ".join(words)
        if re.search(r" \d+$", name):
            name = re.sub(r" (\d+)$", r"-\1", name)  # "Porsche 911": a trailing number would read as an index
        return name[:64]


# ---------------------------------------------------------------------------------------------------------------
# Pass 3: linking
# ---------------------------------------------------------------------------------------------------------------


HISTORY = 64  # "it" and "them" look this many object mentions back at most
_LOOKBACK = 16  # "the mug" looks at this many of the latest mugs at most


class _Reader:
    """Reads sentence after sentence into one scene; keeps what later sentences refer back to."""

    def __init__(self, scene: Scene, titlecase: bool):
        self.scene = scene
        self.phrases = _Phrases(titlecase)
        self.history: list[Mention] = []  # object mentions so far, for "the cat" and "it"
        self.text_slots: dict[int, int] = {}  # texts already put on each group's instances
        self.mentioned: list[int] = []  # groups in the order they were last named, for "the latter"
        self.relation_keys: set[tuple] = set()
        # groups by name, by last word and by the tails of the last word ("rowboat" under "boat"): lookups stay
        # constant-time however long the prompt is
        self.by_key: dict[str, list[int]] = {}
        self.last_counted: int | None = None  # the latest group drawn more than once, for "the one", "one black"

    def sentence(self, toks: list[Tok]) -> None:
        items = self._items(toks)
        self._link(items)
        mentions = [it.mention for it in items if it.kind == "np"]
        for m in mentions:
            self._classify(m)
        for m in mentions:
            self._resolve(m)
        self._emit(items)
        self.history += [m for m in mentions if m.role == "object"]

    # -- items ---------------------------------------------------------------------------------------------------

    def _items(self, toks: list[Tok]) -> list[Item]:
        out: list[Item] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.text_id is not None:
                out.append(Item("text", str(t.text_id)))
                i += 1
                continue
            phrase = _match_phrase(toks, i)
            if phrase is not None:
                n, (kind, value, pron) = phrase
                if value == "near" and t.low == "by" and i > 0 and lx.verb_form(toks[i - 1].low) == "ed":
                    out.append(Item("other", low="by"))  # "surrounded by", "painted by"
                else:
                    out.append(Item(kind, value, pron=pron, low=" ".join(x.low for x in toks[i:i + n])))
                i += n
                continue
            found = self.phrases.read(toks, i)
            if found is None:
                out.append(Item("other", low=t.low))
                i += 1
                continue
            mention, end = found
            if not mention.det and out and out[-1].kind == "np":
                out.append(Item("other", low=t.low))  # "two pine trees stand ...": a verb, not another phrase
                i += 1
                continue
            i = end
            out.append(Item("np", mention=mention))
            i = self._predicates(toks, i, mention)
        return out

    @staticmethod
    def _predicates(toks: list[Tok], i: int, mention: Mention) -> int:
        """"The car is red and shiny": adjectives after a linking verb describe the phrase; returns the new index."""
        if i >= len(toks) or toks[i].low not in _BE:
            return i
        k, found = i + 1, []
        while k < len(toks) and (is_adjective(toks[k].low) or toks[k].low in ("and", ",")):
            nxt = toks[k + 1] if k + 1 < len(toks) else None
            if nxt and nxt.is_word and nxt.low not in _STOPISH and not is_adjective(nxt.low):
                return i  # "is a red car", "is red paint": the adjective belongs to a noun after it
            if is_adjective(toks[k].low) and toks[k].low not in lx.INTENSIFIERS:
                found.append(toks[k].low)
            k += 1
        if not found:
            return i
        mention.predicates += found
        while toks[k - 1].low in ("and", ","):
            k -= 1
        return k

    # -- structure -----------------------------------------------------------------------------------------------

    def _link(self, items: list[Item]) -> None:
        """Objects and subjects of relations, owners of attachments, subjects of regions; left to right."""
        for k, it in enumerate(items):
            if it.kind == "rel":
                self._object(items, k)
                if it.value == "inside" and it.objects and it.objects[0].head in lx.WEARABLES:
                    it.kind, it.value = "acc", "wear"  # "a farmer in a straw hat"
                    it.objects = []
            if it.kind == "rel":
                if not it.objects and not it.pronoun_object:
                    it.kind = "other"  # "wait in line": no phrase to relate to
                    continue
                after = k + 1 + self._object_span(items, k)
                it.subjects = self._subjects(items, k, after, places=it.value != "behind")
                for m in it.objects:
                    m.object_of = m.object_of or it
            elif it.kind == "region" and not self._text_before(items, k):
                # "in the background, mountains": where scenery belongs, so it does not make it a thing
                it.subjects = self._subjects(items, k, after=k + 1, places=it.value != "back")
            elif it.kind == "acc":
                self._attach(items, k)

    @staticmethod
    def _text_before(items: list[Item], k: int) -> bool:
        """"The title 'X' is at the top": the region is about the text, unless a thing carries the text
        ("a card that says 'X' at the bottom" places the card)."""
        seen = False
        for j in range(k - 1, -1, -1):
            if items[j].kind == "text":
                seen = True
            elif items[j].kind == "np" and items[j].mention.can_be_subject or items[j].kind not in ("other", "np"):
                return seen and not (items[j].kind == "np" and items[j].mention.can_be_subject)
        return seen

    @staticmethod
    def _object_span(items: list[Item], k: int) -> int:
        """How many items the relation's object takes: 1, or 3 for "between A and B"."""
        it = items[k]
        if it.pron:  # "to its left": the pronoun is inside the marker
            return 0
        return 3 if len(it.objects) == 2 else 1

    def _object(self, items: list[Item], k: int) -> None:
        it = items[k]
        if it.pron:
            it.pronoun_object = True
            return
        nxt = items[k + 1] if k + 1 < len(items) else None
        if nxt is None:
            return
        if nxt.kind == "other" and nxt.low in _PRONOUNS:
            it.pronoun_object = True
            it.low = nxt.low
        elif nxt.kind == "np":
            it.objects = [nxt.mention]
            pair = k + 3 < len(items) and items[k + 2].kind == "conj" and items[k + 3].kind == "np"
            if it.value in ("between", "flanked") and pair:  # "between a lamp and a plant"
                it.objects.append(items[k + 3].mention)

    def _subjects(self, items: list[Item], k: int, after: int, places: bool = True) -> list[Mention]:
        """Who a relation or region at ``k`` is about; ``places`` marks them as placed there."""
        j = self._back(items, k)
        if j is None:  # fronted: "Above the fireplace hangs a painting", "On the left, a tall lighthouse"
            f = self._forward(items, after)
            if f is not None:
                subjects = self._conj_forward(items, f)
                for m in subjects:
                    m.placed = m.placed or places
                return subjects
            j = self._back(items, k, through_conj=True)
            if j is None:
                return []
        m = items[j].mention
        verbs = [items[q].low for q in range(j + 1, k) if items[q].kind == "other" and lx.is_verbish(items[q].low)]
        if m.owner is not None and m.acc == "with" and verbs and lx.verb_form(verbs[0]) != "ing":
            # "travelers with suitcases wait on the platform": a finite verb is the travelers' own;
            # "a display with teddy bears sitting on a shelf": a participle describes the bears
            return [m.owner]
        if m.object_of is not None and m.object_of.value in ATTACHING:
            return [m] + [s for s in m.object_of.subjects if s is not m]  # "a cup on a table next to a lamp"
        if m.owner is not None and m.acc in ("wear", "hold"):
            return [m.owner]
        if m.owner is not None and m.head in lx.FEATURES:
            return [m.owner]
        subjects = self._conj_back(items, j, k)
        for s in subjects:
            s.placed = s.placed or places
        actor = self._actor(items, j)
        if actor is not None and actor not in subjects:
            subjects.append(actor)  # "a hedgehog reading a newspaper under a mushroom": the hedgehog is there too
        return subjects

    @staticmethod
    def _actor(items: list[Item], j: int) -> Mention | None:
        """For a phrase that is the object of a verb ("reading a newspaper"), the phrase doing it."""
        q, verb = j - 1, False
        while q >= 0 and items[q].kind == "other" and items[q].low[:1].isalnum():  # "race along a log"
            verb = verb or lx.is_verbish(items[q].low)
            q -= 1
        if not verb:
            return None
        if q < 0 or items[q].kind != "np" or not items[q].mention.can_be_subject:
            return None
        m = items[q].mention
        return m.owner if m.owner is not None and m.acc in ("wear", "hold") else m

    @staticmethod
    def _back(items: list[Item], k: int, through_conj: bool = False) -> int | None:
        """The nearest phrase before ``k`` that can be a subject, looking past verbs and settings only."""
        for j in range(k - 1, -1, -1):
            it = items[j]
            if it.kind == "np":
                m = it.mention
                after_verb = j > 0 and items[j - 1].kind == "other" and lx.is_verbish(items[j - 1].low)
                if m.can_be_subject and not (m.kind == "site" and after_verb):  # "crosses the street in front of"
                    return j
                continue
            if it.kind in ("other", "text", "order", "acc") or (through_conj and it.kind == "conj"):
                continue  # past verbs and "with ..." attachments: "a t-shirt with a logo hangs on a line"
            if it.kind == "rel" and it.pronoun_object:
                continue  # "... printed on it hangs on ...": a closed clause
            if it.kind == "rel" and it.objects and not any(m.can_be_subject for m in it.objects):
                continue  # "a mirror on the wall above a sink": the wall is only where the mirror hangs
            return None
        return None

    @staticmethod
    def _forward(items: list[Item], start: int) -> int | None:
        for j in range(start, len(items)):
            it = items[j]
            if it.kind == "np" and it.mention.can_be_subject:
                return j
            if it.kind in ("other", "text", "order") or (it.kind == "conj" and it.low == ","):
                continue
            return None
        return None

    @staticmethod
    def _conj_forward(items: list[Item], j: int) -> list[Mention]:
        out = [items[j].mention]
        while True:
            q = j + 1
            while q < len(items) and items[q].kind == "conj":
                q += 1
            if q == j + 1 or q >= len(items) or items[q].kind != "np" or not items[q].mention.can_be_subject:
                return out
            out.append(items[q].mention)
            j = q

    @staticmethod
    def _conj_back(items: list[Item], j: int, k: int) -> list[Mention]:
        """The phrase at ``j`` and those listed before it that share its relation at ``k``: "two apples, a banana
        and a pear on a plate" (the last link must be "and"/"or"; a singular verb ends the sharing: "pine trees line
        the shore, and an eagle soars overhead")."""
        out = [items[j].mention]
        if any(items[q].kind == "other" and (items[q].low in ("is", "was", "has") or lx.verb_form(items[q].low) == "s")
               for q in range(j + 1, k)):
            return out
        while True:
            q = j - 1
            while q >= 0 and items[q].kind == "conj":
                q -= 1
            if len(out) == 1 and not any(items[c].low not in (",",) for c in range(q + 1, j)):
                return out  # "a house, a sun in the corner": a comma alone does not share the corner
            if q == j - 1 or q < 0 or items[q].kind != "np":
                return out
            m = items[q].mention
            if m.object_of is not None or m.owner is not None or not m.can_be_subject:
                return out
            out.insert(0, m)
            j = q

    def _attach(self, items: list[Item], k: int) -> None:
        """"a man wearing a hat and a scarf": hat and scarf belong to the man."""
        it = items[k]
        owner = None
        each = k > 0 and items[k - 1].kind == "other" and items[k - 1].low == "each"
        for j in range(k - 1, -1, -1):
            prev = items[j]
            if each and prev.kind == "conj":
                continue  # "four cupcakes ..., each topped with a cherry"
            if prev.kind == "np" and prev.mention.can_be_subject:
                owner = prev.mention
                break
            if prev.kind == "rel" and prev.subjects:  # "his mother stands behind him holding a camera"
                owner = prev.subjects[0]
                break
            if prev.kind not in ("other", "text", "region", "np"):
                break
        if owner is None or k + 1 >= len(items) or items[k + 1].kind != "np":
            return
        if it.value == "with" and owner.object_of is not None and owner.object_of.subjects:
            owner = owner.object_of.subjects[0]  # "a desk by the window with a laptop": the desk has it
        if owner.owner is not None and (owner.head.lower() in lx.FEATURES or owner.acc in ("wear", "hold")):
            owner = owner.owner  # "a girl with long hair holding an umbrella": the girl holds it
        j = k + 1
        while True:
            m = items[j].mention
            m.owner, m.acc, m.each = owner, it.value, each
            q = j + 1
            while q < len(items) and items[q].kind == "conj":
                q += 1
            if q == j + 1 or q >= len(items) or items[q].kind != "np":
                return
            nxt = items[q].mention
            if lx.singular(nxt.head.lower()) in lx.ANIMATE or (q + 1 < len(items) and items[q + 1].kind == "acc"):
                return  # "a girl holding a kite and a boy holding ...": a new subject, not another kite
            j = q

    # -- what each phrase is -------------------------------------------------------------------------------------

    def _classify(self, m: Mention) -> None:
        kind = m.kind
        frame = (  # "on the left side of the picture": the frame itself, unless a picture was mentioned before
            m.definite and m.head in lx.FRAME_WORDS and m.object_of is not None
            and (m.object_of.value in ("left", "right") or m.object_of.value.endswith("_of"))
            and not self.by_key.get("n:" + m.name.lower())
        )
        if kind == "none" or frame:
            m.role = "drop"
        elif kind in ("backdrop", "time", "setting"):
            m.role = "background"
        elif m.owner is not None and m.acc == "sell" and lx.singular(m.owner.head.lower()) in lx.ANIMATE:
            m.acc, m.role = "hold", "object"  # "a vendor selling balloons": the balloons are in his hands
        elif m.owner is not None and (m.head.lower() in lx.FEATURES or m.acc == "sell"
                                      or m.acc == "with" and m.head.lower() in lx.PARTS):
            # "a cat with long hair", "a cabin with a stone chimney": described, not drawn apart;
            # "a food cart selling hot dogs": what a stall or shop sells is what it is, not things beside it
            m.role = "feature"  # "a cat with long hair", "a cabin with a stone chimney": described, not drawn apart
        elif kind == "site":
            # "in a forest", "on the left side of the road": the setting; "in front of the shop": a thing
            where = m.object_of.value if m.object_of is not None else ""
            contained = where in ("on", "inside", "left", "right", "above", "below", "under")
            counted = m.explicit and m.count > 1 and any(c.isdigit() or c in lx.NUMBERS for c in m.det.split())
            directional = where in ("front", "behind", "near", "between", "flank")
            m.role = "object" if counted or directional or (m.placed and not contained) else "background"
        else:
            m.role = "object"

    def _resolve(self, m: Mention) -> None:
        """Give an object mention its group (new, or the one it refers back to); file the rest."""
        groups = self.scene.groups
        if m.role == "background":
            self.scene.background.append(f"{m.written} {m.absorbed}".strip())
            return
        if m.role == "feature":
            if m.owner.target is not None:
                extra = f"{_VERBS.get(m.acc, 'with')} {m.written} {m.absorbed}".strip()
                groups[m.owner.target.group].extras.append(extra)
            return
        if m.elliptical and m.role == "drop":
            self._distribute(m)
            return
        if m.role != "object":
            return
        m.target = self._refer(m)
        if m.target is not None:
            self._add_words(m)
            self._named(m.target.group)
            return
        if m.anaphor:
            m.role = "drop"  # "the one" with nothing counted before it
            return
        if m.definite and m.head.lower() in lx.FEATURES and self.mentioned:
            m.role = "drop"  # "a kite, the tail is angled downwards": a part of what is there, not a new thing
            return
        count = m.count
        owner_count = groups[m.owner.target.group].count if m.owner is not None and m.owner.target is not None else 1
        each = m.each or (m.owner is not None and m.owner.det in ("each", "every"))  # "each cat has a bell"
        if (m.plural and not m.explicit or each) and owner_count > 1 and m.owner.target.instance is None:
            count = owner_count  # "two people with umbrellas", "each with a cherry": one each
        groups.append(Group(
            name=m.name, count=count, words=list(m.predicates) + list(m.words),
            extras=[m.absorbed] if m.absorbed else [], proper=m.proper,
            article=_article_kind(m), stated=m.stated,
        ))
        m.target = Target(len(groups) - 1)
        self._register(len(groups) - 1)
        self._named(m.target.group)

    def _register(self, gi: int) -> None:
        g = self.scene.groups[gi]
        name = g.name.lower()
        last = name.split()[-1]
        keys = {"n:" + name, "l:" + last} | {"t:" + last[i:] for i in range(len(last) - 3)}
        for key in keys:
            self.by_key.setdefault(key, []).append(gi)
        if g.count > 1:
            self.last_counted = gi

    def _named(self, group: int) -> None:
        self.mentioned = [g for g in self.mentioned[-1:] if g != group] + [group]  # the last two are all "former" needs

    def _refer(self, m: Mention) -> Target | None:
        """The earlier thing "the cat" means, if any. Indefinite phrases ("a cat", "two cats") are new things."""
        groups = self.scene.groups
        if m.det in ("each", "every") and not m.fresh:  # "each cat" of the two cats already there
            same = [gi for gi in self.by_key.get("n:" + m.name.lower(), []) if groups[gi].count > 1]
            if same:
                return Target(same[-1])
        if m.fresh or (m.det and not m.definite and m.det != "both"):
            return None
        if m.definite and not m.plural and m.head.lower() in lx.GENERIC and self.mentioned:
            return Target(self.mentioned[-1])  # "a paper airplane, the figure is tilted": the airplane
        if m.which:  # "the latter" is the last thing named, "the former" the one before it
            back = 1 if m.which == "latter" else 2
            return Target(self.mentioned[-back]) if len(self.mentioned) >= back else None
        if m.anaphor:
            gi = self.last_counted
            if gi is None:
                return None
            groups[gi].claimed = min(groups[gi].claimed + 1, groups[gi].count)
            return Target(gi, groups[gi].claimed - 1)
        head, name = m.head.lower(), m.name.lower()
        words = name.split()
        keys = ["n:" + name, "l:" + head] + ["n:" + " ".join(words[i:]) for i in range(1, len(words))]
        if len(head) > 3:
            keys.append("t:" + head)  # "a rowboat ... the boat"
        candidates = self._lookup(keys)
        if not candidates and m.definite:  # "a golden retriever ... the dog", "a car ... the vehicle"
            candidates = self._lookup(["l:" + k for k in sorted(lx.KINDS.get(head, ()))])
        if not candidates and m.definite:  # "a horse ... the stallion": a more specific word for a thing there
            candidates = self._lookup(["l:" + k for k in sorted(lx.KIND_OF.get(head, ()))])
        if not candidates and m.definite and len(m.words) > 1:  # "the mushroom cap": a part of a thing there
            candidates = self._lookup(["l:" + m.words[-2].lower()])
        colours = {w.lower() for w in m.words if w.lower() in lx.COLOURS}
        for gi in candidates:
            g = groups[gi]
            g_colours = {w.lower() for w in g.words if w.lower() in lx.COLOURS}
            if colours and g_colours and not colours & g_colours:
                continue
            ordinal = next((_ORDINALS[w.lower()] for w in m.words if w.lower() in _ORDINALS), None)
            if g.count > 1 and not m.plural and ordinal is not None:  # "the second cupcake"
                return Target(gi, min(g.count - 1, ordinal if ordinal >= 0 else g.count + ordinal))
            if g.count > 1 and not m.plural and m.head not in lx.INVARIANT and g.claimed < g.count:
                # "the blue boat" of three boats is one of them
                g.claimed += 1
                return Target(gi, g.claimed - 1)
            return Target(gi)
        return None

    def _lookup(self, keys: list[str]) -> list[int]:
        """Groups under any of ``keys``, the latest first."""
        found = {gi for key in keys for gi in self.by_key.get(key, ())[-_LOOKBACK:]}
        return sorted(found, reverse=True)

    def _add_words(self, m: Mention) -> None:
        g = self.scene.groups[m.target.group]
        known = {x.lower() for x in g.words}
        new = [w for w in m.predicates + m.words[:-1] if is_adjective(w.lower()) and w.lower() not in known]
        if not new:
            return
        if m.target.instance is None:
            g.words = new + g.words
        else:
            g.instance_words[m.target.instance] = new + g.instance_words.get(m.target.instance, [])

    def _distribute(self, m: Mention) -> None:
        """"two dogs, one black and one white": each elliptical phrase describes the next instance."""
        if self.last_counted is not None:
            g = self.scene.groups[self.last_counted]
            free = [i for i in range(g.count) if i not in g.instance_words]
            if free:
                g.instance_words[free[0]] = [w for w in m.words if w not in (",", "and", "or")]

    # -- relations, regions and texts ----------------------------------------------------------------------------

    def _emit(self, items: list[Item]) -> None:
        """Relations, regions, attachments, "from left to right" orders and texts of one sentence."""
        ordering, order = "", []
        for k, it in enumerate(items):
            if it.kind == "rel":
                self._emit_relation(items, k)
            elif it.kind == "region":
                targets = [m.target for m in it.subjects if m.role == "object" and m.target is not None]
                self.scene.regions += [(t, it.value) for t in targets]
                if not targets:
                    self._text_region(items, k, it.value)
            elif it.kind == "order" and it.value in ("x", "y"):
                ordering = it.value
            elif it.kind == "np" and it.mention.role == "object" and it.mention.target is not None:
                m = it.mention
                if m.owner is not None:
                    self._emit_attachment(items, m)
                elif ordering and m.object_of is None and m.target not in order:
                    order.append(m.target)
        for a, b in itertools.pairwise(order):
            self._add(Relation("left" if ordering == "x" else "above", a, (b,)))
        for k, it in enumerate(items):
            if it.kind == "text":
                self._emit_text(items, k, int(it.value), None)
            elif it.kind == "np":
                for text_id in it.mention.texts:  # 'a "STOP" sign', 'the word "HELLO"'
                    self._emit_text(items, k, text_id, it.mention if it.mention.target is not None else None)

    def _emit_attachment(self, items: list[Item], m: Mention) -> None:
        """A worn, held or "with" thing: placed in (or on, for a surface) its owner, and named in its description."""
        if m.owner.target is None or m.owner.target.group == m.target.group:
            return
        kind = "on" if m.acc == "with" and m.owner.head.lower() in lx.SURFACES else m.acc
        if kind == "with" and any(m in r.subjects for r in items if r.kind == "rel"):
            return  # "with a dew drop to the left of the ladybug": placed by its own relation, not held
        self._add(Relation(kind, m.target, (m.owner.target,)))
        self.scene.groups[m.owner.target.group].extras.append(f"{_VERBS.get(m.acc, 'with')} {m.written}")

    def _add(self, relation: Relation) -> None:
        key = (relation.kind, relation.subject, relation.objects)
        if key not in self.relation_keys:  # a set: a list test here made long prompts quadratic
            self.relation_keys.add(key)
            self.scene.relations.append(relation)

    def _emit_relation(self, items: list[Item], k: int) -> None:
        it = items[k]
        scene = self.scene
        subjects = [m.target for m in it.subjects if m.role == "object" and m.target is not None]
        if not subjects:
            return
        kind = it.value
        if it.pronoun_object:
            pronoun = it.low.split()[-1]
            many = 2 if kind == "between" or pronoun in ("them", "their", "these", "those") else 1
            objects = self._antecedents(items, k, it.subjects, many, pronoun in ("him", "her", "his"))
            obj_mentions: list[Mention] = []
        else:
            obj_mentions = it.objects
            objects = [m.target for m in obj_mentions if m.role == "object" and m.target is not None]
        if kind == "flanked":  # "a door flanked by two lamps": the lamps flank the door
            for o in objects:
                for s in subjects:
                    self._add(Relation("flank", o, (s,)))
            return
        if objects and len(objects) == len(obj_mentions or objects):
            if kind.endswith("_of"):
                kind = {"top_of": "on", "bottom_of": "under", "center_of": "inside"}.get(kind, "inside")
            for s in subjects:
                objs = tuple(o for o in objects if not _overlaps(o, s))
                if len(objs) == len(objects):
                    self._add(Relation(kind, s, objs))
            return
        region = self._region_from(kind, obj_mentions)
        for s in subjects:
            if region:
                scene.regions.append((s, region))

    @staticmethod
    def _region_from(kind: str, obj_mentions: list[Mention]) -> str:
        """A relation to the frame or the setting places its subject in the picture instead."""
        if not obj_mentions:
            return ""
        head = obj_mentions[0].head.lower()
        if kind.endswith("_of"):
            return kind[:-3]
        if kind in ("left", "right"):
            return kind
        if kind == "above" or head in lx.SKY_SETTINGS:
            return "top" if kind in ("above", "on", "inside") else ""
        if kind in ("on", "inside") and head in lx.LOW_SETTINGS:
            return "low"
        if kind in ("on", "inside") and head in lx.WALL_SETTINGS:
            return "wall"
        if kind in ("below", "under"):
            return "bottom"
        if kind == "behind":
            return "back"
        return ""

    def _antecedents(self, items: list[Item], k: int, subjects: list[Mention], n: int, animate: bool) -> list[Target]:
        """What "it"/"them" means: the latest ``n`` things mentioned that are neither the subject nor a side
        detail ("a bicycle between them": the two before it), in the order they were mentioned."""
        here = [it.mention for it in items[:k] if it.kind == "np" and it.mention.role == "object"]
        earlier = self.history[-HISTORY:] + here
        pool = [m for m in reversed(earlier) if m not in subjects and m.target is not None]
        found: list[Mention] = []
        taken = {m.target.group for m in subjects if m.target is not None}
        if animate:  # "behind him": a person or an animal
            pool = [m for m in pool if lx.singular(m.head.lower()) in lx.ANIMATE] or pool
        for strict in (True, False):
            for m in pool:
                if len(found) < n and m.target.group not in taken and not (strict and (m.object_of or m.owner)):
                    taken.add(m.target.group)
                    found.append(m)
        return [Target(m.target.group) for m in sorted(found, key=earlier.index)]

    def _text_region(self, items: list[Item], k: int, region: str) -> None:
        """"The title 'X' is at the top": a region with no object before it places the text."""
        for j in range(k - 1, -1, -1):
            if items[j].kind == "text":
                self.scene.texts[int(items[j].value)].region = region
                return
            if items[j].kind not in ("other", "np"):
                return

    def _emit_text(self, items: list[Item], k: int, text_id: int, owner: Mention | None) -> None:
        """Put a text on the thing that carries it: a sign before it, a wall it is written on, or nothing."""
        owner = owner or self._text_owner(items, k)
        if owner is None or owner.target is None:
            return
        text = self.scene.texts[text_id]
        target = owner.target
        group = self.scene.groups[target.group]
        if target.instance is None and group.count > 1:
            slot = self.text_slots.get(target.group, 0)
            self.text_slots[target.group] = slot + 1
            target = Target(target.group, slot % group.count)
        text.owner = target
        if len(text.content) <= 40:
            group.extras.append(f'with the text "{text.content}"')

    @staticmethod
    def _text_owner(items: list[Item], k: int) -> Mention | None:
        before = [it.mention for it in items[:k] if it.kind == "np" and it.mention.role == "object"]
        carriers = [m for m in before if m.head.lower() in lx.TEXT_CARRIERS or m.name.split()[-1] in lx.TEXT_CARRIERS]
        # "a sticky note on the laptop says ...": the laptop is where the note is, the note carries the text
        carriers = [m for m in carriers if not (m.object_of and any(s in carriers for s in m.object_of.subjects))]
        if carriers:
            return carriers[-1]
        for j in range(k + 1, len(items)):
            it = items[j]
            if it.kind == "rel" and it.objects and it.objects[0].role == "object":
                return it.objects[0]  # '"SALE" is painted on the window'
            if it.kind not in ("other", "rel"):
                break
        for j in range(k - 1, -1, -1):  # "a cake with 'Happy Birthday' written on it"
            it = items[j]
            if it.kind == "np" and it.mention.role == "object":
                return it.mention
            if it.kind not in ("other", "acc", "np"):
                break
        after = [it.mention for it in items[k + 1:] if it.kind == "np" and it.mention.role == "object"]
        carriers = [m for m in after if m.head.lower() in lx.TEXT_CARRIERS]
        return carriers[0] if carriers else None
