"""Chat sessions on the preview profile: edits re-run only what they touch, undo, branch, persistence, recovery."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.api import Engine, UserError
from agent.edits import (
    EditError,
    ResizeObject,
    SceneState,
    SetText,
    apply_edits,
    edit_plan_schema,
    parse_edit_plan,
)
from agent.sessions import Sessions
from tests.chat_fixtures import scene_blueprint, write_scene
from planners.edit_rules import parse_message


@pytest.fixture
def sessions(tmp_path):
    return Sessions(Engine("preview", home=tmp_path / "home"))


def finished_nodes(engine, run_id):
    events = engine.store.open_run(run_id).read_jsonl("events.jsonl")
    return [e["node"] for e in events if e["event"] == "finished"], [
        e["node"] for e in events if e["event"] == "cached"
    ]


def crop_mean(path, box):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    return np.asarray(im.crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h))), float).mean((0, 1))


def test_five_turn_chat_reruns_only_affected_nodes(sessions):
    s = sessions.create(blueprint=scene_blueprint())
    first = s.turns()[0]
    assert first.status == "done" and first.cached == []
    assert {"scene", "check.cat", "check.bench", "check.lamp", "compose", "text"} <= set(first.reran)

    # 1. a layout change: the global pass and everything after it
    t1 = s.send("make the cat bigger")
    assert t1.status == "done" and t1.changes[0].startswith("resized cat")
    assert "scene" in t1.reran and "compose" in t1.reran and "text" in t1.reran

    # 2. scene text is drawn last: only `text`
    t2 = s.send("the sign should say CLOSED")
    assert t2.reran == ["text"]
    assert set(t2.cached) == {"scene", "check.cat", "check.bench", "check.lamp", "compose"}

    # 3. one object's colour: repaint that object on the previous scene; other objects from the cache
    t3 = s.send("make the cat red")
    assert set(t3.reran) == {"check.cat", "refine.cat.i1.repaint", "refine.cat.i1.check", "compose", "text"}
    assert {"scene", "check.bench", "check.lamp"} <= set(t3.cached)
    cat_box = t3.blueprint.objects[0].box
    r, g, b = crop_mean(t3.image, cat_box)
    r2, g2, b2 = crop_mean(t2.image, cat_box)
    assert r - (g + b) / 2 > r2 - (g2 + b2) / 2 + 30  # visibly redder than the black cat

    # 4. a look adjustment: only the final `adjust` node
    t4 = s.send("warmer light")
    assert t4.reran == ["adjust"] and t4.state["look"] == ["warmer light"]
    warm, before = Image.open(t4.image).convert("RGB"), Image.open(t3.image).convert("RGB")
    cast = lambda im: float(np.asarray(im, float)[..., 0].mean() - np.asarray(im, float)[..., 2].mean())  # noqa: E731
    assert cast(warm) > cast(before) + 3

    # 5. undo: the picture of turn 3 again, entirely from the cache
    t5 = s.send("undo")
    assert t5.kind == "undo" and t5.reran == [] and t5.result["image_sha256"] == t3.result["image_sha256"]

    # the run records' events say the same
    for t in (t1, t2, t3, t4, t5):
        ran, cached = finished_nodes(sessions.engine, t.run_id)
        assert ran == t.reran and cached == t.cached


def test_undo_walks_back_and_stops_at_the_start(sessions):
    s = sessions.create(blueprint=scene_blueprint())
    t1 = s.send("the sign should say ONE")
    s.send("the sign should say TWO")
    u1 = s.undo()
    assert u1.blueprint.texts[0].content == "ONE" and u1.reran == []
    u2 = s.undo()
    assert u2.blueprint.texts[0].content == "OPEN" and u2.result["image_sha256"] == s.turn(0).result["image_sha256"]
    with pytest.raises(UserError, match="nothing to undo"):
        s.undo()
    # an edit after undo builds on the undone state
    t = s.send("the sign should say THREE")
    assert t.prev == u2.index and t.reran == ["text"]
    assert t1.result["image_sha256"] != t.result["image_sha256"]


def test_branch_from_an_earlier_turn(sessions):
    s = sessions.create(blueprint=scene_blueprint())
    s.send("the sign should say CLOSED")
    s.send("make the cat bigger")
    b = s.branch(1)
    assert b.id != s.id and b.info["parent_session"] == s.id and b.info["parent_turn"] == 1
    root = b.turns()[0]
    assert root.kind == "branch" and root.blueprint.texts[0].content == "CLOSED"
    assert root.blueprint.objects[0].box == scene_blueprint().objects[0].box  # before "bigger"
    t = b.send("make the cat red")
    assert "scene" in t.cached  # the branch shares the cache with its parent
    assert len(s.turns()) == 3  # the original is untouched
    with pytest.raises(UserError):
        s.branch(99)


def test_rejected_message_keeps_state_and_is_recorded(sessions):
    s = sessions.create(blueprint=scene_blueprint())
    with pytest.raises(UserError, match="no 'giraffe'"):
        s.send("make the giraffe bigger")
    with pytest.raises(UserError, match="did not understand"):
        s.send("sing me a song")
    turns = s.turns()
    assert [t.status for t in turns] == ["done", "rejected", "rejected"]
    assert s.head().index == 0
    assert s.send("the sign should say OK").reran == ["text"]
    with pytest.raises(UserError, match="empty"):
        s.send("   ")


def test_session_survives_a_restart(tmp_path):
    home = tmp_path / "home"
    s = Sessions(Engine("preview", home=home)).create(blueprint=scene_blueprint())
    s.send("move the lamp to the left")
    sid = s.id
    # a new process: new engine, new connections
    again = Sessions(Engine("preview", home=home))
    assert [r["session_id"] for r in again.list()] == [sid]
    s2 = again.open(sid)
    assert len(s2.turns()) == 2 and s2.head().index == 1
    t = s2.send("the sign should say CLOSED")
    assert t.reran == ["text"]
    with pytest.raises(UserError):
        again.open("../../etc")
    with pytest.raises(UserError, match="no session"):
        again.open("s-does-not-exist")


def test_interrupted_turns_are_finished_on_recovery(tmp_path, monkeypatch):
    home = tmp_path / "home"
    sessions = Sessions(Engine("preview", home=home))
    s = sessions.create(blueprint=scene_blueprint())
    queued = s.submit("the sign should say QUEUED")  # accepted, then the process died before working on it

    # a turn killed mid-run: its run record has the graph but the executor never finished
    def crash(graph, run, *, blueprint=None, **_):
        run.record.write_text("graph.json", graph.to_json())
        run.record.write_text("blueprint.json", blueprint.to_json())
        raise SystemExit("killed")

    running = s.submit("make the cat red")
    monkeypatch.setattr(sessions.engine, "execute", crash)
    with pytest.raises(SystemExit):
        s.process(queued.index)
    monkeypatch.undo()
    row = s.turn(queued.index)
    row.status = "running"  # what a kill -9 leaves behind (the handler never ran)
    sessions.db.save_turn(row)

    fresh = Sessions(Engine("preview", home=home))
    done = fresh.recover()
    assert [(t.index, t.status) for t in done] == [(queued.index, "done"), (running.index, "done")]
    s2 = fresh.open(s.id)
    assert s2.turn(queued.index).blueprint.texts[0].content == "QUEUED"
    assert s2.turn(running.index).blueprint.objects[0].description == "a red cat"


# --- the rule-based parser and the edit operations ------------------------------------------------------------------
@pytest.mark.parametrize(
    "message, expected",
    [
        ("make the cat bigger", "resized cat"),
        ("Please make the cat much smaller.", "resized cat"),
        ("move the lamp to the left", "moved lamp"),
        ("move the cat a bit up", "moved cat"),
        ("the sign should say CLOSED", "text 'OPEN' → 'CLOSED'"),
        ('change the text to "SALE 50%"', "text 'OPEN' → 'SALE 50%'"),
        ("replace OPEN with CLOSED", "text 'OPEN' → 'CLOSED'"),
        ("add a dog next to the bench", "added dog"),
        ("remove the lamp", "removed lamp"),
        ("make the cat orange and white", "cat: 'a black cat' → 'an orange and white cat'"),
        ("the cat should be fluffy", "cat: 'a black cat' → 'a fluffy black cat'"),
        ("warmer light", "look: warmer light"),
        ("more contrast", "look: more contrast"),
        ("watercolor style", "style: '' → 'watercolor style'"),
        ("change the background to a beach at sunset", "background: 'a quiet park' → 'a beach at sunset'"),
        ("make it night", "background: 'a quiet park' → 'a quiet park, at night'"),
        ("try again", "seed 7 → 8"),
        ("put the cat on the bench", "placed cat"),
    ],
)
def test_rule_parser(message, expected):
    state = SceneState(blueprint=scene_blueprint())
    plan = parse_message(message, state)
    _, changes = apply_edits(state, plan.ops)
    assert changes[0].startswith(expected), changes


def test_rule_parser_several_edits_and_undo():
    state = SceneState(blueprint=scene_blueprint())
    plan = parse_message("make the cat bigger and move the lamp to the left", state)
    assert [op.op for op in plan.ops] == ["resize_object", "move_object"]
    assert parse_message("undo", state).action == "undo"
    assert parse_message("Undo that.", state).action == "undo"


def test_rule_parser_refers_to_one_of_several():
    bp = scene_blueprint().model_copy(
        update={
            "objects": [
                *scene_blueprint().objects[:1],
                scene_blueprint().objects[0].model_copy(update={"name": "cat 2", "box": [0.5, 0.1, 0.7, 0.4]}),
            ],
            "references": [],
        }
    )
    state = SceneState(blueprint=bp)
    with pytest.raises(EditError, match="which cat"):
        parse_message("make the cat bigger", state)
    assert [op.name for op in parse_message("make the cats bigger", state).ops] == ["cat", "cat 2"]
    assert [op.name for op in parse_message("make the right cat bigger", state).ops] == ["cat 2"]
    assert [op.name for op in parse_message("make cat 2 red", state).ops] == ["cat 2"]


def test_edit_ops_validate_like_model_output():
    state = SceneState(blueprint=scene_blueprint())
    with pytest.raises(EditError, match="no object named 'dog'"):
        apply_edits(state, [ResizeObject(name="dog", scale=2)])
    with pytest.raises(EditError, match="no text 'NOPE'"):
        apply_edits(state, [SetText(old="NOPE", content="X")])
    plan = parse_edit_plan(
        json.dumps({"action": "edit", "ops": [{"op": "resize_object", "name": "cat", "scale": 1.5}]})
    )
    assert plan.ops[0].scale == 1.5
    for bad in (
        "{not json",
        {"ops": [{"op": "explode"}]},
        {"ops": [{"op": "resize_object", "name": "cat", "scale": 99}]},
    ):
        with pytest.raises(EditError):
            parse_edit_plan(bad)
    # moving a box onto another is caught by the blueprint's own checks
    with pytest.raises(EditError, match="overlap"):
        from agent.edits import SetBox

        apply_edits(state, [SetBox(name="cat", box=[0.4, 0.6, 0.85, 0.9])])
    assert "ops" in json.dumps(edit_plan_schema())


# --- the command line -------------------------------------------------------------------------------------------
def test_cli_chat_scripted_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    from agent.cli import app

    runner = CliRunner()
    bp = write_scene(tmp_path / "scene.json")
    res = runner.invoke(
        app, ["chat", "--blueprint", str(bp), "-m", "the sign should say CLOSED", "--json"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert lines[-1]["reran"] == ["text"] and lines[-1]["image"].endswith("final.png")
    listed = json.loads(runner.invoke(app, ["chat", "--list", "--json"]).stdout)
    sid = listed[0]["session_id"]
    res = runner.invoke(app, ["chat", "--session", sid, "-m", "make the unicorn pink"], catch_exceptions=False)
    assert res.exit_code == 2 and "no 'unicorn'" in res.output and "Traceback" not in res.output
    assert "rejected" in res.stdout  # shown as the rejected turn it is (and recorded)
    res = runner.invoke(app, ["chat", "--session", sid], input="undo\nwarmer light\n", catch_exceptions=False)
    assert res.exit_code == 0 and "re-ran: adjust" in res.stdout
    res = runner.invoke(app, ["chat", "--session", "no such id!"], catch_exceptions=False)
    assert res.exit_code == 2
    res = runner.invoke(app, ["chat"], catch_exceptions=False)
    assert res.exit_code == 2 and "--session" in res.stderr
