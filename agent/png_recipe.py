"""The recipe inside every PNG a run writes, so an image can be reproduced or continued from the file alone.

Users of ComfyUI and A1111 expect a picture to carry how it was made in its PNG text chunks. A run's
``final.png`` holds two:

- ``scenewright``: one JSON object (compressed, iTXt) with ``format``, ``run_id``, ``profile``, ``seed``, the
  ``blueprint`` (as ``plan --json`` writes it; absent for graph runs) and the ``graph`` that ran;
- ``parameters``: the prompt and ``Seed: N, Profile: P, Run: ID`` on one line, the A1111 convention, for tools
  that show it.

``scenewright run image.png`` (and ``chat --blueprint image.png``) read the ``scenewright`` chunk back: the file is
untrusted, so its size, JSON and schema are checked like any plan file (``agent.api.load_plan_file``). The pixels
are untouched: the artifact store keeps the same image under its pixel hash.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, PngImagePlugin

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHUNK = "scenewright"
FORMAT = 1
MAX_RECIPE_CHARS = 8 * 1024 * 1024  # a blueprint and a graph are small JSON; anything near this is not ours


def recipe_of(record, profile: str, *, blueprint_file: str = "blueprint.json", graph_file: str = "graph.json") -> dict:
    """The recipe of one run, read from its record (request, blueprint and graph as written before it ran; a
    repaint run names its best round's files)."""
    request = record.read_json("request.json") if record.exists("request.json") else {}
    graph = record.read_json(graph_file) if record.exists(graph_file) else None
    blueprint = record.read_json(blueprint_file) if record.exists(blueprint_file) else None
    seed = request.get("seed", (graph or {}).get("seed", 0))
    recipe = {"format": FORMAT, "run_id": record.id, "kind": request.get("kind", "prompt"),
              "profile": request.get("profile", profile), "seed": seed, "graph": graph}
    if blueprint is not None:
        recipe["blueprint"] = blueprint
    if request.get("prompt"):
        recipe["prompt"] = request["prompt"]
    return recipe


def write_png(source: str | Path, dest: str | Path, recipe: dict) -> None:
    """Save the image at ``source`` to ``dest`` with the recipe in its text chunks (same pixels)."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(CHUNK, json.dumps(recipe, sort_keys=True, ensure_ascii=False), zip=True)
    prompt = recipe.get("prompt") or (recipe.get("blueprint") or {}).get("prompt") or ""
    info.add_itxt("parameters", f"{prompt}\nSeed: {recipe['seed']}, Profile: {recipe['profile']}, Run: {recipe['run_id']}")
    with Image.open(source) as im:
        im.save(dest, format="PNG", pnginfo=info)


class RecipeError(ValueError):
    """A PNG that carries no readable scenewright recipe."""


def read_recipe(path: str | Path) -> dict:
    """The ``scenewright`` chunk of a PNG as a dict, or RecipeError in one line saying what is wrong."""
    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()  # text chunks after the image data are read only with it
            text = im.text.get(CHUNK) if hasattr(im, "text") else None
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as e:
        raise RecipeError(f"{p} is not a readable PNG ({e})") from None
    if text is None:
        raise RecipeError(f"{p} carries no scenewright recipe (only PNGs written by a scenewright run do); "
                          "run a blueprint file instead (`scenewright plan --json`)")
    if len(text) > MAX_RECIPE_CHARS:
        raise RecipeError(f"{p}: the recipe is larger than {MAX_RECIPE_CHARS // 1024 // 1024} MiB")
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecipeError(f"{p}: the scenewright recipe is not valid JSON ({e.msg})") from None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("blueprint", recipe.get("graph")), dict):
        raise RecipeError(f"{p}: the scenewright recipe holds neither a blueprint nor a graph")
    return recipe
