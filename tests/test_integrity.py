"""Nothing on disk is trusted: a replaced, truncated or missing artifact is a cache miss that re-runs its producer,
never a wrong image, never a poisoned cache, never a run left 'running'."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from agent.api import Engine
from agent.executor import Executor
from agent.graph import Graph
from agent.sessions import Sessions
from agent.store import ArtifactError, Store, image_digest
from tests.chat_fixtures import scene_blueprint
from tests.fake_tools import MeanRedTool, PaintTool
from tools.base import Registry


def _pixels(path) -> str:
    with Image.open(path) as im:
        return image_digest(im.convert("RGB"))


def _events(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def _green(path) -> None:
    Image.new("RGB", (512, 512), (0, 255, 0)).save(path)


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _delete(path) -> None:
    path.unlink()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("damage", [_green, _truncate, _delete], ids=["replaced", "truncated", "deleted"])
def test_damaged_artifact_is_a_miss_that_reruns_its_producer(home, damage):
    engine = Engine("preview", home=home)
    first = engine.run_blueprint(scene_blueprint())
    assert first.ok
    good = _pixels(first.image)  # final.png also carries its run id: compare pixels
    result = json.loads((home / "runs" / first.run_id / "result.json").read_text())
    scene = next(e for e in _events(home / "runs" / first.run_id) if e.get("node") == "scene" and e["event"] == "finished")
    damage(engine.store.artifact_path(scene["outputs"]["image"]["$artifact"]))

    again = Engine("preview", home=home).run_blueprint(scene_blueprint())
    assert again.ok and again.cached_nodes == again.total_nodes - 1  # only the damaged node ran again
    assert _pixels(again.image) == good  # the right picture, not the damage
    events = _events(home / "runs" / again.run_id)
    invalid = [e for e in events if e["event"] == "cache_invalid"]
    assert [e["node"] for e in invalid] == ["scene"] and scene["outputs"]["image"]["$artifact"] in invalid[0]["error"]
    assert any(e["event"] == "finished" and e["node"] == "scene" for e in events)
    assert json.loads((home / "runs" / again.run_id / "status.json").read_text())["status"] == "done"
    # healed: the next run is all cache hits, and the final image is still the first one
    third = Engine("preview", home=home).run_blueprint(scene_blueprint())
    assert third.cached_nodes == third.total_nodes
    assert json.loads((home / "runs" / third.run_id / "result.json").read_text())["image_sha256"] == result["image_sha256"]


def test_damaged_final_artifact_never_becomes_final_png(home):
    """The output node's own image damaged: it runs again, and final.png holds the right pixels."""
    engine = Engine("preview", home=home)
    first = engine.run_blueprint(scene_blueprint())
    sha = json.loads((home / "runs" / first.run_id / "result.json").read_text())["image_sha256"]
    _green(engine.store.artifact_path(sha))
    again = Engine("preview", home=home).run_blueprint(scene_blueprint())
    assert again.ok
    with Image.open(again.image) as im:
        assert image_digest(im.convert("RGB")) == sha


def test_chat_edit_never_draws_on_a_damaged_scene(home):
    engine = Engine("preview", home=home)
    session = Sessions(engine).create(blueprint=scene_blueprint())
    first = session.turns()[-1]
    scene = next(e for e in _events(home / "runs" / first.run_id) if e.get("node") == "scene" and e["event"] == "finished")
    _green(engine.store.artifact_path(scene["outputs"]["image"]["$artifact"]))
    # the next turn in a new process (a fresh engine: nothing of the first turn in memory, as after a restart)
    turn = Sessions(Engine("preview", home=home)).open(session.id).send("warmer light")
    assert turn.status == "done"
    events = _events(home / "runs" / turn.run_id)
    assert any(e["event"] == "cache_invalid" and e["node"] == "scene" for e in events)
    with Image.open(turn.image) as im:
        px = im.convert("RGB").getpixel((5, 5))
    assert px != (0, 255, 0)


def test_store_read_verifies_and_removes_damage(tmp_path):
    store = Store(tmp_path / "home")
    img = Image.new("RGB", (8, 8), (10, 20, 30))
    digest = store.put_image(img)
    assert image_digest(store.get_image(digest)) == digest
    path = store.artifact_path(digest)
    Image.new("RGB", (8, 8), (0, 255, 0)).save(path)
    with pytest.raises(ArtifactError, match="other pixels"):
        store.get_image(digest)
    assert not path.exists()  # removed, so the producer's next write replaces it
    with pytest.raises(ArtifactError, match="missing"):
        store.get_image(digest)
    with pytest.raises(ValueError, match="not an artifact hash"):
        store.artifact_path("../../etc/passwd")


def test_check_artifact_sees_a_file_replaced_after_it_was_verified(tmp_path):
    """A long-lived process remembers what it verified, but not past a change to the file."""
    store = Store(tmp_path / "home")
    digest = store.put_image(Image.new("RGB", (8, 8), (1, 2, 3)))
    assert store.check_artifact(digest) is None  # written by us: nothing to decode
    _green(store.artifact_path(digest))
    with pytest.raises(ArtifactError):
        store.check_artifact(digest)


def test_executor_reruns_producer_of_a_missing_artifact(tmp_path):
    store = Store(tmp_path / "home")
    registry = Registry([PaintTool(), MeanRedTool()])
    g = Graph.model_validate({"seed": 0, "output": "m.red", "nodes": [
        {"id": "p", "tool": "paint", "inputs": {"color": "red"}},
        {"id": "m", "tool": "mean_red", "inputs": {"image": {"ref": "p.image"}}},
    ]})
    first = Executor(registry, store).run(g)
    store.artifact_path(first.outputs["p"]["image"]["$artifact"]).unlink()
    events: list[dict] = []
    again = Executor(registry, store, on_event=events.append).run(g)
    assert again.ok and again.output == 1.0 and again.cached_nodes == 1  # m is a hit; p ran again
    assert [e["node"] for e in events if e["event"] == "cache_invalid"] == ["p"]
    assert store.artifact_path(first.outputs["p"]["image"]["$artifact"]).exists()


def test_a_run_that_raises_is_marked_failed_not_running(home, monkeypatch):
    engine = Engine("preview", home=home)

    def boom(source, dest, recipe):
        raise OSError(28, "No space left on device")

    import agent.png_recipe

    monkeypatch.setattr(agent.png_recipe, "write_png", boom)  # writing final.png: the disk is full
    with pytest.raises(OSError):
        engine.run_blueprint(scene_blueprint())
    rows = engine.store.list_runs()
    assert rows[0]["status"] == "failed"
    run_dir = home / "runs" / rows[0]["run_id"]
    assert "No space left" in json.loads((run_dir / "status.json").read_text())["error"]
