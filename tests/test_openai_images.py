"""``POST /v1/images/generations`` driven by the official ``openai`` client, unchanged, over a real loopback uvicorn
server: images and their run records, sizes, seeds, the shared scheduler, url and b64 answers, the token, and
OpenAI-shaped errors the client raises as its own exceptions."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import threading
import time

import httpx
import openai
import pytest
from PIL import Image

from agent.api import Engine
from agent.http_guard import GuardedH11Protocol
from agent.png_recipe import read_recipe
from agent.server import create_app
from tests.chat_fixtures import SCENE

TOKEN = "t0ken-for-openai-tests-0123"


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(engine: Engine, *, token: str | None = None):
    """``scenewright serve`` as the CLI starts it: uvicorn on the loopback, the guarded app, the Host check on."""
    import uvicorn

    port = _free_port()
    app = create_app(engine, token=token, port=port, recover=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http=GuardedH11Protocol))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def client(base: str, key: str = "not-checked-without-a-token") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)


def run_record(home, run_id: str, name: str) -> dict:
    return json.loads((home / "runs" / run_id / name).read_text())


def test_openai_client_gets_n_images_each_a_run_with_its_record(home):
    with serving(Engine("preview", home=home)) as base:
        res = client(base).images.generate(
            prompt="a red cube left of a blue sphere", n=3, size="256x192", response_format="b64_json",
            extra_body={"seed": 7},
        )
    assert len(res.data) == 3 and res.size == "256x192" and res.output_format == "png"
    assert res.profile == "preview" and res.run_ids == [d.run_id for d in res.data]
    assert len(set(res.run_ids)) == 3
    assert [d.seed for d in res.data] == [7, 8, 9]
    for d in res.data:
        png = base64.b64decode(d.b64_json)
        assert Image.open(io.BytesIO(png)).size == (256, 192)
        assert png == (home / "runs" / d.run_id / "final.png").read_bytes()  # the run's own image, recipe and all
        assert run_record(home, d.run_id, "status.json")["status"] == "done"
        request = run_record(home, d.run_id, "request.json")
        assert request["kind"] == "prompt" and request["seed"] == d.seed and request["profile"] == "preview"
        bp = run_record(home, d.run_id, "blueprint.json")
        assert bp == d.blueprint and bp["canvas"] == {"width": 256, "height": 192}
        assert [o["name"] for o in bp["objects"]] == ["cube", "sphere"]
        (home / "x.png").write_bytes(png)
        assert read_recipe(home / "x.png")["run_id"] == d.run_id


def test_url_answers_point_at_the_run_image_and_the_profile_size_is_the_default(home):
    with serving(Engine("preview", home=home)) as base:
        res = client(base).images.generate(prompt="a cat on a sofa")
        (d,) = res.data
        assert d.b64_json is None and d.url == f"{base}/api/runs/{d.run_id}/image"
        img = httpx.get(d.url)
    assert img.status_code == 200 and img.content == (home / "runs" / d.run_id / "final.png").read_bytes()
    assert Image.open(io.BytesIO(img.content)).size == (512, 512) and res.size == "512x512"
    assert d.seed == 0


def test_n_images_run_at_once_and_share_the_schedulers_batches(home):
    spans: dict[str, list[float]] = {}
    lock = threading.Lock()

    def on_event(ev):
        if ev["event"] in ("run_started", "run_finished"):
            with lock:
                spans.setdefault(ev["run"], []).append(time.monotonic())

    engine = Engine("preview", home=home, on_event=on_event)
    engine.profile = engine.profile.model_copy(update={"delay_ms": 80})
    with serving(engine) as base:
        res = client(base).images.generate(prompt="a dog next to a tree", n=3, response_format="url")
    (s0, e0), (s1, e1), (s2, e2) = (spans[r] for r in res.run_ids)
    assert max(s0, s1, s2) < min(e0, e1, e2)  # all three were running at the same moment
    batches = [
        ev["batch"]
        for r in res.run_ids
        for ev in map(json.loads, (home / "runs" / r / "events.jsonl").read_text().splitlines())
        if ev.get("event") == "started"
    ]
    assert max(batches) >= 2  # their model calls met in one batch


def test_a_blueprint_as_an_extra_field_is_painted_with_the_given_seeds(home):
    with serving(Engine("preview", home=home)) as base:
        res = client(base).images.generate(prompt="", n=2, size="320x256", response_format="b64_json",
                                           extra_body={"blueprint": SCENE, "seed": 3})  # fmt: skip
    assert [d.seed for d in res.data] == [3, 4]
    for d in res.data:
        assert run_record(home, d.run_id, "request.json")["kind"] == "blueprint"
        bp = run_record(home, d.run_id, "blueprint.json")
        assert bp["seed"] == d.seed and bp["canvas"] == {"width": 320, "height": 256}
        assert [o["name"] for o in bp["objects"]] == ["cat", "bench", "lamp"]
        assert Image.open(io.BytesIO(base64.b64decode(d.b64_json))).size == (320, 256)


def test_the_api_key_is_the_servers_token(home):
    with serving(Engine("preview", home=home), token=TOKEN) as base:
        with pytest.raises(openai.AuthenticationError):
            client(base, key="wrong-key-0123456789abcdef").images.generate(prompt="a cat")
        res = client(base, key=TOKEN).images.generate(prompt="a cat")
        url = res.data[0].url
        assert httpx.get(url).status_code == 401  # the url needs the token too
        assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert not list((home / "runs").iterdir())[1:]  # the refused request started no run


@pytest.mark.parametrize(
    ("kwargs", "param", "words"),
    [
        ({"size": "500x500"}, "size", "multiple of 8"),
        ({"size": "4096x4096"}, "size", "from 64 to 2048"),
        ({"size": "big"}, "size", "WIDTHxHEIGHT"),
        ({"n": 11}, "n", "less than or equal to 10"),
        ({"model": "dall-e-3"}, "model", "profile 'preview'"),
        ({"quality": "hd"}, "quality", "not a field this server takes"),
        ({"prompt": "   "}, "prompt", "the prompt is empty"),
        ({"extra_body": {"blueprint": SCENE}}, "prompt", "not both"),
        ({"prompt": "", "extra_body": {"blueprint": {**SCENE, "objects": "x"}}}, "blueprint", "invalid blueprint"),
        ({"extra_body": {"seed": 2**32 - 1}, "n": 2}, "seed", "go past"),
    ],
)
def test_bad_requests_are_openai_errors_naming_the_field(home, kwargs, param, words):
    args = {"prompt": "a cat", **kwargs}
    with serving(Engine("preview", home=home)) as base:
        with pytest.raises(openai.BadRequestError) as caught:
            client(base).images.generate(**args)
    err = caught.value
    assert err.status_code == 400 and err.param == param and err.type == "invalid_request_error"
    assert words in err.message and set(err.body) == {"message", "type", "param", "code"}
    assert not (home / "runs").exists() or not list((home / "runs").iterdir())  # no run was started


def test_a_failed_run_is_a_server_error_naming_the_run_and_is_not_retried(home, monkeypatch):
    from agent.api import RunOutcome

    engine = Engine("preview", home=home)
    calls = []
    real = engine.generate

    def failing(*a, **kw):
        out = real(*a, **kw)
        calls.append(out.run_id)
        return RunOutcome(**{**out.to_dict(), "ok": False, "image": None, "failed": {"scene": "out of memory"}})

    monkeypatch.setattr(engine, "generate", failing)
    with serving(engine) as base:
        c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=2, timeout=60)
        with pytest.raises(openai.InternalServerError) as caught:
            c.images.generate(prompt="a cat")
    assert len(calls) == 1  # x-should-retry: false — the client did not post it again
    assert f"run {calls[0]} failed (scene: out of memory)" in caught.value.message
    assert caught.value.code == "run_failed"


def test_a_cancelled_image_is_a_conflict_and_the_client_does_not_paint_it_again(home):
    engine = Engine("preview", home=home)
    engine.profile = engine.profile.model_copy(update={"delay_ms": 300})
    caught: list = []
    with serving(engine) as base:
        c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=2, timeout=60)

        def generate():
            try:
                c.images.generate(prompt="a cat on a sofa")
            except openai.APIStatusError as err:
                caught.append(err)

        thread = threading.Thread(target=generate)
        thread.start()
        deadline = time.time() + 20
        while not engine.active_runs() and time.time() < deadline:
            time.sleep(0.02)
        (run_id,) = engine.active_runs()
        assert httpx.post(f"{base}/api/runs/{run_id}/cancel", json={}).status_code == 202
        thread.join(60)
    (err,) = caught
    assert isinstance(err, openai.ConflictError) and f"run {run_id} was cancelled" in err.message
    assert run_record(home, run_id, "status.json")["status"] == "cancelled"
    assert [p.name for p in (home / "runs").iterdir()] == [run_id]  # not retried: no second run
