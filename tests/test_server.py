"""The HTTP API: sessions, messages, runs, events (polling and stream), artifacts, security, restarts."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agent.api import Engine, UserError
from agent.server import create_app, resolve_token
from agent.sessions import Sessions
from tests.chat_fixtures import SCENE, scene_blueprint

BASE = "http://127.0.0.1"
TOKEN = "t0ken-for-tests-0123456789"


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def client(home):
    with TestClient(create_app(Engine("preview", home=home)), base_url=BASE) as c:
        yield c


def new_session(client, **extra):
    res = client.post("/api/sessions", json={"blueprint": SCENE, "wait": True, **extra})
    assert res.status_code == 201, res.text
    return res.json()


def test_session_turns_over_http(client):
    view = new_session(client)
    sid = view["session_id"]
    first = view["turns"][0]
    assert first["status"] == "done" and "scene" in first["reran"] and first["image_url"].startswith("/api/artifacts/")
    assert [o["name"] for o in first["layout"]["objects"]] == ["cat", "bench", "lamp"]
    img = client.get(first["image_url"])
    assert img.status_code == 200 and img.content[:8] == b"\x89PNG\r\n\x1a\n"

    t = client.post(f"/api/sessions/{sid}/messages", json={"text": "the sign should say CLOSED", "wait": True}).json()
    assert t["status"] == "done" and t["reran"] == ["text"] and t["layout"]["texts"][0]["content"] == "CLOSED"
    t = client.post(f"/api/sessions/{sid}/messages", json={"text": "warmer light", "wait": True}).json()
    assert t["reran"] == ["adjust"] and t["look"] == ["warmer light"]
    u = client.post(f"/api/sessions/{sid}/undo", json={"wait": True}).json()
    assert u["kind"] == "undo" and u["reran"] == []
    bad = client.post(f"/api/sessions/{sid}/messages", json={"text": "make the giraffe bigger", "wait": True}).json()
    assert bad["status"] == "rejected" and "giraffe" in bad["error"]

    b = client.post(f"/api/sessions/{sid}/branch", json={"turn": 1})
    assert b.status_code == 201 and b.json()["parent_session"] == sid
    listed = client.get("/api/sessions").json()
    assert {s["session_id"] for s in listed} == {sid, b.json()["session_id"]}
    one = client.get(f"/api/sessions/{sid}/turns/1").json()
    assert one["index"] == 1 and one["status"] == "done"
    assert client.get(f"/api/sessions/{sid}/turns/99").status_code == 404


def test_async_message_then_poll_and_stream(client):
    sid = new_session(client)["session_id"]
    queued = client.post(f"/api/sessions/{sid}/messages", json={"text": "make the cat bigger"})
    assert queued.status_code == 202 and queued.json()["status"] in ("queued", "planning", "running", "done")
    index = queued.json()["index"]
    for _ in range(200):
        turn = client.get(f"/api/sessions/{sid}/turns/{index}").json()
        if turn["status"] == "done":
            break
        import time

        time.sleep(0.05)
    assert turn["status"] == "done"
    run_id = turn["run_id"]
    page = client.get(f"/api/runs/{run_id}/events").json()
    kinds = [e["event"] for e in page["events"]]
    assert page["done"] and kinds[0] == "run_started" and "finished" in kinds and kinds[-1] == "run_finished"
    later = client.get(f"/api/runs/{run_id}/events", params={"after": page["next"]}).json()
    assert later["events"] == [] and later["next"] == page["next"]
    with client.stream("GET", f"/api/runs/{run_id}/events/stream") as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        body = "".join(res.iter_text())
    assert body.count("event: node") == len(page["events"]) and "event: end" in body and '"status": "done"' in body
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"]["status"] == "done" and run["request"]["kind"] == "chat" and run["image_url"]
    assert client.get(f"/api/runs/{run_id}/image").status_code == 200
    assert any(r["run_id"] == run_id for r in client.get("/api/runs").json())


def test_runs_api_and_openapi(client):
    res = client.post("/api/runs", json={"blueprint": SCENE, "wait": True})
    assert res.status_code == 200 and res.json()["ok"] and res.json()["status"] == "done"
    queued = client.post("/api/runs", json={"blueprint": SCENE, "seed": 1})  # asynchronous: the id at once
    assert queued.status_code == 202 and queued.json()["url"] == f"/api/runs/{queued.json()['run_id']}"
    run_id = queued.json()["run_id"]
    with client.stream("GET", f"/api/runs/{run_id}/events/stream") as stream:
        tail = "".join(stream.iter_text())
    assert "event: end" in tail and '"status": "done"' in tail
    assert client.get(f"/api/runs/{run_id}").json()["status"]["status"] == "done"
    assert client.post("/api/runs", json={}).status_code == 400
    schema = client.get("/openapi.json").json()
    for path in (
        "/api/sessions",
        "/api/sessions/{session_id}/messages",
        "/api/runs/{run_id}/events",
        "/api/runs/{run_id}/events/stream",
        "/api/artifacts/{sha}",
    ):
        assert path in schema["paths"], path
    page = client.get("/")
    assert page.status_code == 200 and "scenewright" in page.text
    assert client.get("/web/app.js").status_code == 200
    assert client.get("/web/../server.py").status_code == 404
    assert client.get("/web/secret.txt").status_code == 404


def test_input_validation(client):
    assert client.get("/api/sessions/..%2F..%2Fetc").status_code in (400, 404)
    assert client.get("/api/sessions/bad id!").status_code == 400
    assert client.get("/api/sessions/s-nope-000").status_code == 404
    assert client.get("/api/artifacts/" + "a" * 63).status_code == 400
    assert client.get("/api/artifacts/../../index.sqlite").status_code == 404
    assert client.get("/api/artifacts/" + "0" * 64).status_code == 404
    assert client.get("/api/runs/..").status_code in (400, 404)
    assert client.get("/api/runs/x.y/events").status_code == 400
    assert client.post("/api/sessions", json={"prompt": "  "}).status_code == 400
    assert client.post("/api/sessions", json={"prompt": "a", "blueprint": SCENE}).status_code == 400
    bad = dict(SCENE, objects=[{"name": "x", "box": [0.5, 0.5, 0.1, 0.1]}])
    res = client.post("/api/sessions", json={"blueprint": bad})
    assert res.status_code == 400 and "inverted" in res.json()["detail"]
    assert client.post("/api/sessions", json={"prompt": "x", "seed": -1}).status_code == 422
    assert client.post("/api/sessions", json={"prompt": "x", "surprise": 1}).status_code == 422
    sid = new_session(client)["session_id"]
    assert client.post(f"/api/sessions/{sid}/messages", json={"text": ""}).status_code == 422
    assert client.post(f"/api/sessions/{sid}/messages", json={"text": "x" * 2001}).status_code == 422


def test_body_limit_content_type_and_host(home):
    app = create_app(Engine("preview", home=home), max_body=2048)
    with TestClient(app, base_url=BASE) as c:
        big = c.post(
            "/api/sessions", content=json.dumps({"prompt": "x" * 5000}), headers={"content-type": "application/json"}
        )
        assert big.status_code == 413
        form = c.post(
            "/api/sessions", content="prompt=hi", headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert form.status_code == 415  # a cross-site form cannot drive the API
        assert c.get("/api/health", headers={"host": "evil.example:8765"}).status_code == 421  # DNS rebinding
        assert c.get("/api/health", headers={"host": "localhost:8765"}).status_code == 200


def test_token(home):
    app = create_app(Engine("preview", home=home), token=TOKEN)
    with TestClient(app, base_url="http://10.0.0.5") as c:
        assert c.get("/api/sessions").status_code == 401
        assert c.get("/api/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/sessions", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get("/api/sessions", params={"token": TOKEN}).status_code == 401  # ?token= only on images, streams
        assert c.get("/openapi.json").status_code == 401
        assert c.get("/").status_code == 200  # the page itself holds no data; it asks for the token


def test_binding_beyond_loopback_needs_a_token(monkeypatch, tmp_path):
    monkeypatch.delenv("SCENEWRIGHT_TOKEN", raising=False)
    with pytest.raises(UserError, match="--token"):
        resolve_token("0.0.0.0", None)
    with pytest.raises(UserError, match="16"):
        resolve_token("0.0.0.0", "short")
    assert resolve_token("127.0.0.1", None) is None
    monkeypatch.setenv("SCENEWRIGHT_TOKEN", TOKEN)
    assert resolve_token("0.0.0.0", None) == TOKEN
    monkeypatch.delenv("SCENEWRIGHT_TOKEN")
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    from agent.cli import app

    res = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"], catch_exceptions=False)
    assert res.exit_code == 2 and "--token" in res.stderr and "Traceback" not in res.output


def test_session_survives_server_restart(home):
    with TestClient(create_app(Engine("preview", home=home)), base_url=BASE) as c:
        sid = new_session(c)["session_id"]
        c.post(f"/api/sessions/{sid}/messages", json={"text": "make the cat bigger", "wait": True})
    # a new server process on the same store
    with TestClient(create_app(Engine("preview", home=home)), base_url=BASE) as c:
        view = c.get(f"/api/sessions/{sid}").json()
        assert [t["status"] for t in view["turns"]] == ["done", "done"] and view["head"] == 1
        t = c.post(f"/api/sessions/{sid}/messages", json={"text": "the sign should say CLOSED", "wait": True}).json()
        assert t["reran"] == ["text"]
        u = c.post(f"/api/sessions/{sid}/undo", json={"wait": True}).json()
        assert u["reran"] == [] and u["layout"]["texts"][0]["content"] == "OPEN"


def test_restart_finishes_pending_turns(home):
    sessions = Sessions(Engine("preview", home=home))
    s = sessions.create(blueprint=scene_blueprint())
    pending = s.submit("the sign should say LATER")  # accepted by a server that then stopped
    with TestClient(create_app(Engine("preview", home=home)), base_url=BASE) as c:
        for _ in range(200):
            t = c.get(f"/api/sessions/{s.id}/turns/{pending.index}").json()
            if t["status"] == "done":
                break
            import time

            time.sleep(0.05)
        assert t["status"] == "done" and t["reran"] == ["text"]


# --- concurrency: sessions at once, one session's turns in order, waiting without threads -----------------------
def slow_engine(home, on_event=None, delay_ms=60):
    engine = Engine("preview", home=home, on_event=on_event)
    engine.profile = engine.profile.model_copy(update={"delay_ms": delay_ms})
    return engine


def test_two_sessions_run_at_once_and_one_sessions_turns_stay_in_order(home):
    import threading
    import time

    spans: dict[str, list[float]] = {}
    lock = threading.Lock()

    def on_event(ev):
        if ev["event"] in ("run_started", "run_finished"):
            with lock:
                spans.setdefault(ev["run"], []).append(time.monotonic())

    with TestClient(create_app(slow_engine(home, on_event)), base_url=BASE) as c:
        a = new_session(c)["session_id"]
        b = new_session(c)["session_id"]
        a1 = c.post(f"/api/sessions/{a}/messages", json={"text": "the sign should say FIRST"}).json()
        a2 = c.post(f"/api/sessions/{a}/messages", json={"text": "make the cat bigger"}).json()
        b1 = c.post(f"/api/sessions/{b}/messages", json={"text": "the sign should say OTHER"}).json()
        assert {a1["status"], a2["status"], b1["status"]} <= {"queued", "planning", "running"}  # 202 at once
        assert c.get("/api/health").json()["ok"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            views = [c.get(f"/api/sessions/{s}/turns/{t['index']}").json() for s, t in ((a, a1), (a, a2), (b, b1))]
            if all(v["status"] == "done" for v in views):
                break
            time.sleep(0.05)
        va1, va2, vb1 = views
        assert [v["status"] for v in views] == ["done"] * 3
    (a1s, a1e), (a2s, a2e), (b1s, b1e) = (spans[v["run_id"]] for v in views)
    assert a1e <= a2s  # one session: the second turn started after the first had finished
    assert b1s < a1e and a1s < b1e  # two sessions: their turns overlapped in time
    assert va2["layout"]["texts"][0]["content"] == "FIRST"  # turn 2 edited the picture turn 1 made
    assert vb1["layout"]["texts"][0]["content"] == "OTHER"


def test_waiting_requests_hold_no_thread_and_are_capped(home):
    import threading
    import time

    with TestClient(create_app(slow_engine(home, delay_ms=400), max_waiters=2, workers=1), base_url=BASE) as c:
        sid = new_session(c)["session_id"]
        answers: list = []

        def wait_for_turn(text):
            answers.append(c.post(f"/api/sessions/{sid}/messages", json={"text": text, "wait": True}).status_code)

        threads = [threading.Thread(target=wait_for_turn, args=(f"the sign should say W{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for _ in range(100):
            if c.get("/api/health").json()["waiting"] == 2:
                break
            time.sleep(0.02)
        t0 = time.monotonic()
        health = c.get("/api/health")
        assert health.status_code == 200 and time.monotonic() - t0 < 1.0 and health.json()["waiting"] == 2
        assert c.get("/api/sessions").status_code == 200
        over = c.post(f"/api/sessions/{sid}/messages", json={"text": "make the cat bigger", "wait": True})
        assert over.status_code == 503 and "poll" in over.json()["detail"]
        for t in threads:
            t.join(60)
        assert sorted(answers) == [202, 202]


def test_cancel_a_run_over_http_then_resume_it(home):
    import time

    engine = slow_engine(home, delay_ms=300)
    with TestClient(create_app(engine), base_url=BASE) as c:
        run_id = c.post("/api/runs", json={"blueprint": SCENE}).json()["run_id"]
        for _ in range(200):
            if run_id in engine.active_runs() and (home / "runs" / run_id / "events.jsonl").exists():
                break
            time.sleep(0.02)
        assert c.post(f"/api/runs/{run_id}/cancel", json={}).status_code == 202
        for _ in range(300):
            status = c.get(f"/api/runs/{run_id}").json()["status"]
            if status and status["status"] == "cancelled":
                break
            time.sleep(0.05)
        assert status["status"] == "cancelled"
        assert c.post(f"/api/runs/{run_id}/cancel", json={}).status_code == 409  # nothing running by that id
        assert c.post(f"/api/runs/{run_id}/resume", json={}).status_code == 202
        for _ in range(400):
            status = c.get(f"/api/runs/{run_id}").json()["status"]
            if status["status"] == "done":
                break
            time.sleep(0.05)
        assert status["status"] == "done"
