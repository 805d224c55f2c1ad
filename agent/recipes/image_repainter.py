"""ImageRepainter (Meng et al., AAAI 2025): regenerate a reference image through a description, with revisions.

    round 0   describe   load_image(reference) → describe_image: summary, style, lighting, palette, composition,
                         objects (attributes, boxes), relations → rewrite_prompt(description, n=variants): the
                         filled template (``ImageDescription.template_prompt``) rewritten into ``variants``
                         different prompts, each carrying summary, objects and relations
    round r   one graph: load_image → ``variants`` copies of the LLM Blueprint graph of the description's
              blueprint (:func:`description_to_blueprint`: boxes, object phrases, style, background), copy ``i``
              with rewritten prompt ``i`` as its scene prompt (ids ``v<i>.…``; each copy also gets its own noise
              because node seeds derive from node ids) → image_similarity of each with the reference (CLIP-I +
              DINOv2, weighted) → select_best → compare_images(reference, best, description): revisions + the
              revised description → rewrite_prompt(revised description): round r+1's prompts
    stop      when a round's best similarity reaches ``threshold`` ("threshold"), when the VLM proposes no
              revision ("no revisions"), when its revisions leave the description as it was ("no effective
              revision": the next round would be the same graph, all cache hits), or after ``rounds`` rounds
              ("budget"); the result is the best image of *all* rounds, not the last round's.

Why the round loop lives here and not in a LoopNode: a LoopNode repeats a fixed template of tool calls, but
here each round's *graph* is compiled from the revised blueprint (the number of objects, their boxes and the
repaint loops change), so every round is compiled and run as its own graph. All rounds run under one run
record: ``rounds/r<k>.graph.json``, ``rounds/r<k>.blueprint.json``, the executor events of every round in
``events.jsonl``, the VLM exchanges in ``llm.jsonl``, and ``repaint_trace.json`` with the score trace.
The paper's code sends the template to an LLM once ("a well-structured Stable Diffusion prompt") and then asks
it for 3 synonymous variants; here one ``rewrite_prompt`` exchange (``vlm.rewrite`` in ``llm.jsonl``, text only,
on the profile's VLM) asks for the ``variants`` prompts at once. Without a VLM the preview stand-in reorders the
description's clauses (it says so in ``tools/preview_vlm.py``). Quirks of the paper's code not copied: the best of all rounds is returned (not the last round's), and no revision
is computed after the last round (it would never be rendered).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from agent.blueprint import Blueprint, parse_blueprint
from agent.graph import Graph, LoopNode, ToolNode, map_refs, parse_ref
from agent.recipes.common import node_maker
from agent.recipes.llm_blueprint import compile_llm_blueprint
from tools.roles import ImageDescription

RECIPE = "image_repainter"
_CTRL = re.compile(r"[\x00-\x1f]+")


def _clean(text: str, limit: int) -> str:
    return _CTRL.sub(" ", text or "").strip()[:limit]


def description_to_blueprint(desc: ImageDescription, *, width: int = 512, height: int = 512, seed: int = 0) -> Blueprint:
    """The description as a blueprint: style + lighting → style, composition + palette → background, objects with
    their attributes → described boxes, the filled template (summary, relations included) → the prompt. The
    round's scene prompts are the rewrites of the description (``rewrite_prompt``), not ``bp.prompt``."""
    objects = []
    for o in desc.objects[:24]:
        name = _clean(o.name, 64)
        if not name:
            continue
        attrs = [v for k, v in o.attributes.items() if v and k != "position"]
        words = " ".join(_clean(a, 60) for a in attrs)
        text = f"{words} {name}".strip() if words and words.lower() not in name.lower() else name
        objects.append({"name": name, "description": _clean(text, 400), "box": o.box})
    style = ", ".join(p for p in (_clean(desc.style, 60), _clean(desc.lighting, 50) and f"{_clean(desc.lighting, 50)} lighting") if p)
    background = "; ".join(p for p in (_clean(desc.composition, 200), _clean(desc.palette, 150) and f"palette {_clean(desc.palette, 150)}") if p)
    prompt = _clean(desc.template_prompt(), 8000)
    return parse_blueprint({
        "prompt": prompt, "canvas": {"width": width, "height": height}, "style": style[:120],
        "background": background[:400], "objects": objects, "seed": seed,
    }, check=False)  # fmt: skip


def _prefix_value(value: Any, prefix: str, ids: set[str]) -> Any:
    return map_refs(value, lambda src, out: {"ref": f"{prefix}{src}.{out}" if src in ids else f"{src}.{out}"})


def prefix_graph(graph: Graph, prefix: str) -> tuple[list, str]:
    """The graph's nodes with ids ``<prefix><id>`` (references follow; loop bodies keep their local ids)."""
    ids = {n.id for n in graph.nodes}
    nodes = []
    for n in graph.nodes:
        if isinstance(n, LoopNode):
            nodes.append(n.model_copy(update={"id": prefix + n.id, "state": _prefix_value(n.state, prefix, ids)}))
        else:
            nodes.append(n.model_copy(update={"id": prefix + n.id, "inputs": _prefix_value(n.inputs, prefix, ids)}))
    src, out = parse_ref({"ref": graph.output})
    return nodes, f"{prefix}{src}.{out}"


def _node(registry, id: str, tool: str, **inputs) -> ToolNode:
    return node_maker(registry)(id, tool, **inputs)


def _ref_node(registry, path: str, sha: str, width: int, height: int) -> ToolNode:
    return _node(registry, "reference", "load_image", path=path, sha256=sha, width=width, height=height)


def describe_graph(registry, path: str, sha: str, *, width: int, height: int, seed: int, variants: int) -> Graph:
    nodes = [_ref_node(registry, path, sha, width, height),
             _node(registry, "describe", "describe_image", image={"ref": "reference.image"}),
             _node(registry, "rewrite", "rewrite_prompt", description={"ref": "describe.description"}, n=variants)]
    return Graph(recipe=RECIPE, seed=seed, nodes=nodes, output="describe.description")


def round_graph(
    bp: Blueprint, desc: ImageDescription, registry, path: str, sha: str, *, prompts: list[str], seed: int,
    steps: int, guidance: float, refine_threshold: float, refine_iters: int, clip_weight: float, compare: bool,
) -> Graph:  # fmt: skip
    """One round: a variant per rewritten prompt (its scene prompt), scored, the best compared and re-described."""
    w, h = bp.canvas.width, bp.canvas.height
    nodes: list = [_ref_node(registry, path, sha, w, h)]
    images, scores = [], []
    variants = len(prompts)
    for i, prompt in enumerate(prompts):
        base = compile_llm_blueprint(bp, registry, seed=seed, steps=steps, guidance=guidance,
                                     threshold=refine_threshold, max_iters=refine_iters, scene_prompt=prompt)
        sub, out = prefix_graph(base, f"v{i}.")
        nodes += sub
        nodes.append(_node(registry, f"sim.v{i}", "image_similarity", reference={"ref": "reference.image"},
                           image={"ref": out}, clip_weight=clip_weight))
        images.append({"ref": out})
        scores.append({"ref": f"sim.v{i}.score"})
    nodes.append(_node(registry, "best", "select_best", images=images, scores=scores))
    if compare:
        nodes.append(_node(registry, "compare", "compare_images", reference={"ref": "reference.image"},
                           candidate={"ref": "best.image"}, description=desc.model_dump(mode="json")))
        nodes.append(_node(registry, "rewrite", "rewrite_prompt", description={"ref": "compare.description"},
                           n=variants))
    return Graph(recipe=RECIPE, seed=seed, nodes=nodes, output="best.image")


class RepaintError(RuntimeError):
    """A round failed (a node failed); the message names the node and the run keeps its record."""


def repaint(
    engine, image: str | Path, *, rounds: int = 3, variants: int = 3, threshold: float = 0.95,
    clip_weight: float = 0.5, seed: int = 0, on_event=None,
) -> dict:  # fmt: skip
    """Run ImageRepainter on the reference ``image``; return a summary (see ``repaint_trace.json``)."""
    from agent.api import UserError
    from agent.run import RunCancelled
    from tools.critique_tools import open_image

    if not 1 <= rounds <= 8 or not 1 <= variants <= 8:
        raise UserError("rounds and variants must each be in 1..8")
    if not 0.0 <= threshold <= 1.0 or not 0.0 <= clip_weight <= 1.0:
        raise UserError("threshold and clip weight must be in [0, 1]")
    path = Path(image).expanduser()
    try:
        open_image(path)
    except ValueError as err:
        raise UserError(str(err)) from None
    path = path.resolve()
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    p = engine.profile
    run = engine.start_run({"kind": "repaint", "image": str(path), "image_sha256": sha, "rounds": rounds,
                            "variants": variants, "threshold": threshold, "clip_weight": clip_weight, "seed": seed},
                           prompt=f"<repaint {path.name}>", on_event=on_event)  # fmt: skip
    try:
        record = run.record
        record.write_json("env.json", engine.environment())
        (record.dir / "rounds").mkdir(exist_ok=True)
        record.set_status("running")
        trace: dict = {"recipe": RECIPE, "reference": str(path), "threshold": threshold, "max_rounds": rounds,
                       "variants": variants, "clip_weight": clip_weight, "rounds": []}
        totals = {"nodes": 0, "cached": 0, "seconds": 0.0}

        def execute(graph: Graph, name: str):
            record.write_text(f"rounds/{name}.graph.json", graph.to_json())
            run.seed = graph.seed
            try:
                result = engine.executor.run(graph, run=run)
            finally:
                record.close()
            if result.cancelled:
                record.set_status("cancelled", during=name)
                raise RunCancelled(run.id)
            totals["nodes"] += result.total_nodes
            totals["cached"] += result.cached_nodes
            totals["seconds"] += result.seconds
            if not result.ok:
                node, message = next(iter(result.failed.items()), ("?", "did not finish"))
                fail(f"{name}: node '{node}' failed: {message}")
            return result

        def fail(error: str):
            trace.update(stopped="failed", error=error)
            record.write_json("repaint_trace.json", trace)
            record.set_status("failed", error=error)
            raise RepaintError(f"repaint {error} (run {record.id})")

        def take_prompts(out: dict, name: str) -> list[str]:
            """The rewrite's prompts, bounded; fewer than asked fails the round, never padded."""
            got = [_clean(p, 1000) for p in out["prompts"]][:variants]
            if len(got) != variants or not all(got):
                fail(f"{name}: node 'rewrite' returned {len(got)} usable prompts for {variants} variants")
            return got

        res = execute(describe_graph(engine.registry, str(path), sha, width=p.width, height=p.height, seed=seed,
                                     variants=variants), "r0")
        desc = ImageDescription.model_validate(res.outputs["describe"]["description"])
        prompts = take_prompts(res.outputs["rewrite"], "r0")
        record.write_json("rounds/r0.description.json", desc.model_dump(mode="json"))
        best: dict | None = None
        stopped = "budget"
        for r in range(1, rounds + 1):
            bp = description_to_blueprint(desc, width=p.width, height=p.height, seed=seed)
            record.write_text(f"rounds/r{r}.blueprint.json", bp.to_json())
            last = r == rounds
            graph = round_graph(bp, desc, engine.registry, str(path), sha, prompts=prompts, seed=seed, steps=p.steps,
                                guidance=p.guidance, refine_threshold=p.refine_threshold, refine_iters=p.refine_iters,
                                clip_weight=clip_weight, compare=not last)  # fmt: skip
            res = execute(graph, f"r{r}")
            sims = [res.outputs[f"sim.v{i}"] for i in range(variants)]
            sel = res.outputs["best"]
            entry = {
                "round": r, "scores": [s["score"] for s in sims], "clip": [s["clip"] for s in sims],
                "dino": [s["dino"] for s in sims], "best_index": sel["index"], "best_score": sel["score"],
                "best_image": sel["image"]["$artifact"], "prompts": prompts, "objects": len(bp.objects),
            }  # fmt: skip
            if best is None or sel["score"] > best["score"]:
                best = {"round": r, "score": sel["score"], "image": sel["image"]["$artifact"]}
            entry["kept"] = best["round"] == r
            unchanged = False
            if "compare" in res.outputs:
                cmp = res.outputs["compare"]
                entry["revisions"] = cmp["revisions"]
                revised = ImageDescription.model_validate(cmp["description"])
                unchanged = revised == desc
                desc, prompts = revised, take_prompts(res.outputs["rewrite"], f"r{r}")
                record.write_json(f"rounds/r{r}.description.json", desc.model_dump(mode="json"))
            trace["rounds"].append(entry)
            if best["score"] >= threshold:
                stopped = "threshold"
                break
            if not last and not entry.get("revisions"):
                stopped = "no revisions"
                break
            if not last and unchanged:  # the next round would be this round's graph again
                stopped = "no effective revision"
                break
        assert best is not None
        trace.update(stopped=stopped, best_round=best["round"], best_score=best["score"], best_image=best["image"],
                     score_trace=[e["best_score"] for e in trace["rounds"]])  # fmt: skip
        record.write_json("repaint_trace.json", trace)
        final = record.dir / "final.png"
        from agent.png_recipe import recipe_of, write_png  # the best round's blueprint and graph ride in the PNG

        engine.store.check_artifact(best["image"])  # a damaged artifact never becomes the result
        br = best["round"]
        write_png(engine.store.artifact_path(best["image"]), final, recipe_of(
            record, p.name, blueprint_file=f"rounds/r{br}.blueprint.json", graph_file=f"rounds/r{br}.graph.json"))
        summary = {"status": "done", "image": str(final), "image_sha256": best["image"], "total_nodes": totals["nodes"],
                   "cached_nodes": totals["cached"], "seconds": round(totals["seconds"], 4), "failed": {},
                   "repaint": {k: trace[k] for k in ("stopped", "best_round", "best_score", "score_trace")}}
        record.write_json("result.json", summary)
        record.set_status("done")
        engine.store.update_run(record.id, image=str(final), nodes=totals["nodes"], cached=totals["cached"],
                                seconds=summary["seconds"])
        return {"run_id": record.id, "run_dir": str(record.dir), "image": str(final), "ok": True,
                "rounds": len(trace["rounds"]), "stopped": stopped, "best_round": best["round"],
                "best_score": best["score"], "score_trace": trace["score_trace"]}
    finally:
        engine.forget(run)  # however it ends (idempotent)
