"""One engine, many runs: per-run contexts, the shared scheduler that batches across runs, cancellation.

Concurrent runs give the same bytes as solo runs; each run's ``llm.jsonl`` holds only its own exchanges; a batch
that served two runs says so in both runs' events; the planner (and its in-process LLM) is built once per engine;
a cancelled run is marked ``cancelled`` and ``resume`` finishes it with the image an uninterrupted run makes.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from agent.api import Engine
from agent.executor import Executor
from agent.graph import Graph
from agent.run import Run, RunCancelled
from agent.scheduler import Scheduler
from agent.store import Store, image_digest
from tests.fake_tools import AddTool, NoopTool
from planners.llm_client import Completion
from tools.base import Registry, Tool, ToolModel

PROMPTS = [
    'a red apple left of a blue vase, a sign that says "FRESH"',
    "two black cats on a green sofa under a yellow lamp",
    'a white boat on a dark lake at night, a banner reading "HELLO"',
]


def sha(path) -> str:
    with Image.open(path) as im:  # pixels: final.png also carries its run's id in a text chunk
        return image_digest(im.convert("RGB"))


def events(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "events.jsonl").read_text().splitlines()]


def concurrently(fn, args: list) -> list:
    """Call ``fn(arg)`` for every arg on its own thread, all released at once; results in order (errors raised)."""
    barrier = threading.Barrier(len(args))
    out: list = [None] * len(args)

    def work(i, arg):
        barrier.wait()
        try:
            out[i] = fn(arg)
        except BaseException as err:  # noqa: BLE001 - re-raised below on the test's thread
            out[i] = err

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(args)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for o in out:
        if isinstance(o, BaseException):
            raise o
    return out


# --- cross-run batching ---------------------------------------------------------------------------------------
def test_concurrent_runs_give_the_solo_bytes_and_share_batches(tmp_path):
    solo = Engine("preview", home=tmp_path / "solo")
    alone = [solo.generate(p, seed=3) for p in PROMPTS]
    shared = Engine("preview", home=tmp_path / "shared", batch_window_ms=300)
    together = concurrently(lambda p: shared.generate(p, seed=3), PROMPTS)
    assert all(o.ok for o in alone + together)
    assert [sha(o.image) for o in together] == [sha(o.image) for o in alone]
    # the scheduler made fewer, bigger calls than the solo runs did, and both runs' events say so
    def calls(engine):
        ids = {id(engine.registry.get(n)) for n in engine.registry.names()}
        return sum(b["tool_id"] in ids for b in engine.executor.scheduler.batches)

    assert calls(shared) < calls(solo)
    shared_starts = [e for o in together for e in events(o.run_dir) if e["event"] == "started" and "runs" in e]
    assert shared_starts, "no batch held nodes of several runs"
    ids = {o.run_id for o in together}
    assert all(set(e["runs"]) <= ids and len(e["runs"]) >= 2 for e in shared_starts)
    assert all(e["batch"] >= len(e["runs"]) for e in shared_starts)


def test_a_batch_of_two_runs_holds_both_and_each_run_gets_its_own_results(tmp_path):
    store = Store(tmp_path / "home")
    add = AddTool()
    ex = Executor(Registry([add, NoopTool()]), store, window_ms=500)
    runs = [Run(record=store.new_run(profile="t", prompt=str(x))) for x in (1, 10)]
    for run in runs:  # both runs are active before either has a ready node (an engine does this at start_run)
        ex.scheduler.attach(run)

    def one(args):
        run, x = args
        g = Graph.model_validate({"nodes": [{"id": "a", "tool": "add", "inputs": {"x": x}}], "output": "a.y"})
        return ex.run(g, run=run)

    r1, r2 = concurrently(one, list(zip(runs, (1, 10))))
    assert (r1.output, r2.output) == (2.0, 11.0)  # the same node id in both runs, each its own result
    assert add.calls == [2]  # one call served both runs
    ids = sorted(r.id for r in runs)
    for run in runs:
        (started,) = [e for e in events(run.record.dir) if e["event"] == "started"]
        assert started["batch"] == 2 and sorted(started["runs"]) == ids


def test_a_lone_run_never_waits_for_the_batching_window(tmp_path):
    ex = Executor(Registry([AddTool()]), Store(tmp_path), window_ms=5000)
    g = Graph.model_validate({"nodes": [{"id": "a", "tool": "add", "inputs": {"x": 1}}], "output": "a.y"})
    assert ex.run(g).seconds < 2.0


# --- per-run LLM recording --------------------------------------------------------------------------------------
class FakeLocalLLM:
    """Stands in for ``VLLMLocalClient`` (loading a model is what must happen once): answers any layout request
    with one object named after the prompt's first word, descriptions generically; counts constructions."""

    kind = "vllm-local"
    made = 0

    def __init__(self, model, **_):
        type(self).made += 1
        self.model = model

    def complete_json_batch(self, requests):
        out = []
        for req in requests:
            props = req.schema.get("properties", {})
            if "descriptions" in props:
                names = req.schema["$defs"]["Description"]["properties"]["name"]["enum"]
                text = json.dumps({"descriptions": [{"name": n, "description": f"a photo of {n}"} for n in names]})
                out.append([Completion(text, "stop")])
                continue
            from planners.rule_based import named_objects

            user = req.messages[1]["content"]
            line = next(ln for ln in user.splitlines() if any(w in ln for w in ("apple", "sofa", "boat")))
            # one box per object the prompt names (fewer would be sent back for repair)
            objects = [{"name": n, "box": [0.05 + 0.3 * i, 0.2, 0.3 + 0.3 * i, 0.8]}
                       for i, n in enumerate(named_objects(line)[:3])]
            layout = {"objects": objects, "texts": [], "background": "a room", "style": "photo",
                      "negative_prompt": ""}  # fmt: skip
            out.append([Completion(json.dumps(layout), "stop")] * req.n)
        return out

    def identity(self):
        return {"client": self.kind, "model": self.model}


def test_the_local_planner_is_built_once_and_each_run_records_only_its_own_exchanges(tmp_path, monkeypatch):
    import planners.llm_client

    FakeLocalLLM.made = 0
    monkeypatch.setattr(planners.llm_client, "VLLMLocalClient", FakeLocalLLM)
    engine = Engine("preview", home=tmp_path / "home", planner={"kind": "vllm-local", "model": "fake-local"},
                    batch_window_ms=100)  # fmt: skip
    prompts = ["a red apple left of a blue vase", "a green sofa in a quiet room", "a white boat on a dark lake"]
    outcomes = concurrently(lambda p: engine.generate(p, seed=1), prompts)
    outcomes.append(engine.generate(prompts[0], seed=2))
    assert FakeLocalLLM.made == 1  # one client (one model load) for four plans
    for prompt, o in zip(prompts + [prompts[0]], outcomes):
        rows = [json.loads(line) for line in (Path(o.run_dir) / "llm.jsonl").read_text().splitlines()]
        assert [r["kind"] for r in rows] == ["llm.layout", "llm.descriptions"]
        layout_user = rows[0]["request"]["messages"][-1]["content"]
        assert prompt in layout_user and all(p not in layout_user for p in prompts if p != prompt)


class Echo(ToolModel):
    text: str


class EchoOut(ToolModel):
    text: str


class RecordingTool(Tool):
    """A model-backed tool in miniature: records one exchange per input through the context's recorder."""

    name, version, Input, Output, resource, max_batch = "echo", "1", Echo, EchoOut, "gpu", 8

    def run(self, batch, ctx):
        for i, b in enumerate(batch):
            rec = ctx.recorder(i)
            rec.record("vlm.echo", {"text": b.text}, {"completions": [{"text": b.text.upper()}]})
        return [EchoOut(text=b.text.upper()) for b in batch]


def test_a_shared_batch_records_each_input_into_its_own_runs_llm_jsonl(tmp_path):
    engine = Engine("preview", home=tmp_path / "home", batch_window_ms=500)
    engine.registry.add(RecordingTool())

    texts = ["first run", "second run"]
    runs = [engine.start_run({"kind": "graph"}, prompt=t) for t in texts]  # both active before either executes

    def one(args):
        run, text = args
        g = Graph.model_validate({"nodes": [{"id": "e", "tool": "echo", "inputs": {"text": text}}], "output": "e.text"})
        return engine.execute(g, run)

    a, b = concurrently(one, list(zip(runs, texts)))
    assert a.ok and b.ok
    started = [e for e in events(a.run_dir) if e["event"] == "started"]
    assert started[0]["batch"] == 2  # both runs' nodes in one call
    for o, text in ((a, "first run"), (b, "second run")):
        rows = [json.loads(line) for line in (Path(o.run_dir) / "llm.jsonl").read_text().splitlines()]
        assert [r["request"]["text"] for r in rows] == [text]


# --- cancellation -----------------------------------------------------------------------------------------------
def slow_engine(home, delay_ms=120):
    engine = Engine("preview", home=home)
    engine.profile = engine.profile.model_copy(update={"delay_ms": delay_ms})
    return engine


def test_cancel_marks_the_run_and_resume_finishes_it_with_the_same_image(tmp_path):
    reference = Engine("preview", home=tmp_path / "ref").generate(PROMPTS[0], seed=5)
    engine = slow_engine(tmp_path / "home")
    seen: list[dict] = []
    box: dict = {}

    def on_event(ev):
        seen.append(ev)
        # cancel mid-call: the second node's call is at step 2 of 4 (the first node has finished)
        if ev["event"] == "progress" and ev["step"] == 2 and any(e["event"] == "finished" for e in seen):
            engine.cancel(box["run_id"]) or pytest.fail("the run was not active")

    def started(ev):
        box.setdefault("run_id", ev.get("run"))
        on_event(ev)

    run = engine.start_run({"kind": "prompt", "prompt": PROMPTS[0], "seed": 5}, on_event=on_event)
    box["run_id"] = run.id
    with pytest.raises(RunCancelled) as exc:
        engine.generate(PROMPTS[0], seed=5, run=run)
    assert exc.value.run_id == run.id
    status = json.loads((Path(run.record.dir) / "status.json").read_text())
    assert status["status"] == "cancelled"
    kinds = [e["event"] for e in seen]
    assert "run_cancelled" in kinds and "failed" not in kinds
    finished = [e["node"] for e in seen if e["event"] == "finished"]
    assert finished and len(finished) < reference.total_nodes
    assert engine.active_runs() == []

    done = engine.resume(run.id)
    assert done.ok and done.cached_nodes >= len(finished)
    assert sha(done.image) == sha(reference.image)
    assert json.loads((Path(run.record.dir) / "status.json").read_text())["status"] == "done"


def test_cancel_of_an_unknown_run_says_so(tmp_path):
    assert Engine("preview", home=tmp_path).cancel("20990101-000000-abcdef") is False


def test_ctrl_c_on_the_run_thread_cancels_the_run(tmp_path):
    """KeyboardInterrupt raised inside a tool call on the run's thread: the run ends cancelled, resumable."""

    class Interrupting(NoopTool):
        name = "noop"
        resource = "gpu"  # runs on the run's own thread, where Ctrl-C lands

        def run(self, batch, ctx=None):
            if any(b.i == 1 for b in batch):
                raise KeyboardInterrupt
            return super().run(batch)

    store = Store(tmp_path)
    ex = Executor(Registry([Interrupting()]), store)
    g = Graph.model_validate({"nodes": [{"id": "a", "tool": "noop", "inputs": {"i": 0}},
                                        {"id": "b", "tool": "noop", "inputs": {"a": {"ref": "a.y"}, "i": 1}}],
                              "output": "b.y"})  # fmt: skip
    result = ex.run(g)
    assert result.cancelled and not result.ok and result.failed == {} and "a" in result.outputs


# --- failures the record keeps -----------------------------------------------------------------------------------
def test_a_tool_traceback_goes_to_the_run_log_and_the_event_keeps_one_line(tmp_path):
    class Broken(NoopTool):
        name = "noop"

        def run(self, batch, ctx=None):
            def deep():
                raise ValueError("the weights are\nnot there")

            deep()

    engine = Engine("preview", home=tmp_path / "home")
    engine.registry.add(Broken())
    g = Graph.model_validate({"nodes": [{"id": "a", "tool": "noop", "inputs": {}}], "output": "a.y"})
    out = engine.run_graph(g)
    assert not out.ok and out.failed["a"] == "ValueError: the weights are"
    log = (Path(out.run_dir) / "log").read_text()
    assert "Traceback" in log and "in deep" in log and "not there" in log


def test_out_of_memory_retry_in_halves_is_an_event(tmp_path):
    class OutOfMemoryError(RuntimeError):
        pass

    class Hungry(AddTool):
        def run(self, batch, ctx=None):
            if len(batch) > 2:
                raise OutOfMemoryError("CUDA out of memory")
            return super().run(batch)

    seen = []
    ex = Executor(Registry([Hungry()]), Store(tmp_path), on_event=seen.append)
    g = Graph.model_validate({"nodes": [{"id": f"n{i}", "tool": "add", "inputs": {"x": i}} for i in range(4)],
                              "output": "n0.y"})  # fmt: skip
    assert ex.run(g).ok
    (oom,) = [e for e in seen if e["event"] == "oom_retry"]
    assert oom["batch"] == 4 and oom["halves"] == [2, 2]


def test_an_unreachable_vlm_server_is_a_transient_error():
    from PIL import Image

    from planners.llm_client import OpenAIServerClient
    from tools.base import TransientError
    from tools.vlm import KIND_CRITIQUE, VLM

    vlm = VLM(OpenAIServerClient("http://127.0.0.1:9/v1", "m", timeout_s=2))
    with pytest.raises(TransientError, match="unreachable"):
        vlm.ask(KIND_CRITIQUE, "critique", [Image.new("RGB", (8, 8))])


def test_one_set_of_resources_for_the_whole_process(tmp_path):
    a, b = Engine("preview", home=tmp_path / "a"), Engine("preview", home=tmp_path / "b")
    assert isinstance(a.executor.scheduler, Scheduler) and a.executor.scheduler.slots["gpu"] == 1
    assert a.executor is a.executor  # one executor per engine, however many runs
    assert a.executor.scheduler is b.executor.scheduler  # one GPU slot however many engines


def test_a_run_validates_its_graph_once_and_a_bypass_writes_no_cache(tmp_path, monkeypatch):
    import agent.api
    import agent.executor
    from agent.graph import validate_graph

    calls = []

    def counting(graph, registry):
        calls.append(graph)
        return validate_graph(graph, registry)

    monkeypatch.setattr(agent.api, "validate_graph", counting)
    monkeypatch.setattr(agent.executor, "validate_graph", counting)
    engine = Engine("preview", home=tmp_path / "home")
    bp_out = engine.generate("a red cube left of a blue sphere", seed=1)
    assert bp_out.ok and len(calls) == 1
    calls.clear()
    graph = Graph.model_validate_json((Path(bp_out.run_dir) / "graph.json").read_text())
    assert engine.run_graph(graph).ok and len(calls) == 1  # checked before the record exists, not again
    # use_cache=False: nothing read from the cache and nothing written to it
    store = Store(tmp_path / "bypass")
    ex = Executor(Registry([AddTool()]), store, use_cache=False)
    ex.run(Graph.model_validate({"nodes": [{"id": "a", "tool": "add", "inputs": {"x": 1}}], "output": "a.y"}))
    assert store._db().conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0] == 0


def test_ctrl_c_in_the_cli_marks_the_run_cancelled_and_names_it(tmp_path):
    """A real SIGINT to ``scenewright generate``: exit 130, the message names the run, its record says
    ``cancelled``, and ``scenewright resume`` finishes it from the nodes that had finished."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "profiles.toml"
    config.write_text('[profiles.slow]\nbackend = "preview"\ndelay_ms = 400\n')
    home = tmp_path / "home"
    env = {**os.environ, "SCENEWRIGHT_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cli = [sys.executable, "-m", "agent.cli"]
    p = subprocess.Popen([*cli, "generate", PROMPTS[0], "--profile", "slow", "--config", str(config)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(home.glob("runs/*/events.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.6)  # inside the first node's call
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    (run_dir,) = home.glob("runs/*")
    assert p.returncode == 130 and f"scenewright resume {run_dir.name}" in err and "RUN_ID" not in err
    assert "Traceback" not in err
    assert json.loads((run_dir / "status.json").read_text())["status"] == "cancelled"
    done = subprocess.run([*cli, "resume", run_dir.name, "--json", "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] and json.loads((run_dir / "status.json").read_text())["status"] == "done"
