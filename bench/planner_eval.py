"""Score the rule-based planner on a file of prompts with gold objects, texts and relations.

    python bench/planner_eval.py [cases.json] [--split dev|holdout|all] [--json] [-v]

Each case is ``{"prompt", "objects": {noun: count}, "texts": [exact strings], "relations": [[A, rel, B], ...]}``
and may add ``"class"`` (a blind-spot class; the report then has one row per class), ``"split"`` (dev or
holdout), ``"absent"`` (nouns that must not become objects) and ``"dense"`` (a long prompt whose gold objects are
complete, so anything else the plan draws counts as an extra). Scores:

* object recall: per gold noun min(predicted count, gold count), summed and divided by the total gold count. A
  predicted object matches a gold noun when its base name (number suffix removed) equals it, or one of them is the
  last word of the other ("coffee mug" ~ "mug"); case is ignored.
* text recall: gold strings found exactly among the predicted texts, over all gold strings; invented texts are
  the predicted texts that are not gold.
* relation accuracy: a gold relation holds when every instance of A and every instance of B exist and each pair
  satisfies it. left/right/above/below: box centres ordered as the relation says ("A above B": centre_y(A) <
  centre_y(B)); *along its own axis* additionally needs the offset on the relation's axis to exceed the one on the
  other axis (GenEval's rule). on: A's centre above B's and A's top above B's top (not hidden inside B). under:
  A's centre below B's and A visible: not wholly inside B's box, or painted after B. region low/top/wall: the
  centre in the lower half, the upper half, or the box reaching the upper half.
* absent: objects named like an ``absent`` noun (a prose word, a negated thing, a repeat made new).
* extras: predicted instances that match no gold noun, plus any beyond a gold count (per prompt on dense cases;
  per class the total, since every case lists all the objects its prompt asks for).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.blueprint import Blueprint, _base_name
from planners.rule_based import RuleBasedPlanner

DEFAULT_CASES = Path(__file__).resolve().parents[1] / "tests" / "data" / "planner_cases.json"
BLINDSPOTS = Path(__file__).resolve().parents[1] / "tests" / "data" / "planner_blindspots.json"
CLASSES = {
    1: "colour word that is also a noun", 2: "noun the lexicon lacks", 3: "sky thing in a left/right relation",
    4: "on top of / beneath / above", 5: "surface named in a relation", 6: "invented text, abstract nouns",
    7: "repeated mentions", 8: "dense-prompt phenomena",
}


def matches(pred_name: str, gold: str) -> bool:
    p, g = _base_name(pred_name).lower(), gold.lower()
    return p == g or p.split()[-1] == g or g.split()[-1] == p


def _centre(box: list[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _inside(a: list[float], b: list[float]) -> bool:
    return a[0] >= b[0] and a[1] >= b[1] and a[2] <= b[2] and a[3] <= b[3]


def _pair_holds(rel: str, ia: int, ib: int, bp: Blueprint, own_axis: bool) -> bool:
    ba, bb = bp.objects[ia].box, bp.objects[ib].box
    (ax, ay), (bx, by) = _centre(ba), _centre(bb)
    dx, dy = bx - ax, by - ay
    if rel in ("left", "right", "above", "below"):
        ok = {"left": dx > 0, "right": dx < 0, "above": dy > 0, "below": dy < 0}[rel]
        if own_axis:
            ok = ok and (abs(dx) > abs(dy) if rel in ("left", "right") else abs(dy) > abs(dx))
        return ok
    if rel == "on":
        return ay < by and ba[1] < bb[1]
    if rel == "under":
        return ay > by and (not _inside(ba, bb) or ia > ib)
    raise ValueError(f"unknown relation {rel!r}")


def _region_holds(box: list[float], region: str) -> bool:
    cx, cy = _centre(box)
    return {"low": cy > 0.5, "top": cy < 0.5, "wall": box[1] < 0.5}[region]


def relation_holds(bp: Blueprint, a: str, rel: str, b: str, own_axis: bool = False) -> bool:
    idx_a = [i for i, o in enumerate(bp.objects) if matches(o.name, a)]
    if not idx_a:
        return False
    if rel == "region":
        return all(_region_holds(bp.objects[i].box, b) for i in idx_a)
    idx_b = [i for i, o in enumerate(bp.objects) if matches(o.name, b)]
    if not idx_b:
        return False
    return all(_pair_holds(rel, ia, ib, bp, own_axis) for ia in idx_a for ib in idx_b if ia != ib)


def extras(bp: Blueprint, gold_objects: dict[str, int]) -> int:
    """Instances the prompt did not ask for: matching no gold noun, or beyond a gold noun's count."""
    left = dict(gold_objects)
    extra = 0
    for o in bp.objects:
        noun = next((g for g in left if matches(o.name, g) and left[g] > 0), None)
        if noun is None:
            extra += 1
        else:
            left[noun] -= 1
    return extra


def score_case(bp: Blueprint, case: dict) -> dict:
    gold_objects: dict[str, int] = case.get("objects", {})
    found = sum(min(sum(matches(o.name, noun) for o in bp.objects), n) for noun, n in gold_objects.items())
    pred_texts = [t.content for t in bp.texts]
    texts_found = 0
    for t in case.get("texts", []):
        if t in pred_texts:
            pred_texts.remove(t)
            texts_found += 1
    gold_rels = case.get("relations", [])
    rels = [relation_holds(bp, a, r, b) for a, r, b in gold_rels]
    axis = [relation_holds(bp, a, r, b, own_axis=True) for a, r, b in gold_rels]
    absent = [n for n in case.get("absent", []) if any(matches(o.name, n) for o in bp.objects)]
    return {
        "objects": (found, sum(gold_objects.values())),
        "texts": (texts_found, len(case.get("texts", []))),
        "relations": (sum(rels), len(rels)),
        "own_axis": (sum(axis), len(axis)),
        "invented_texts": pred_texts,
        "absent_found": absent,
        "extras": extras(bp, gold_objects),
    }


def evaluate(cases: list[dict], planner: RuleBasedPlanner | None = None) -> dict:
    planner = planner or RuleBasedPlanner()
    keys = ("objects", "texts", "relations", "own_axis")
    totals = {k: [0, 0] for k in keys}
    per_case = []
    for i, case in enumerate(cases):
        bp = planner.plan(case["prompt"])
        s = score_case(bp, case)
        passed = all(s[k][0] == s[k][1] for k in keys) and not s["invented_texts"] and not s["absent_found"]
        per_case.append({"case": i, "class": case.get("class"), "dense": bool(case.get("dense")), "pass": passed,
                         **{k: list(s[k]) if k in keys else s[k] for k in s},
                         "predicted": [o.name for o in bp.objects]})
        for k in keys:
            totals[k][0] += s[k][0]
            totals[k][1] += s[k][1]

    def ratio(k: str) -> float:
        got, total = totals[k]
        return got / total if total else 1.0

    return {
        "cases": len(cases),
        "object_recall": ratio("objects"),
        "text_recall": ratio("texts"),
        "relation_accuracy": ratio("relations"),
        "own_axis_accuracy": ratio("own_axis"),
        "invented_texts": sum(len(c["invented_texts"]) for c in per_case),
        "absent_found": sum(len(c["absent_found"]) for c in per_case),
        "totals": totals,
        "per_case": per_case,
    }


def by_class(result: dict) -> dict[int, dict]:
    """Per blind-spot class: recall of objects, texts and relations, prose made into things, cases passed."""
    rows: dict[int, dict] = {}
    for c in result["per_case"]:
        if c["class"] is None:
            continue
        r = rows.setdefault(c["class"], {"cases": 0, "passed": 0, "objects": [0, 0], "texts": [0, 0],
                                         "relations": [0, 0], "own_axis": [0, 0], "wrong": 0, "extras": 0})
        r["cases"] += 1
        r["passed"] += c["pass"]
        for k in ("objects", "texts", "relations", "own_axis"):
            r[k][0] += c[k][0]
            r[k][1] += c[k][1]
        r["wrong"] += len(c["invented_texts"]) + len(c["absent_found"])
        r["extras"] += c["extras"]
    return dict(sorted(rows.items()))


def dense_metrics(result: dict) -> dict | None:
    """The three aims for long prompts: extra objects per prompt, relations along their own axis, invented text."""
    dense = [c for c in result["per_case"] if c["dense"]]
    if not dense:
        return None
    got = sum(c["own_axis"][0] for c in dense)
    total = sum(c["own_axis"][1] for c in dense)
    return {
        "prompts": len(dense),
        "extras_per_prompt": sum(c["extras"] for c in dense) / len(dense),
        "own_axis_accuracy": got / total if total else 1.0,
        "own_axis": [got, total],
        "invented_texts": sum(len(c["invented_texts"]) for c in dense),
        "object_recall": sum(c["objects"][0] for c in dense) / max(1, sum(c["objects"][1] for c in dense)),
    }


def _fraction(pair: list[int]) -> str:
    got, total = pair
    return f"{got / total:.2f} ({got}/{total})" if total else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="?", default=str(DEFAULT_CASES), help="cases JSON file")
    ap.add_argument("--blindspots", action="store_true", help=f"use {BLINDSPOTS.name} (one row per class)")
    ap.add_argument("--split", choices=("dev", "holdout", "all"), default="all",
                    help="only the cases of this split (cases without a split count as dev)")
    ap.add_argument("--json", action="store_true", help="print a JSON summary")
    ap.add_argument("-v", "--verbose", action="store_true", help="list the cases that lose points")
    args = ap.parse_args(argv)
    path = BLINDSPOTS if args.blindspots else Path(args.cases)
    cases = json.loads(path.read_text(encoding="utf-8"))
    if args.split != "all":
        cases = [c for c in cases if c.get("split", "dev") == args.split]
    result = evaluate(cases)
    classes, dense = by_class(result), dense_metrics(result)
    if args.json:
        summary = {k: v for k, v in result.items() if k != "per_case" or args.verbose}
        print(json.dumps({**summary, "by_class": classes, "dense": dense}, indent=2))
        return 0
    t = result["totals"]
    print(f"cases:             {result['cases']}  ({path.name}, split {args.split})")
    print(f"object recall:     {result['object_recall']:.3f}  ({t['objects'][0]}/{t['objects'][1]})")
    print(f"text recall:       {result['text_recall']:.3f}  ({t['texts'][0]}/{t['texts'][1]})")
    print(f"relation accuracy: {result['relation_accuracy']:.3f}  ({t['relations'][0]}/{t['relations'][1]})")
    print(f"  on its own axis: {result['own_axis_accuracy']:.3f}  ({t['own_axis'][0]}/{t['own_axis'][1]})")
    print(f"invented texts:    {result['invented_texts']}   prose/absent things drawn: {result['absent_found']}")
    if classes:
        print(f"\n{'class':<40} {'cases':>5} {'pass':>5}  {'objects':<14} {'relations':<14} {'axis':<14} wrong extra")
        for k, r in classes.items():
            print(f"{k} {CLASSES.get(k, '')[:38]:<38} {r['cases']:>5} {r['passed']:>5}  {_fraction(r['objects']):<14} "
                  f"{_fraction(r['relations']):<14} {_fraction(r['own_axis']):<14} {r['wrong']:>5} {r['extras']:>5}")
    if dense:
        print(f"\ndense prompts: {dense['prompts']}  extras/prompt {dense['extras_per_prompt']:.2f}  "
              f"own-axis relations {_fraction(dense['own_axis'])}  invented texts {dense['invented_texts']}  "
              f"object recall {dense['object_recall']:.2f}")
    if args.verbose:
        for c in result["per_case"]:
            lost = [k for k in ("objects", "texts", "relations", "own_axis") if c[k][0] < c[k][1]]
            wrong = c["invented_texts"] + c["absent_found"]
            if lost or wrong or (c["dense"] and c["extras"]):
                print(f"  case {c['case']} (class {c['class']}): " + ", ".join(f"{k} {c[k][0]}/{c[k][1]}" for k in lost)
                      + (f" wrong {wrong}" if wrong else "") + (f" extras {c['extras']}" if c["dense"] else "")
                      + f"\n      {cases[c['case']]['prompt'][:90]!r}\n      -> {c['predicted']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
