"""Score the rule-based planner on a file of prompts with gold objects, texts and relations.

    python bench/planner_eval.py [cases.json] [--json]

Each case is ``{"prompt", "objects": {noun: count}, "texts": [exact strings], "relations": [[A, rel, B], ...]}``
with rel in left/right/above/below. Scores:

* object recall: per gold noun min(predicted count, gold count), summed and divided by the total gold count. A
  predicted object matches a gold noun when its base name (number suffix removed) equals it, or one of them is the
  last word of the other ("coffee mug" ~ "mug"); case is ignored.
* text recall: gold strings found exactly among the predicted texts, over all gold strings.
* relation accuracy: a gold relation holds when every instance of A and every instance of B exist and each pair's
  box centres are ordered as the relation says ("A above B": centre_y(A) < centre_y(B)).
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


def matches(pred_name: str, gold: str) -> bool:
    p, g = _base_name(pred_name).lower(), gold.lower()
    return p == g or p.split()[-1] == g or g.split()[-1] == p


def _centre(box: list[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def relation_holds(bp: Blueprint, a: str, rel: str, b: str) -> bool:
    boxes_a = [o.box for o in bp.objects if matches(o.name, a)]
    boxes_b = [o.box for o in bp.objects if matches(o.name, b)]
    if not boxes_a or not boxes_b:
        return False
    for ba in boxes_a:
        for bb in boxes_b:
            if ba is bb:
                continue
            (ax, ay), (bx, by) = _centre(ba), _centre(bb)
            ok = {"left": ax < bx, "right": ax > bx, "above": ay < by, "below": ay > by}[rel]
            if not ok:
                return False
    return True


def score_case(bp: Blueprint, case: dict) -> dict:
    gold_objects: dict[str, int] = case.get("objects", {})
    found = sum(min(sum(matches(o.name, noun) for o in bp.objects), n) for noun, n in gold_objects.items())
    pred_texts = [t.content for t in bp.texts]
    texts_found = 0
    for t in case.get("texts", []):
        if t in pred_texts:
            pred_texts.remove(t)
            texts_found += 1
    rels = [relation_holds(bp, a, r, b) for a, r, b in case.get("relations", [])]
    return {
        "objects": (found, sum(gold_objects.values())),
        "texts": (texts_found, len(case.get("texts", []))),
        "relations": (sum(rels), len(rels)),
    }


def evaluate(cases: list[dict], planner: RuleBasedPlanner | None = None) -> dict:
    planner = planner or RuleBasedPlanner()
    totals = {"objects": [0, 0], "texts": [0, 0], "relations": [0, 0]}
    per_case = []
    for i, case in enumerate(cases):
        bp = planner.plan(case["prompt"])
        s = score_case(bp, case)
        per_case.append({"case": i, **{k: list(v) for k, v in s.items()}})
        for k, (got, total) in s.items():
            totals[k][0] += got
            totals[k][1] += total

    def ratio(k: str) -> float:
        got, total = totals[k]
        return got / total if total else 1.0

    return {
        "cases": len(cases),
        "object_recall": ratio("objects"),
        "text_recall": ratio("texts"),
        "relation_accuracy": ratio("relations"),
        "totals": totals,
        "per_case": per_case,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="?", default=str(DEFAULT_CASES), help="cases JSON file")
    ap.add_argument("--json", action="store_true", help="print a JSON summary")
    ap.add_argument("-v", "--verbose", action="store_true", help="list the cases that lose points")
    args = ap.parse_args(argv)
    cases = json.loads(Path(args.cases).read_text(encoding="utf-8"))
    result = evaluate(cases)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "per_case" or args.verbose}, indent=2))
        return 0
    t = result["totals"]
    print(f"cases:             {result['cases']}")
    print(f"object recall:     {result['object_recall']:.3f}  ({t['objects'][0]}/{t['objects'][1]})")
    print(f"text recall:       {result['text_recall']:.3f}  ({t['texts'][0]}/{t['texts'][1]})")
    print(f"relation accuracy: {result['relation_accuracy']:.3f}  ({t['relations'][0]}/{t['relations'][1]})")
    if args.verbose:
        for c in result["per_case"]:
            lost = [k for k in ("objects", "texts", "relations") if c[k][0] < c[k][1]]
            if lost:
                print(f"  case {c['case']}: " + ", ".join(f"{k} {c[k][0]}/{c[k][1]}" for k in lost))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
