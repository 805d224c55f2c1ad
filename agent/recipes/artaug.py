"""ArtAug (Duan et al., 2024), training-free interaction loop, appended after any recipe's output.

    aesthetic0, clip0       aesthetic_score and prompt alignment (region_check over the whole image) of the draft
    artaug (LoopNode)       at most ``rounds`` times, while the aesthetic score is below ``threshold``:
      critique              the VLM's structured suggestions (global: exposure, colour, camera angle,
                            atmosphere…; per box: a region and what it should show)
      apply                 apply_suggestions: global edits → image_to_image with the prompt + edits,
                            box edits → regional_repaint of each box
      aesthetic, clip       score the edited image
      accept                keep it only if the aesthetic score rises and alignment falls by at most ``delta``;
                            otherwise the state keeps the image from before
    output                  artaug.image: the best image (the executor's loop keeps the best state)

Every round's suggestions, edits, scores and decision go to the run's ``critique_trace.json``; each accepted
(before, after, suggestions) pair is copied to the ArtAug dataset folder (``pairs.jsonl`` + PNGs) that
``scenewright distill`` trains a differential LoRA on.

Choice, written down: the loop stops on the score threshold or the round budget. After a rejected round the
critic is asked **again**, with the rejected edits in the question (``critique.rejected``, carried in the loop
state) and a new per-round seed: the same question would be a cache hit and the loop would repeat the same
rejected edit. A critique with no suggestions left leaves the image unchanged, so that round is rejected ("did
not rise") rather than ending the loop: a LoopNode's only stopping rules are its threshold and budget.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.blueprint import Blueprint
from agent.graph import Graph, LoopNode, parse_ref
from agent.recipes.common import node_maker
from tools.base import Registry

LOOP_ID = "artaug"
FULL = [0.0, 0.0, 1.0, 1.0]


def append_artaug(
    graph: Graph,
    bp: Blueprint,
    registry: Registry,
    *,
    rounds: int = 2,
    threshold: float = 0.95,
    delta: float = 0.01,
    min_gain: float = 0.0,
    strength: float = 0.45,
    box_strength: float = 0.75,
    steps: int = 20,
    guidance: float = 7.5,
) -> Graph:
    """The graph with the ArtAug loop after its output; the new output is the loop's best image."""

    node = node_maker(registry)

    draft = {"ref": graph.output}
    prompt = bp.prompt.strip() or bp.global_prompt()
    boxes = [{"name": o.name, "phrase": o.description or o.name, "box": o.box} for o in bp.objects]
    nodes = list(graph.nodes) + [
        node(f"{LOOP_ID}_aesthetic0", "aesthetic_score", image=draft),
        node(f"{LOOP_ID}_clip0", "region_check", image=draft, box=FULL, text=prompt),
        LoopNode(
            id=LOOP_ID,
            state={"image": draft, "score": {"ref": f"{LOOP_ID}_aesthetic0.score"},
                   "clip": {"ref": f"{LOOP_ID}_clip0.score"}, "rejected": []},
            body=[
                node("critique", "critique", image={"ref": "$state.image"}, prompt=prompt, boxes=boxes,
                     rejected={"ref": "$state.rejected"}),
                node("apply", "apply_suggestions", image={"ref": "$state.image"}, prompt=prompt,
                     suggestions={"ref": "critique.suggestions"}, strength=strength, box_strength=box_strength,
                     steps=steps, guidance=guidance),
                node("aesthetic", "aesthetic_score", image={"ref": "apply.image"}),
                node("clip", "region_check", image={"ref": "apply.image"}, box=FULL, text=prompt),
                node("accept", "accept_edit", before={"ref": "$state.image"}, after={"ref": "apply.image"},
                     before_score={"ref": "$state.score"}, after_score={"ref": "aesthetic.score"},
                     before_clip={"ref": "$state.clip"}, after_clip={"ref": "clip.score"},
                     min_gain=min_gain, delta=delta, tried={"ref": "critique.suggestions"},
                     rejected={"ref": "$state.rejected"}),
            ],
            update={"image": "accept.image", "score": "accept.score", "clip": "accept.clip",
                    "rejected": "accept.rejected"},
            score="score",
            threshold=threshold,
            max_iters=rounds,
            carry=["rejected"],
        ),
    ]  # fmt: skip
    return graph.model_copy(update={"nodes": nodes, "output": f"{LOOP_ID}.image"})


def artaug_trace(graph: Graph, outputs: dict) -> dict:
    """Every round: the critique's suggestions, what was applied, the scores and the decision."""
    loop = next(n for n in graph.nodes if n.id == LOOP_ID)
    src, out = parse_ref(loop.state["image"])
    draft = outputs.get(src, {}).get(out)
    start = {"score": outputs.get(f"{LOOP_ID}_aesthetic0", {}).get("score"),
             "clip": outputs.get(f"{LOOP_ID}_clip0", {}).get("score")}
    rounds, best, pairs = [], draft, []
    k = 1
    while f"{LOOP_ID}.i{k}.accept" in outputs:
        o = lambda local: outputs.get(f"{LOOP_ID}.i{k}.{local}", {})  # noqa: E731
        acc = o("accept")
        rounds.append({
            "round": k,
            "vlm_score": o("critique").get("score"),
            "suggestions": o("critique").get("suggestions", []),
            "applied": o("apply").get("applied", []),
            "edit_prompt": o("apply").get("prompt", ""),
            "aesthetic": o("aesthetic").get("score"),
            "clip": o("clip").get("score"),
            "accepted": acc.get("accepted"),
            "decision": acc.get("decision"),
            "image": (o("apply").get("image") or {}).get("$artifact"),
        })  # fmt: skip
        if acc.get("accepted"):
            pairs.append({"round": k, "before": best, "after": acc["image"], "suggestions": rounds[-1]["suggestions"],
                          "edit_prompt": rounds[-1]["edit_prompt"]})
            best = acc["image"]
        k += 1
    final = outputs.get(LOOP_ID, {})
    return {
        "loop": LOOP_ID, "threshold": loop.threshold, "max_rounds": loop.max_iters, "start": start,
        "rounds": rounds, "best_score": final.get("score"), "best_clip": final.get("clip"),
        "best_image": (final.get("image") or {}).get("$artifact"),
        "stopped": ("threshold" if final.get("score") is not None and final["score"] >= loop.threshold
                    else "budget" if len(rounds) >= loop.max_iters else "failed"),
        "_pairs": pairs,
    }  # fmt: skip


def dataset_dir(engine) -> Path:
    return Path(engine.critique_dataset) if getattr(engine, "critique_dataset", None) else engine.store.home / "artaug-dataset"


def record_artaug(engine, record, graph: Graph, result) -> None:
    """Write ``critique_trace.json`` and log each accepted (before, after, suggestion) pair to the dataset."""
    trace = artaug_trace(graph, result.outputs)
    pairs = trace.pop("_pairs")
    record.write_json("critique_trace.json", trace)
    if not pairs:
        return
    root = dataset_dir(engine)
    (root / "images").mkdir(parents=True, exist_ok=True)
    prompt = next((n.inputs.get("prompt") for n in graph.nodes if n.id == f"{LOOP_ID}_clip0"), "")
    prompt = next((n.inputs.get("text") for n in graph.nodes if n.id == f"{LOOP_ID}_clip0"), prompt)
    for p in pairs:
        names = {}
        for side in ("before", "after"):
            digest = p[side]["$artifact"]
            target = root / "images" / f"{digest}.png"
            if not target.exists():
                engine.store.copy_artifact(digest, target)
            names[side] = f"images/{digest}.png"
        row = {"run_id": record.id, "round": p["round"], "prompt": prompt, "edit_prompt": p["edit_prompt"],
               "suggestions": p["suggestions"], "profile": engine.profile.name, "time": round(time.time(), 3), **names}
        with open(root / "pairs.jsonl", "a") as fh:
            fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
