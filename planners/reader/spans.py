"""Pass 1 of reading a prompt: spans cut from the raw text (quoted text, style, exclusions, times), each leaving
a placeholder or a neutral mark so the sentence keeps its shape."""

from __future__ import annotations

import re

from planners import lexicon as lx
from planners.lexicon import is_adjective

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
