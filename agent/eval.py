"""``scenewright eval``: how faithfully plans and images follow their prompts, by GenEval's rules.

    from agent.api import Engine
    from agent.eval import Evaluation
    from agent.eval_suites import lmd_suite
    summary = Evaluation(Engine("preview"), lmd_suite(), "eval-out", plans_only=True).run()

Every case is scored clause by clause (:mod:`agent.eval_suites` holds the clause form):

* include: at least ``count`` things of the class; with ``color``, that many of the most confident ones have
  that colour; with ``position``, each of them stands in that relation to each thing of the target clause, by
  GenEval's rule on box centres: the offset shrunk by ``POSITION_THRESHOLD`` × (the two boxes' sizes) must point
  mostly along the relation's direction (a "left of" needs a larger horizontal than vertical offset).
* exclude: fewer than ``count`` things of the class.
* texts: each expected text read back (exactly from a plan; by OCR from an image, 1 - normalised edit distance
  at least ``text_threshold``).

A case is correct when every clause passes; a clause that cannot be judged (no CLIP model for colours, no OCR)
is *unjudged*, said so in the report, and its case left out of the score instead of guessed. The score of a
category is its share of correct cases; the overall score is the mean over categories (GenEval's summary).

*Plans* (``plans_only``) are scored from the blueprint alone: its objects are the detections (score 1, colour
from the description's colour words), its texts the texts read, so planners can be compared without a GPU.
*Images* come from ``Engine.generate`` (so the engine's cache and run records apply) and are scored with the
open-vocabulary detector and CLIP colour classifier of :mod:`tools.detector` and the OCR of :mod:`tools.ocr`.

The output folder holds ``results.jsonl`` (one line per finished case: a killed eval continues where it
stopped, and an edited case is scored again), ``eval.json`` (settings, per-category and overall scores) and
``report.html`` with each image, its detections drawn, and pass/fail per clause.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from agent.api import Engine, UserError
from agent.blueprint import Blueprint, _base_name, parse_blueprint
from agent.eval_suites import Case
from planners import lexicon as lx
from planners.base import PlanningError

POSITION_THRESHOLD = 0.1  # GenEval's position_threshold
COLOUR_WORDS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
SCHEMA = "scenewright-eval-1"


@dataclass
class Seen:
    """One thing found for a clause's class: a detection, or an object of the plan."""

    box: tuple[float, float, float, float]  # normalised [x0, y0, x1, y1]
    score: float = 1.0
    colour: str | None = None
    name: str = ""


@dataclass
class ClauseResult:
    kind: str  # include | exclude | text
    clause: str
    passed: bool | None  # None: could not be judged with this profile
    reason: str = ""


def relative_position(a: tuple, b: tuple, threshold: float = POSITION_THRESHOLD) -> set[str]:
    """Where box ``a`` is relative to box ``b``: GenEval's ``relative_position`` (evaluation/evaluate_images.py)."""
    ca = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    cb = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    dims = (abs(a[2] - a[0]) + abs(b[2] - b[0]), abs(a[3] - a[1]) + abs(b[3] - b[1]))
    offset = (ca[0] - cb[0], ca[1] - cb[1])
    revised = [max(abs(o) - threshold * d, 0.0) * math.copysign(1.0, o) for o, d in zip(offset, dims)]
    if all(abs(r) < 1e-3 for r in revised):
        return set()
    norm = math.hypot(*offset)
    dx, dy = revised[0] / norm, revised[1] / norm
    found = set()
    if dx < -0.5:
        found.add("left of")
    if dx > 0.5:
        found.add("right of")
    if dy < -0.5:
        found.add("above")
    if dy > 0.5:
        found.add("below")
    return found


def names_match(name: str, cls: str) -> bool:
    """A planned object counts for a class when its base name, singular, is the class or ends with it as a word
    ("wine glass" for "glass", "teddy bear 2" for "teddy bear")."""
    words = [lx.singular(w) for w in _base_name(name).lower().split()]
    want = [lx.singular(w) for w in cls.lower().split()]
    return bool(words) and (words == want or words[-len(want):] == want or want[-1:] == words)


def ned_ok(expected: str, read: list[str], threshold: float) -> bool:
    from tools.ocr import ned

    return any(1.0 - ned(expected, r) >= threshold for r in read)


ColourOf = Callable[[str, list[Seen]], list[str] | None]


def score_case(case: Case, found: dict[str, list[Seen]], texts: list[str] | None, colour_of: ColourOf,
               text_match: Callable[[str, list[str]], bool]) -> tuple[bool | None, list[ClauseResult]]:
    """GenEval's ``evaluate`` (include clauses with AND, exclude with OR; colour and position on the most
    confident things), plus texts. Positions are checked after every include clause is matched, so a target may
    come later in the list (GenEval files only point backwards, and score the same)."""
    results: list[ClauseResult] = []
    matched: list[list[Seen] | None] = []
    of_include: dict[int, ClauseResult] = {}
    for i, c in enumerate(case.include):
        things = sorted(found.get(c.cls, []), key=lambda s: -s.score)[: c.count]
        if len(things) < c.count:
            reason = f"expected {c.cls}>={c.count}, found {len(things)}"
            results.append(ClauseResult("include", c.text(), False, reason))
            matched.append(None)
            continue
        if c.color:
            colours = colour_of(c.cls, things)
            if colours is None:
                reason = "colour not judged: the profile has no clip model"
                results.append(ClauseResult("include", c.text(), None, reason))
                of_include[i] = results[-1]
                matched.append(things)
                continue
            if colours.count(c.color) < c.count:
                seen = ", ".join(f"{colours.count(x)} {x}" for x in dict.fromkeys(colours))
                results.append(ClauseResult("include", c.text(), False,
                                            f"expected {c.color} {c.cls}>={c.count}, found {seen or 'no colour'}"))
                matched.append(None)
                continue
        results.append(ClauseResult("include", c.text(), True, f"found {len(found.get(c.cls, []))} {c.cls}"))
        of_include[i] = results[-1]
        matched.append(things)
    for i, c in enumerate(case.include):
        if not c.position or matched[i] is None:
            continue
        rel, target = c.position
        r = of_include[i]
        if matched[target] is None:
            r.passed, r.reason = False, f"no target for {c.cls} to be {rel}"
            continue
        if r.passed is None:
            continue
        for a in matched[i]:
            bad = [relative_position(a.box, b.box) for b in matched[target]]
            bad = [rels for rels in bad if rel not in rels]
            if bad:
                r.passed = False
                r.reason = f"expected {c.cls} {rel} target, found {' and '.join(sorted(bad[0])) or 'no clear relation'}"
                break
        else:
            r.reason += f", {rel} {case.include[target].cls}"
    for c in case.exclude:
        n = len(found.get(c.cls, []))
        results.append(ClauseResult("exclude", f"fewer than {c.count} {c.cls}", n < c.count,
                                    f"found {n} {c.cls}" if n >= c.count else ""))
    for t in case.texts:
        if texts is None:
            results.append(ClauseResult("text", f'text "{t}"', None, "text not judged: no OCR engine installed"))
        else:
            ok = text_match(t, texts)
            results.append(ClauseResult("text", f'text "{t}"', ok, "" if ok else f"read {texts[:3]}"))
    if any(r.passed is False for r in results):
        return False, results
    return (None if any(r.passed is None for r in results) else True), results


def classes(case: Case) -> list[str]:
    return list(dict.fromkeys(c.cls for c in case.include + case.exclude))


# --- evidence: a plan -----------------------------------------------------------------------------------------


def plan_evidence(bp: Blueprint, case: Case) -> dict[str, list[Seen]]:
    found: dict[str, list[Seen]] = {}
    for cls in classes(case):
        for o in bp.objects:
            if names_match(o.name, cls):
                words = o.description.lower().replace("-", " ").split()
                colour = next((w for w in words if w in COLOUR_WORDS), None)
                found.setdefault(cls, []).append(Seen(tuple(o.box), 1.0, colour, o.name))
    return found


def plan_colours(cls: str, things: list[Seen]) -> list[str]:
    return [s.colour or "" for s in things]


# --- the run --------------------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    id: str
    digest: str
    tag: str
    prompt: str
    correct: bool | None
    clauses: list[dict] = field(default_factory=list)
    found: dict[str, list[dict]] = field(default_factory=dict)
    objects: list[dict] = field(default_factory=list)  # the plan: name and box of every object
    texts_read: list[str] | None = None
    run_id: str | None = None
    image: str | None = None  # the generated image (image evals)
    picture: str | None = None  # the drawn report picture, relative to the output folder
    error: str | None = None


class Evaluation:
    def __init__(self, engine: Engine, cases: list[Case], out: str | Path, *, plans_only: bool = False,
                 seed: int = 0, detector=None, colours=None, ocr: bool = True, text_threshold: float = 0.8,
                 on_case: Callable[[CaseResult], None] | None = None, suite: str = ""):
        self.engine = engine
        self.cases = cases
        self.out = Path(out)
        self.plans_only = plans_only
        self.seed = seed
        self.detector = detector
        self.colours = colours
        self.ocr = ocr
        self.text_threshold = text_threshold
        self.on_case = on_case
        self.suite = suite
        if not plans_only and detector is None:
            raise UserError("scoring images needs a detector; give the profile models.detector or use --plans-only")
        ids = [c.id for c in cases]
        if len(set(ids)) != len(ids):
            raise UserError("two cases of the suite share an id; ids must be unique")

    def settings(self) -> dict:
        p = self.engine.profile
        return {
            "schema": SCHEMA, "mode": "plans" if self.plans_only else "images", "profile": p.name,
            "planner": p.planner.model_dump(mode="json", include={"kind", "model"}), "seed": self.seed,
            "suite": self.suite,
            "detector": None if self.plans_only else self.detector.identity(),
            "colours": None if self.plans_only or self.colours is None else self.colours.identity(),
            "text_threshold": self.text_threshold, "position_threshold": POSITION_THRESHOLD,
        }

    # -- resuming ----------------------------------------------------------------------------------------------

    def _previous(self) -> dict[str, CaseResult]:
        """Finished cases of an earlier run of this very eval (same settings); anything else is refused."""
        meta = self.out / "eval.json"
        if meta.exists():
            try:
                old = json.loads(meta.read_text(encoding="utf-8")).get("settings")
            except (OSError, ValueError, AttributeError):
                raise UserError(f"{meta} is not an eval summary; give --out an empty or earlier eval folder") from None
            if old != self.settings():
                changed = sorted(k for k in self.settings() if (old or {}).get(k) != self.settings()[k])
                raise UserError(f"{self.out} holds an eval with other settings ({', '.join(changed)}); use another"
                                " --out, or --fresh to start this one over")
        done: dict[str, CaseResult] = {}
        path = self.out / "results.jsonl"
        if not path.exists():
            return done
        digests = {c.id: c.digest() for c in self.cases}
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = CaseResult(**json.loads(line))
            except (ValueError, TypeError):
                continue  # the line a killed eval was writing
            if digests.get(row.id) == row.digest:
                done[row.id] = row
        return done

    # -- scoring one case --------------------------------------------------------------------------------------

    def _case(self, case: Case) -> CaseResult:
        res = CaseResult(case.id, case.digest(), case.tag, case.prompt, None)
        try:
            if self.plans_only:
                bp = self.engine.plan(case.prompt, seed=self.seed)
                image = None
            else:
                outcome = self.engine.generate(case.prompt, seed=self.seed)
                res.run_id, res.image = outcome.run_id, outcome.image
                if not outcome.ok or not outcome.image:
                    raise RuntimeError("the run failed: " + "; ".join(f"{k}: {v}" for k, v in outcome.failed.items()))
                bp = parse_blueprint(json.loads((Path(outcome.run_dir) / "blueprint.json").read_text()), check=False)
                from PIL import Image

                image = Image.open(outcome.image).convert("RGB")
        except (PlanningError, UserError, RuntimeError, OSError, ValueError) as e:
            res.correct, res.error = False, (str(e).splitlines() or [type(e).__name__])[0][:300]
            return res
        res.objects = [{"name": o.name, "box": o.box} for o in bp.objects]
        if image is None:
            found, texts = plan_evidence(bp, case), [t.content for t in bp.texts]
            colour_of: ColourOf = plan_colours

            def text_match(t: str, read: list[str]) -> bool:
                return t in read
        else:
            def text_match(t: str, read: list[str]) -> bool:
                return ned_ok(t, read, self.text_threshold)

            colour_of = self._colour_of(image)
        try:
            if image is not None:
                found = self._detect(image, case)
                texts = self._read_texts(image, bp) if case.texts else []
            res.correct, clauses = score_case(case, found, texts, colour_of, text_match)
        except Exception as e:  # noqa: BLE001 - a model failing on one case is that case's error, not the eval's
            first = (str(e).splitlines() or [""])[0][:240]
            res.correct, res.error = False, f"scoring failed: {type(e).__name__}: {first}"
            return res
        res.clauses = [asdict(c) for c in clauses]
        res.found = {k: [asdict(s) for s in v] for k, v in found.items()}
        res.texts_read = texts
        return res

    def _detect(self, image, case: Case) -> dict[str, list[Seen]]:
        found = self.detector.detect(image, classes(case))
        return {cls: [Seen(f.box, f.score) for f in items] for cls, items in found.items() if items}

    def _colour_of(self, image) -> ColourOf:
        def colour_of(cls: str, things: list[Seen]) -> list[str] | None:
            if self.colours is None:
                return None
            names = self.colours.colours_of(image, [s.box for s in things], cls)
            for s, c in zip(things, names):
                s.colour = c
            return names

        return colour_of

    def _read_texts(self, image, bp: Blueprint) -> list[str] | None:
        """OCR over the boxes the plan gave its texts (the recogniser reads one strip at a time)."""
        from tools import ocr

        if not self.ocr or not ocr.easyocr_available():
            return None
        from tools.model_utils import box_pixels

        ocr.reader()
        return [ocr.read_strip(image.crop(box_pixels(t.box, image.width, image.height)))[0] for t in bp.texts]

    # -- the whole suite ---------------------------------------------------------------------------------------

    def run(self, fresh: bool = False) -> dict:
        from agent.eval_report import draw_case, summarise, write_html

        self.out.mkdir(parents=True, exist_ok=True)
        if fresh:
            for name in ("eval.json", "results.jsonl"):
                (self.out / name).unlink(missing_ok=True)
        done = self._previous()
        results: list[CaseResult] = []
        path = self.out / "results.jsonl"
        torn = path.exists() and path.stat().st_size and path.read_bytes()[-1:] != b"\n"
        with open(path, "a", encoding="utf-8") as log:
            if torn:
                log.write("\n")  # end the line a killed eval left half-written, so the next one stands alone
            for case in self.cases:
                res = done.get(case.id)
                resumed = res is not None
                if res is None:
                    res = self._case(case)
                    res.picture = draw_case(self.out, res)
                    log.write(json.dumps(asdict(res), ensure_ascii=False) + "\n")
                    log.flush()
                results.append(res)
                if self.on_case and not resumed:
                    self.on_case(res)
                if len(results) % 50 == 0:
                    self._write(results, summarise)
        summary = self._write(results, summarise)
        write_html(self.out, summary, results)
        return summary

    def _write(self, results: list[CaseResult], summarise) -> dict:
        summary = {"settings": self.settings(), **summarise(results, len(self.cases))}
        tmp = self.out / ".eval.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(self.out / "eval.json")
        return summary


def build_scorers(profile, *, threshold: float = 0.15, overlap: float = 0.5):
    """(detector, colours) for a profile's ``models.detector`` and ``models.clip``; colours is None without clip."""
    from tools.detector import ClipColours, OwlDetector
    from tools.models import shared_manager

    model = profile.models.get("detector")
    if not model:
        raise UserError(f"profile '{profile.name}' names no detector; add models.detector (an OWLv2 or OWL-ViT"
                        " id or folder, e.g. google/owlv2-base-patch16-ensemble) or use --plans-only")
    mgr = shared_manager(profile.device, profile.dtype, profile.memory_budget_gb, profile.cpu_offload)
    clip = profile.models.get("clip")
    return OwlDetector(mgr, model, threshold=threshold, overlap=overlap), (ClipColours(mgr, clip) if clip else None)
