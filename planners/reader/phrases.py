"""Pass 2 of reading a prompt, continued: noun phrases, found by their determiner or a known noun and ended by
the first word that cannot be inside one."""

from __future__ import annotations

import re

from planners import lexicon as lx
from planners.lexicon import is_adjective
from planners.reader.items import _BE, _SINGULAR_DETS, Mention, Tok, _match_phrase
from planners.reader.spans import _STOPISH

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
