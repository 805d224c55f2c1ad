"""Property-based tests (hypothesis) of the campaign's classes: random plan and graph files, random prompt bytes,
random damage to a store. Whatever the input: never a traceback, and never a wrong image."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from agent.cli import app
from agent.store import image_digest
from tests.chat_fixtures import SCENE

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a red cube left of a blue sphere, a sign that says OPEN"
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cli(*args):
    """In-process CLI; catch_exceptions=False turns any traceback into a test failure."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                      st.floats(allow_nan=False), st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                          max_leaves=12)


@st.composite
def mutated_plan(draw):
    """A valid blueprint or graph with one to three random edits (a value replaced, a key dropped or added)."""
    base = json.loads(json.dumps(draw(st.sampled_from([SCENE, _graph()]))))
    for _ in range(draw(st.integers(1, 3))):
        node, path = base, []
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
            path.append((node, key))
            node = node[key]
        if not path:
            base[draw(st.text(max_size=6))] = draw(json_value)
            continue
        parent, key = path[-1]
        if isinstance(parent, dict) and draw(st.booleans()):
            parent.pop(key)
        else:
            parent[key] = draw(json_value)
    return base


def _graph() -> dict:
    return {"seed": 0, "output": "l.score", "nodes": [
        {"id": "s", "tool": "text_to_image", "inputs": {"prompt": "a cube", "width": 64, "height": 64}},
        {"id": "c", "tool": "region_check", "inputs": {"image": {"ref": "s.image"}, "box": [0.1, 0.1, 0.6, 0.6],
                                                      "text": "a cube"}},
        {"kind": "loop", "id": "l", "state": {"score": {"ref": "c.score"}, "image": {"ref": "s.image"}},
         "body": [{"id": "b", "tool": "region_check",
                   "inputs": {"image": {"ref": "$state.image"}, "box": [0.1, 0.1, 0.6, 0.6], "text": "a cube"}}],
         "update": {"score": "b.score"}, "threshold": 0.99, "max_iters": 1}]}


@pytest.fixture(scope="module")
def home_env():
    folder = Path(tempfile.mkdtemp(prefix="sw-prop-"))
    old = os.environ.get("SCENEWRIGHT_HOME")
    os.environ["SCENEWRIGHT_HOME"] = str(folder / "home")
    yield folder
    if old is None:
        os.environ.pop("SCENEWRIGHT_HOME", None)
    else:
        os.environ["SCENEWRIGHT_HOME"] = old
    shutil.rmtree(folder, ignore_errors=True)


@SETTINGS
@given(plan=mutated_plan())
def test_random_plan_and_graph_files_never_crash(home_env, plan):
    f = home_env / "plan.json"
    f.write_text(json.dumps(plan))
    res = cli("run", f, "--json")
    assert res.exit_code in (0, 1, 2), res.output
    if res.exit_code == 2:
        assert res.stderr.startswith("error:") and len(res.stderr.strip().splitlines()) == 1, res.stderr


@SETTINGS
@given(raw=st.binary(min_size=1, max_size=120))
def test_random_prompt_bytes_never_crash(home_env, raw):
    text = raw.decode("utf-8", errors="surrogateescape")  # what Python makes of argv bytes (PEP 383)
    res = cli("plan", "--json", "--", text)  # after "--": a prompt starting with "-" is a prompt, not an option
    assert res.exit_code in (0, 1, 2), res.output
    if res.exit_code == 0:
        json.loads(res.stdout)  # a blueprint
    else:
        assert res.stderr.startswith("error:"), res.stderr


# --- random store damage --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(home_env):
    """A home with one finished run, and the digest of its right final image."""
    tpl = home_env / "template"
    env = {**os.environ, "SCENEWRIGHT_HOME": str(tpl), "PYTHONPATH": str(ROOT)}
    code = "import sys; from agent.cli import main; sys.argv[0] = 'scenewright'; main()"
    out = subprocess.run([sys.executable, "-c", code, "generate", PROMPT, "--json"], capture_output=True, env=env,
                         check=True)
    with Image.open(json.loads(out.stdout)["image"]) as im:
        return tpl, image_digest(im.convert("RGB"))


def _damage(home: Path, rng: random.Random, kind: str) -> None:
    files = sorted(p for p in home.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm")))
    target = rng.choice(files)
    data = target.read_bytes()
    if kind == "truncate":
        target.write_bytes(data[: rng.randrange(0, max(1, len(data)))])
    elif kind == "flip":
        b = bytearray(data or b"\0")
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 0xFF
        target.write_bytes(bytes(b))
    elif kind == "delete":
        target.unlink()
    elif kind == "swap":  # a different, valid image under an artifact's name
        arts = sorted(home.glob("artifacts/*/*.png"))
        Image.new("RGB", (512, 512), tuple(rng.randrange(256) for _ in range(3))).save(rng.choice(arts))
    elif kind == "garbage":
        target.write_bytes(rng.randbytes(rng.randint(1, 2048)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1),
       kinds=st.lists(st.sampled_from(["truncate", "flip", "delete", "swap", "garbage"]), min_size=1, max_size=3))
def test_random_store_damage_never_a_traceback_never_a_wrong_image(home_env, template, seed, kinds, monkeypatch):
    tpl, good = template
    home = home_env / "damaged"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(tpl, home)
    rng = random.Random(seed)
    for kind in kinds:
        _damage(home, rng, kind)
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(home))
    res = cli("generate", PROMPT, "--json")
    assert res.exit_code in (0, 1, 2), res.output
    if res.exit_code == 0:
        with Image.open(json.loads(res.stdout)["image"]) as im:
            assert image_digest(im.convert("RGB")) == good  # never the damage
    else:
        assert "error:" in res.stderr or "failed" in res.stderr
    # doctor --repair always leaves a home that works, and makes the right picture
    assert cli("doctor", "--repair").exit_code in (0, 1)
    again = cli("generate", PROMPT, "--json")
    assert again.exit_code == 0, again.output
    with Image.open(json.loads(again.stdout)["image"]) as im:
        assert image_digest(im.convert("RGB")) == good
