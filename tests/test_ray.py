"""The Ray backend on a local Ray cluster (2 CPUs): the tiny profile's LLM Blueprint through real actor pools.

One cluster and one Ray engine for the module (actors start once, each loading its models once); the local
executor's runs are the reference. Images are compared by the hash of their pixels (``final.png`` bytes differ
in the run id the PNG's recipe names).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402

from agent.api import Engine, UserError  # noqa: E402
from agent.batch import BatchItem, run_batch  # noqa: E402
from agent.profiles import get_profile  # noqa: E402
from agent.replay import replay  # noqa: E402
from agent.store import Store, image_digest  # noqa: E402
from tests.tiny_models import write_tiny_profile  # noqa: E402

PROMPT = 'Two red apples to the left of a blue vase on a table, a sign above that says "OPEN".'


@pytest.fixture(scope="module")
def cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return get_profile("tiny", write_tiny_profile(tmp_path_factory.mktemp("tiny-ray")))


@pytest.fixture(scope="module")
def local(tiny, tmp_path_factory):
    engine = Engine(tiny, home=tmp_path_factory.mktemp("local-home"))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def on_ray(tiny, cluster, tmp_path_factory):
    prof = tiny.model_copy(update={"ray": tiny.ray.model_copy(update={"actors": 2, "num_cpus": 0.5})})
    engine = Engine(prof, home=tmp_path_factory.mktemp("ray-home"), executor="ray")
    yield engine
    engine.close()


def digest(path: str) -> str:
    with Image.open(path) as im:
        return image_digest(im.convert("RGB"))


def events(outcome) -> list[dict]:
    return [json.loads(line) for line in (Path(outcome.run_dir) / "events.jsonl").read_text().splitlines()]


def node_outputs(outcome) -> dict:
    return {e["node"]: e["outputs"] for e in events(outcome) if e["event"] == "finished"}


def test_llm_blueprint_on_ray_actors_is_identical_to_local(local, on_ray):
    ref = local.generate(PROMPT, seed=2)
    out = on_ray.generate(PROMPT, seed=2)
    assert ref.ok and out.ok, (ref.failed, out.failed)
    assert digest(out.image) == digest(ref.image)
    assert node_outputs(out) == node_outputs(ref)  # every node's outputs (artifact hashes, scores) alike
    sent = [e for e in events(out) if e["event"] == "dispatched"]
    ran = {n for e in sent for n in e["nodes"]}
    assert ran == set(node_outputs(out))  # every node ran on an actor, none in the driver
    assert {e["pool"] for e in sent} == {"gpu", "cpu"}  # model tools on model actors, CPU tools on the CPU pool
    by_tool = {e["tool"]: e["pool"] for e in sent}
    assert by_tool["layout_to_image"] == "gpu" and by_tool["composite"] == "cpu"
    status = on_ray.cluster_status()
    assert status["executor"] == "ray" and len(status["pools"]["gpu"]) == 2 and status["num_gpus_per_actor"] == 0
    held = [t for a in status["pools"]["gpu"] for t in a["held"]]
    assert "layout_to_image" in held and len(held) == len(set(held))  # affinity: each model on one actor so far
    # the record is the driver's: its store holds every artifact the run names
    store = Store(on_ray.store.home)
    result = json.loads((Path(out.run_dir) / "result.json").read_text())
    assert store.check_artifact(result["image_sha256"]) is not None or store.artifact_path(result["image_sha256"]).exists()


def test_replay_of_a_ray_run_passes_locally(local, on_ray, tiny):
    out = on_ray.generate(PROMPT, seed=2)  # from the cache of the first test, or run now
    report = replay(out.run_dir, store=Store(on_ray.store.home), profile=tiny)
    assert report.ok, report.to_dict()
    assert report.cases[0].compared >= 20  # re-executed locally, node by node, against the Ray run's record


def test_a_batch_of_prompts_runs_across_two_actors(on_ray, local):
    before = {a["actor"]: a["calls"] for a in on_ray.cluster_status()["pools"]["gpu"]}
    prompts = ["a red cube left of a green ball", "a cat on a sofa, a sign that says HI", "two birds over a lake"]
    items = [BatchItem(index=i, source=f"p:{i}", kind="prompt", prompt=p) for i, p in enumerate(prompts)]
    summary = run_batch(on_ray, items, concurrency=2, seed=3)
    assert summary.failed == 0, [r.error for r in summary.results]
    after = {a["actor"]: a["calls"] for a in on_ray.cluster_status()["pools"]["gpu"]}
    assert all(after[name] > calls for name, calls in before.items())  # both model actors took batches
    ref = local.generate(prompts[1], seed=3)
    assert digest(summary.results[1].image) == digest(ref.image)


def test_an_actor_killed_mid_batch_is_replaced_and_the_image_is_the_same(on_ray, local):
    pools = on_ray._ray_scheduler.pools
    killed: list[str] = []
    lock = threading.Lock()

    def kill_first(actor, tool):
        with lock:
            if tool == "layout_to_image" and not killed:
                killed.append(actor.name)
                ray.kill(actor.handle, no_restart=True)  # the call is in flight: its actor dies under it

    lost = pools.lost
    pools.on_dispatch = kill_first
    try:
        out = on_ray.generate(PROMPT, seed=7)
    finally:
        pools.on_dispatch = None
    assert killed and pools.lost == lost + 1
    assert out.ok, out.failed
    ev = events(out)
    assert any(e["event"] == "actor_lost" and e["actor"] == killed[0] for e in ev)
    retried = [e for e in ev if e["event"] == "dispatched" and e["tool"] == "layout_to_image"]
    assert len(retried) == 2 and retried[1]["actor"] != killed[0]
    assert digest(out.image) == digest(local.generate(PROMPT, seed=7).image)
    names = [a["actor"] for a in on_ray.cluster_status()["pools"]["gpu"]]
    assert killed[0] not in names and len(names) == 2  # the pool was topped up


def test_bad_executor_is_one_clear_error(tiny):
    for bad in ("bogus", "ray=", "local=x"):
        with pytest.raises(UserError, match="use local, ray or ray=ADDRESS"):
            Engine(tiny, executor=bad)


def test_health_endpoint_shows_the_ray_pools(on_ray):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from agent.server import create_app

    with TestClient(create_app(on_ray), base_url="http://127.0.0.1:8765") as c:
        body = c.get("/api/health").json()
    cluster = body["cluster"]
    assert cluster["executor"] == "ray" and cluster["queued"] == {}
    gpu = cluster["pools"]["gpu"]
    assert len(gpu) == 2 and all(a["inflight"] == 0 for a in gpu)
    assert {"layout_to_image", "regional_repaint"} <= {t for a in gpu for t in a["held"]}
