"""What ``scenewright eval`` shows: the per-category table (80 columns), eval.json's scores, and report.html.

The HTML is one self-contained page next to its pictures: every piece of text in it (prompts, class names,
OCR output, model ids) is escaped, nothing is loaded from the network, and each case shows its picture with the
detections (or, for a plan, its boxes) drawn, and every clause with pass, fail or not judged.
"""

from __future__ import annotations

import html
from pathlib import Path

from agent.eval import CaseResult

WIDTH = 80
_PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
            (240, 50, 230), (128, 128, 0), (0, 128, 128), (170, 110, 40)]


def summarise(results: list[CaseResult], total: int) -> dict:
    """Per category: cases, correct, judged, unjudged, errors and score (correct / judged); the overall score is
    the mean of the category scores (GenEval), ``correct_share`` the share over all judged cases."""
    cats: dict[str, dict] = {}
    for r in results:
        c = cats.setdefault(r.tag, {"cases": 0, "correct": 0, "judged": 0, "unjudged": 0, "errors": 0})
        c["cases"] += 1
        c["errors"] += r.error is not None
        if r.correct is None:
            c["unjudged"] += 1
        else:
            c["judged"] += 1
            c["correct"] += bool(r.correct)
    for c in cats.values():
        c["score"] = c["correct"] / c["judged"] if c["judged"] else None
    scored = [c["score"] for c in cats.values() if c["score"] is not None]
    judged = sum(c["judged"] for c in cats.values())
    return {
        "cases": total, "done": len(results),
        "overall": sum(scored) / len(scored) if scored else None,
        "correct_share": sum(c["correct"] for c in cats.values()) / judged if judged else None,
        "categories": cats,
        "results": [{"id": r.id, "tag": r.tag, "correct": r.correct, "error": r.error} for r in results],
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:5.1f}%"


def table(summary: dict) -> str:
    """The per-category table as plain text, at most 80 characters a line."""
    s = summary["settings"]
    head = f"scenewright eval: {s['mode']} on profile {s['profile']} (planner {s['planner']['kind']}), seed {s['seed']}"
    columns = f"{'category':<24} {'cases':>6} {'correct':>8} {'unjudged':>9} {'errors':>7} {'score':>8}"
    lines = [head[:WIDTH], "", columns]
    lines.append("-" * 67)
    for tag, c in summary["categories"].items():
        lines.append(f"{tag[:24]:<24} {c['cases']:>6} {c['correct']:>8} {c['unjudged']:>9} {c['errors']:>7} "
                     f"{_pct(c['score']):>8}")
    lines.append("-" * 67)
    lines.append(f"{'overall (mean of categories)':<58} {_pct(summary['overall']):>8}")
    lines.append(f"{'correct cases (all judged)':<58} {_pct(summary['correct_share']):>8}")
    if summary["done"] < summary["cases"]:
        lines.append(f"({summary['done']} of {summary['cases']} cases done; run the same command again to continue)")
    return "\n".join(line[:WIDTH] for line in lines)


def draw_case(out: Path, r: CaseResult) -> str | None:
    """The report picture of a case: the image with its detections, or the plan's boxes on a blank canvas."""
    from PIL import Image, ImageDraw

    if r.image:
        try:
            im = Image.open(r.image).convert("RGB")
        except OSError:
            return None
        boxes = [(cls, f["box"], f"{cls} {f['score']:.2f}" + (f" {f['colour']}" if f.get("colour") else ""))
                 for cls, items in r.found.items() for f in items]
    elif r.objects:
        im = Image.new("RGB", (384, 384), (250, 250, 250))
        boxes = [(o["name"], o["box"], o["name"]) for o in r.objects]
    else:
        return None
    if max(im.size) < 256:  # tiny test images: scale up so the labels can be read
        f = 256 / max(im.size)
        im = im.resize((round(im.width * f), round(im.height * f)), Image.NEAREST)
    im.thumbnail((384, 384))
    draw = ImageDraw.Draw(im)
    keys = list(dict.fromkeys(b[0] for b in boxes))
    for key, box, label in boxes:
        colour = _PALETTE[keys.index(key) % len(_PALETTE)]
        x0, y0, x1, y1 = (box[0] * im.width, box[1] * im.height, box[2] * im.width, box[3] * im.height)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=2)
        draw.text((x0 + 3, y0 + 2), label[:40], fill=colour)
    (out / "pictures").mkdir(exist_ok=True)
    rel = f"pictures/{r.id}.png"
    im.save(out / rel)
    return rel


def _e(text) -> str:
    return html.escape(str(text), quote=True)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}.case{display:flex;gap:1.5em;margin:1.5em 0;
padding-top:1em;border-top:1px solid #ccc}.pass{color:#1a7f37}.fail{color:#c0392b}.unjudged{color:#8a6d00}
img{max-width:384px;border:1px solid #ccc}code{background:#f4f4f4;padding:0 .2em}"""


def write_html(out: Path, summary: dict, results: list[CaseResult]) -> Path:
    s = summary["settings"]
    rows = "".join(
        f"<tr><td>{_e(tag)}</td><td>{c['cases']}</td><td>{c['correct']}</td><td>{c['unjudged']}</td>"
        f"<td>{c['errors']}</td><td>{_e(_pct(c['score']))}</td></tr>"
        for tag, c in summary["categories"].items()
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>scenewright eval</title>",
        f"<style>{_CSS}</style></head><body><h1>scenewright eval</h1>",
        f"<p>{_e(s['mode'])} on profile <code>{_e(s['profile'])}</code>, planner <code>{_e(s['planner'])}</code>,"
        f" seed {_e(s['seed'])}, suite <code>{_e(s['suite'])}</code>; detector <code>{_e(s['detector'])}</code>,"
        f" colours <code>{_e(s['colours'])}</code></p>",
        "<table><tr><th>category</th><th>cases</th><th>correct</th><th>unjudged</th><th>errors</th><th>score</th></tr>",
        rows,
        f"<tr><th colspan=5>overall (mean of categories)</th><th>{_e(_pct(summary['overall']))}</th></tr></table>",
    ]
    for r in results:
        verdict = {True: "pass", False: "fail", None: "unjudged"}[r.correct]
        clauses = "".join(
            f"<li class='{ {True: 'pass', False: 'fail', None: 'unjudged'}[c['passed']] }'>"
            f"{_e({True: 'pass', False: 'fail', None: 'not judged'}[c['passed']])}: {_e(c['kind'])} "
            f"<code>{_e(c['clause'])}</code> {_e(c['reason'])}</li>"
            for c in r.clauses
        )
        picture = f"<img src='{_e(r.picture)}' alt='{_e(r.id)}'>" if r.picture else "<p>(no picture)</p>"
        extra = f"<p class='fail'>error: {_e(r.error)}</p>" if r.error else ""
        run = f"<p>run <code>{_e(r.run_id)}</code></p>" if r.run_id else ""
        read = f"<p>texts read: {_e(r.texts_read)}</p>" if r.texts_read else ""
        parts.append(
            f"<div class='case' id='{_e(r.id)}'><div>{picture}</div><div><h3 class='{verdict}'>{_e(r.id)} · "
            f"{_e(r.tag)} · {verdict}</h3><p>{_e(r.prompt)}</p>{extra}{run}<ul>{clauses}</ul>{read}</div></div>"
        )
    parts.append("</body></html>\n")
    path = out / "report.html"
    path.write_text("".join(parts), encoding="utf-8")
    return path
