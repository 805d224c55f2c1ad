"""Batch runs: concurrency, a results JSONL, a summary, and one bad item never stopping the others."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from agent.api import Engine, UserError
from agent.batch import load_items, run_batch
from agent.cli import app
from tests.chat_fixtures import write_scene

HAS_RULE_PLANNER = importlib.util.find_spec("planners.rule_based") is not None


@pytest.fixture
def plans(tmp_path):
    folder = tmp_path / "plans"
    folder.mkdir()
    for i in range(4):
        write_scene(folder / f"scene{i}.json", seed=i)
    (folder / "broken.json").write_text('{"objects": [{"name": "x", "box": [0.9, 0.9, 0.1, 0.1]}]}')
    (folder / "notes.txt").write_text("not a plan")
    return folder


def test_folder_of_plans_with_a_bad_one(plans, tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    out = tmp_path / "results.jsonl"
    res = CliRunner().invoke(app, ["batch", str(plans), "-j", "3", "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 1, res.output  # one item failed; the others ran
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and sorted(r["index"] for r in rows) == list(range(5))
    bad = [r for r in rows if not r["ok"]]
    assert len(bad) == 1 and bad[0]["source"].endswith("broken.json") and "inverted" in bad[0]["error"]
    assert all(r["image"].endswith("final.png") and r["run_id"] for r in rows if r["ok"])
    assert "failed" in res.stdout and "broken.json" in res.stderr


def test_api_batch_all_ok_and_cached_second_time(plans, tmp_path):
    (plans / "broken.json").unlink()
    engine = Engine("preview", home=tmp_path / "home")
    seen = []
    first = run_batch(engine, load_items(plans), concurrency=2, on_result=seen.append)
    assert first.exit_code == 0 and first.ok == 4 and len(seen) == 4
    again = run_batch(engine, load_items(plans), concurrency=4, out=tmp_path / "r.jsonl")
    assert all(r.cached_nodes == r.total_nodes for r in again.results)
    assert again.to_dict()["items"] == 4


def test_bad_batch_input(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    assert runner.invoke(app, ["batch", str(tmp_path / "missing.txt")]).exit_code == 2
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    res = runner.invoke(app, ["batch", str(empty)])
    assert res.exit_code == 2 and "no prompts" in res.stderr
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    assert runner.invoke(app, ["batch", str(binary)]).exit_code == 2
    (tmp_path / "nothing").mkdir()
    assert runner.invoke(app, ["batch", str(tmp_path / "nothing")]).exit_code == 2
    with pytest.raises(UserError):
        run_batch(Engine("preview", home=tmp_path / "home"), [], concurrency=0)


def test_prompt_lines(tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("# header\na red cube left of a blue sphere\n\n   \ntwo apples on a table, a sign that says 'FRESH'\n")
    items = load_items(f)
    assert [i.prompt for i in items] == [
        "a red cube left of a blue sphere",
        "two apples on a table, a sign that says 'FRESH'",
    ]
    assert items[1].source == "prompts.txt:5"


@pytest.mark.skipif(
    not HAS_RULE_PLANNER, reason="the rule-based planner (planners/rule_based.py) is not in this tree yet"
)
def test_prompt_file_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    f = tmp_path / "prompts.txt"
    f.write_text("a red cube to the left of a blue sphere\na black cat on a sofa, a sign that says 'HELLO'\n")
    res = CliRunner().invoke(app, ["batch", str(f), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["ok"] == 2 and (tmp_path / "prompts.txt.results.jsonl").exists()


def test_a_big_batch_is_admitted_a_window_at_a_time():
    """Back-pressure, by count: items are taken from the input only as earlier ones finish (2 x concurrency in
    flight at most), so 10,000 prompts never become 10,000 queued runs or graphs at once."""
    import threading as _threading
    from types import SimpleNamespace

    from agent.batch import BatchItem, run_batch

    state = {"taken": 0, "finished": 0, "worst": 0}
    lock = _threading.Lock()

    class Counted(list):
        def __iter__(self):
            for item in super().__iter__():
                with lock:
                    state["taken"] += 1
                yield item

    class Fake:
        def generate(self, prompt, seed=0):
            with lock:
                state["worst"] = max(state["worst"], state["taken"] - state["finished"])
            with lock:
                state["finished"] += 1
            return SimpleNamespace(ok=True, run_id="r", image=None, total_nodes=1, cached_nodes=0, failed={})

        def active_runs(self):
            return []

    items = Counted(BatchItem(index=i, source=f"p:{i}", kind="prompt", prompt=f"p{i}") for i in range(10_000))
    summary = run_batch(Fake(), items, concurrency=4)
    assert summary.ok == 10_000 and state["finished"] == 10_000
    assert 1 <= state["worst"] <= 8
