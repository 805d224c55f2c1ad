"""RealRAG's trained reflective retriever: `library train` on tiny random CLIP, the head in search and the tool,
refusals of tampered/stale heads, determinism, and a constructed case where the self-reflective negatives matter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_realrag import make_images
from tools.retriever_head import recall_at, train_head

CLI = [sys.executable, "-m", "agent.cli", "library"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.tiny_models import write_tiny_profile

    profile = write_tiny_profile(Path(__file__).parent / ".cache" / "tiny-models-scene-text")
    root = tmp_path_factory.mktemp("head")
    make_images(root / "imgs", n=8)
    return profile, root


def _cli(profile, home, *args):
    env = {"SCENEWRIGHT_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run(CLI + list(args) + ["-p", "tiny", "--config", str(profile)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_train_lowers_loss_is_seeded_and_changes_the_ranking(tiny):
    profile, root = tiny
    home = root / "home"
    assert _cli(profile, home, "add", str(root / "imgs")).returncode == 0
    frozen = json.loads(_cli(profile, home, "search", "a red object", "-k", "9", "--json").stdout)
    assert frozen[0]["ranking"] == "frozen CLIP"
    r = _cli(profile, home, "train", "--epochs", "30", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    meta = json.loads(r.stdout)
    assert meta["metrics"]["loss_final"] < meta["metrics"]["loss_initial"]
    assert meta["losses"][-1] < meta["losses"][0] and meta["reflect"] == "generated" and meta["generator"]
    head_file = home / "library" / "head.safetensors"
    first = head_file.read_bytes()
    # same seed, same bytes (the generated negatives come back from the store's cache)
    assert _cli(profile, home, "train", "--epochs", "30", "--seed", "3").returncode == 0
    assert head_file.read_bytes() == first
    assert _cli(profile, home, "train", "--epochs", "30", "--seed", "4").returncode == 0
    assert head_file.read_bytes() != first
    assert _cli(profile, home, "train", "--epochs", "30", "--seed", "3").returncode == 0
    trained = json.loads(_cli(profile, home, "search", "a red object", "-k", "9", "--json").stdout)
    assert trained[0]["ranking"].startswith("trained head ")
    assert [h["id"] for h in trained] != [h["id"] for h in frozen] or \
        [h["score"] for h in trained] != [h["score"] for h in frozen]
    text = _cli(profile, home, "search", "a red object").stdout
    assert "ranking: trained head" in text


def test_tampered_or_stale_head_is_refused_with_one_line(tiny):
    profile, root = tiny
    home = root / "home2"
    assert _cli(profile, home, "add", str(root / "imgs")).returncode == 0
    assert _cli(profile, home, "train", "--epochs", "3", "--reflect", "none").returncode == 0
    head_file = home / "library" / "head.safetensors"
    good = head_file.read_bytes()
    bad = bytearray(good)
    bad[-3] ^= 0x55
    head_file.write_bytes(bytes(bad))
    r = _cli(profile, home, "search", "a red object")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "sha256" in r.stderr
    head_file.write_bytes(good)
    assert _cli(profile, home, "search", "a red object").returncode == 0
    from PIL import Image

    Image.new("RGB", (40, 40), (1, 200, 3)).save(root / "extra.png")
    assert _cli(profile, home, "add", str(root / "extra.png")).returncode == 0
    r = _cli(profile, home, "search", "a red object")
    assert r.returncode == 2 and "changed since its head was trained" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    bad_mode = _cli(profile, home, "train", "--reflect", "bogus")
    assert bad_mode.returncode == 2 and "--reflect" in bad_mode.stderr


def test_retrieval_tool_uses_the_head_and_names_it(tiny, tmp_path):
    profile, root = tiny
    from agent.api import Engine
    from agent.library_train import train_library
    from tools.retrieval import Library, RetrieveReference, embedder_for
    from tools.roles import RetrieveReferenceIn

    engine = Engine("tiny", config=profile, home=tmp_path)
    lib = Library(tmp_path / "library", embedder_for(engine.profile))
    lib.add(root / "imgs")
    tool = RetrieveReference(lib)
    before = tool.identity()
    out = tool.run([RetrieveReferenceIn(query="a red object", gate=1.5)])[0]
    assert out.ranking == "frozen CLIP" and out.reason.startswith("frozen CLIP")
    train_library(engine, lib, epochs=5, seed=0)
    after = tool.identity()
    assert after["head"] and after != before  # the head is in the cache key
    out = tool.run([RetrieveReferenceIn(query="a red object", gate=1.5)])[0]
    assert out.ranking.startswith("trained head") and out.reason.startswith("trained head")


def _planted(n: int, d: int = 16, seed: int = 0):
    """Queries whose text looks like what the generator draws: t = c + u (u: the generator's own style), the
    real positive p = c + s (the detail the generator lacks), the generator's image g = c + u, and a real
    distractor per query that looks like the generator's output (c + u + noise)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    c = rng.normal(size=(n, d))
    s = rng.normal(size=(n, d)) * 0.6
    t = c + 1.5 * u
    p = c + s
    g = c + 1.5 * u + rng.normal(size=(n, d)) * 0.05
    distract = c + 1.5 * u + rng.normal(size=(n, d)) * 0.3
    return t, p, g, distract


def test_reflective_negatives_matter_on_a_constructed_case():
    t, p, g, distract = _planted(80)
    tr, te = slice(0, 60), slice(60, 80)
    gen = [row[None] for row in g[tr]]
    plain = train_head(t[tr], p[tr], gen, reflect="none", epochs=60, seed=0, lr=0.02)
    refl = train_head(t[tr], p[tr], gen, reflect="generated", epochs=60, seed=0, lr=0.02, weight=4.0)
    assert refl.metrics["loss_final"] < refl.metrics["loss_initial"]

    def held_out(res):
        return recall_at(res.head.text(t[te]), res.head.image(p[te]), 1, gallery=res.head.image(distract[te]))

    frozen = recall_at(t[te], p[te], 1, gallery=distract[te])
    assert held_out(refl) > held_out(plain) + 0.2, (frozen, held_out(plain), held_out(refl))
    assert held_out(refl) > frozen


def test_same_seed_same_head_and_the_head_changes_a_ranking():
    t, p, g, _ = _planted(20, seed=1)
    a = train_head(t, p, [row[None] for row in g], epochs=10, seed=7)
    b = train_head(t, p, [row[None] for row in g], epochs=10, seed=7)
    c = train_head(t, p, [row[None] for row in g], epochs=10, seed=8)
    assert a.head.text_w.tobytes() == b.head.text_w.tobytes() and a.head.image_w.tobytes() == b.head.image_w.tobytes()
    assert a.head.text_w.tobytes() != c.head.text_w.tobytes()
    from tools.retriever_head import _unit

    frozen = np.argsort(-(_unit(p) @ _unit(t[0])))
    trained = np.argsort(-(a.head.image(p) @ a.head.text(t[:1])[0]))
    assert list(frozen) != list(trained)
