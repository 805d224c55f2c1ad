"""Pass 3 of reading a prompt: items are linked (a relation's subject and object, an attachment's owner, "the cat"
referring back to "a cat") and emitted into the scene."""

from __future__ import annotations

import itertools

from planners import lexicon as lx
from planners.lexicon import is_adjective
from planners.reader.items import (
    _BE,
    _ORDINALS,
    _PRONOUNS,
    _VERBS,
    ATTACHING,
    Item,
    Mention,
    Tok,
    _article_kind,
    _match_phrase,
    _overlaps,
)
from planners.reader.phrases import _Phrases
from planners.reader.scene import Group, Relation, Scene, Target
from planners.reader.spans import _STOPISH

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
