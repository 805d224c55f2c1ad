"""A small scene shared by the session, replay, batch, server and browser tests (no planner needed)."""

from __future__ import annotations

import json
from pathlib import Path

SCENE = {
    "prompt": "a black cat next to a wooden bench under a street lamp, a sign that says OPEN",
    "background": "a quiet park",
    "style": "",
    "objects": [
        {"name": "cat", "description": "a black cat", "box": [0.08, 0.55, 0.33, 0.9]},
        {"name": "bench", "description": "a wooden bench", "box": [0.4, 0.6, 0.85, 0.9]},
        {"name": "lamp", "description": "a tall street lamp", "box": [0.7, 0.08, 0.82, 0.55]},
    ],
    "texts": [{"content": "OPEN", "box": [0.3, 0.05, 0.6, 0.2], "style": ""}],
    "seed": 7,
}


def scene_blueprint():
    from agent.blueprint import parse_blueprint

    return parse_blueprint(SCENE)


def write_scene(path: Path, **changes) -> Path:
    path.write_text(json.dumps({**SCENE, **changes}, indent=2))
    return path
