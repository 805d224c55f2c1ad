"""The engine core on small deterministic tools: scheduling, batching, caching, loops, failures, validation."""

from __future__ import annotations

import pytest

from agent.executor import Executor
from agent.graph import Graph, GraphError, derive_seed, validate_graph
from agent.store import Store
from tests.fake_tools import AddTool, FailTool, MeanRedTool, NoopTool, PaintTool
from tools.base import NO_CONTEXT, Registry, TransientError


def graph(nodes, output, seed=0) -> Graph:
    return Graph.model_validate({"seed": seed, "nodes": nodes, "output": output})


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "home")


@pytest.fixture
def registry():
    return Registry([AddTool(), NoopTool(), FailTool(), PaintTool(), MeanRedTool()])


def chain(n=3):
    nodes = [{"id": "n0", "tool": "add", "inputs": {"x": 0, "add": 1}}]
    nodes += [{"id": f"n{i}", "tool": "add", "inputs": {"x": {"ref": f"n{i-1}.y"}, "add": 1}} for i in range(1, n)]
    return graph(nodes, f"n{n-1}.y")


def test_chain_runs_in_order_and_second_run_is_all_cache_hits(store, registry):
    first = Executor(registry, store).run(chain(5))
    assert first.ok and first.output == 5.0 and first.cached_nodes == 0 and first.total_nodes == 5
    second = Executor(registry, store).run(chain(5))
    assert second.output == 5.0 and second.cached_nodes == 5
    assert sum(registry.get("add").calls) == 5  # nothing ran twice


def test_cache_bypass_reruns_everything(store, registry):
    Executor(registry, store).run(chain(3))
    again = Executor(registry, store, use_cache=False).run(chain(3))
    assert again.cached_nodes == 0 and sum(registry.get("add").calls) == 6


def test_independent_nodes_are_batched_into_one_call(store, registry):
    nodes = [{"id": "root", "tool": "add", "inputs": {"x": 0}}]
    nodes += [{"id": f"b{i}", "tool": "add", "inputs": {"x": {"ref": "root.y"}, "add": i}} for i in range(6)]
    Executor(registry, store).run(graph(nodes, "b5.y"))
    assert registry.get("add").calls == [1, 6]


def test_max_batch_splits_large_groups(store, registry):
    nodes = [{"id": f"b{i}", "tool": "add", "inputs": {"x": 0, "add": i}} for i in range(20)]
    Executor(registry, store, cpu_slots=1).run(graph(nodes, "b0.y"))
    assert registry.get("add").calls == [8, 8, 4]


def test_images_become_content_addressed_artifacts(store, registry):
    nodes = [
        {"id": "p", "tool": "paint", "inputs": {"color": "red"}},
        {"id": "q", "tool": "paint", "inputs": {"color": "red", "seed": 5}},
        {"id": "m", "tool": "mean_red", "inputs": {"image": {"ref": "p.image"}}},
    ]
    res = Executor(registry, store).run(graph(nodes, "p.image"))
    assert res.outputs["m"]["red"] == 1.0
    art = res.outputs["p"]["image"]
    assert art["kind"] == "image" and art["size"] == [32, 32]
    assert store.artifact_path(art["$artifact"]).exists()
    assert res.outputs["q"]["image"]["$artifact"] == art["$artifact"]  # same pixels, same artifact


def test_seeds_derive_from_run_seed_and_node_id():
    assert derive_seed(1, "a") == derive_seed(1, "a")
    assert len({derive_seed(1, "a"), derive_seed(2, "a"), derive_seed(1, "b")}) == 3  # pairwise distinct


def test_loop_stops_at_threshold_and_keeps_best(store, registry):
    nodes = [
        {"id": "start", "tool": "add", "inputs": {"x": 0, "add": 2}},
        {
            "kind": "loop", "id": "L", "threshold": 0.5, "max_iters": 8,
            "state": {"y": {"ref": "start.y"}, "score": {"ref": "start.score"}},
            "body": [{"id": "step", "tool": "add", "inputs": {"x": {"ref": "$state.y"}, "add": 1}}],
            "update": {"y": "step.y", "score": "step.score"},
        },
    ]
    res = Executor(registry, store).run(graph(nodes, "L.y"))
    assert res.output == 5.0  # 2 → 3 → 4 → 5 (score 0.5 reaches the threshold)
    assert [t["iteration"] for t in res.loops["L"]] == [0, 1, 2, 3]
    assert "L.i3.step" in res.outputs  # deterministic ids per iteration


def test_loop_budget_keeps_best_not_last(store, registry):
    nodes = [
        {"id": "start", "tool": "add", "inputs": {"x": 4, "add": 1}},
        {
            "kind": "loop", "id": "L", "threshold": 0.9, "max_iters": 2,
            "state": {"y": {"ref": "start.y"}, "score": {"ref": "start.score"}},
            "body": [{"id": "step", "tool": "add", "inputs": {"x": {"ref": "$state.y"}, "add": -2}}],
            "update": {"y": "step.y", "score": "step.score"},
        },
    ]
    res = Executor(registry, store).run(graph(nodes, "L.y"))
    assert res.output == 5.0  # both attempts scored worse; the first draft is kept
    assert [t["kept"] for t in res.loops["L"]] == [True, False, False]
    assert res.outputs["L"]["iterations"] == 2


def test_loop_already_good_runs_no_iteration(store, registry):
    nodes = [
        {"id": "start", "tool": "add", "inputs": {"x": 9, "add": 1}},
        {
            "kind": "loop", "id": "L", "threshold": 0.5, "max_iters": 3,
            "state": {"y": {"ref": "start.y"}, "score": {"ref": "start.score"}},
            "body": [{"id": "step", "tool": "add", "inputs": {"x": {"ref": "$state.y"}}}],
            "update": {"y": "step.y", "score": "step.score"},
        },
    ]
    res = Executor(registry, store).run(graph(nodes, "L.y"))
    assert res.outputs["L"]["iterations"] == 0 and res.total_nodes == 1


def test_parallel_loops_batch_their_bodies(store, registry):
    nodes = [{"id": "start", "tool": "add", "inputs": {"x": 0, "add": 1}}]
    for k in range(4):
        nodes.append({
            "kind": "loop", "id": f"L{k}", "threshold": 0.3, "max_iters": 2,
            "state": {"y": {"ref": "start.y"}, "score": {"ref": "start.score"}},
            "body": [{"id": "step", "tool": "add", "inputs": {"x": {"ref": "$state.y"}, "add": k + 1}}],
            "update": {"y": "step.y", "score": "step.score"},
        })
    Executor(registry, store).run(graph(nodes, "L0.y"))
    assert registry.get("add").calls[:2] == [1, 4]  # the four loops' first iterations ran as one batch


def test_fail_fast_stops_and_reports_the_node(store, registry):
    nodes = [
        {"id": "bad", "tool": "fail", "inputs": {}},
        {"id": "after", "tool": "noop", "inputs": {"a": {"ref": "bad.y"}}},
    ]
    res = Executor(registry, store).run(graph(nodes, "after.y"))
    assert not res.ok and "bad" in res.failed and "always fails" in res.failed["bad"]
    assert "after" not in res.outputs


def test_keep_going_runs_independent_branches(store, registry):
    nodes = [
        {"id": "bad", "tool": "fail", "inputs": {}},
        {"id": "after", "tool": "noop", "inputs": {"a": {"ref": "bad.y"}}},
        {"id": "other", "tool": "add", "inputs": {"x": 1}},
        {"id": "other2", "tool": "add", "inputs": {"x": {"ref": "other.y"}}},
    ]
    res = Executor(registry, store, keep_going=True).run(graph(nodes, "other2.y"))
    assert res.output == 3.0 and "bad" in res.failed and res.skipped == ["after"]


def test_transient_errors_are_retried(store):
    class Flaky(NoopTool):
        name = "noop"
        tries = 0

        def run(self, batch, ctx=NO_CONTEXT):
            Flaky.tries += 1
            if Flaky.tries < 2:
                raise TransientError("server busy")
            return super().run(batch)

    res = Executor(Registry([Flaky()]), store).run(graph([{"id": "a", "tool": "noop", "inputs": {}}], "a.y"))
    assert res.ok and Flaky.tries == 2


def test_events_cover_every_node(store, registry):
    events = []
    Executor(registry, store, on_event=events.append).run(chain(3))
    Executor(registry, store, on_event=events.append).run(chain(3))
    kinds = [e["event"] for e in events]
    assert kinds.count("started") == 3 and kinds.count("finished") == 3 and kinds.count("cached") == 3
    assert all("ms" in e for e in events if e["event"] == "finished")


@pytest.mark.parametrize(
    "nodes, output, message",
    [
        ([{"id": "a", "tool": "nope", "inputs": {}}], "a.y", "tool 'nope' is not registered"),
        ([{"id": "a", "tool": "add", "inputs": {"x": {"ref": "ghost.y"}}}], "a.y", "node 'ghost', which does not exist"),
        ([{"id": "a", "tool": "add", "inputs": {"x": 1}}, {"id": "b", "tool": "add", "inputs": {"x": {"ref": "a.zz"}}}], "b.y", "'a.zz'"),
        ([{"id": "a", "tool": "add", "inputs": {"x": {"ref": "b.y"}}}, {"id": "b", "tool": "add", "inputs": {"x": {"ref": "a.y"}}}], "a.y", "cycle"),
        ([{"id": "a", "tool": "add", "inputs": {"zz": 1}}], "a.y", "unknown input"),
        ([{"id": "a", "tool": "add", "inputs": {"x": "text"}}], "a.y", "input 'x'"),
        ([{"id": "a", "tool": "add", "version": "0", "inputs": {}}], "a.y", "version"),
        ([{"id": "a", "tool": "mean_red", "inputs": {"image": "file.png"}}], "a.red", "must be a reference"),
        ([{"id": "a", "tool": "add", "inputs": {}}, {"id": "a", "tool": "add", "inputs": {}}], "a.y", "used twice"),
        ([{"id": "a", "tool": "add", "inputs": {}}, {"id": "m", "tool": "mean_red", "inputs": {"image": {"ref": "a.y"}}}], "m.red", "different types"),
        ([{"id": "a", "tool": "add", "inputs": {}}], "a.nothing", "graph output"),
    ],
)
def test_validation_names_the_offending_node(registry, nodes, output, message):
    with pytest.raises(GraphError, match=message.replace("(", r"\(")):
        validate_graph(graph(nodes, output), registry)


def test_invalid_graph_runs_nothing(store, registry):
    nodes = [{"id": "ok", "tool": "add", "inputs": {}}, {"id": "bad", "tool": "nope", "inputs": {}}]
    with pytest.raises(GraphError):
        Executor(registry, store).run(graph(nodes, "ok.y"))
    assert registry.get("add").calls == []


def test_run_state_is_driven_without_threads(registry):
    """The pure run state: what is ready, what completes, what a failure skips; no scheduler, no store."""
    from agent.executor import RunState

    g = graph([
        {"id": "a", "tool": "add", "inputs": {"x": 1}},
        {"id": "b", "tool": "add", "inputs": {"x": {"ref": "a.y"}}},
        {"id": "c", "tool": "add", "inputs": {"x": {"ref": "b.y"}}},
        {"id": "d", "tool": "add", "inputs": {"x": 5}},
    ], "c.y")  # fmt: skip
    events = []
    state = RunState(g, validate_graph(g, registry), events.append, keep_going=True)
    assert [n.id for n in state.pop_ready()] == ["a", "d"]
    state.complete("a", {"y": 2.0, "score": 0.2})
    (b,) = state.pop_ready()
    assert b.id == "b" and state.resolve(b.inputs) == {"x": 2.0}
    state.fail("b", "add", "boom")
    assert state.skipped == ["c"] and state.pop_ready() == [] and state.unfinished() == ["c", "d"]
    assert [e["event"] for e in events] == ["failed", "skipped"]
