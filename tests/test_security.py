"""The server against a hostile network: DNS rebinding, tokens in URLs, odd JSON, slow clients, framing, damage."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agent.api import Engine, UserError
from agent.http_guard import GuardedH11Protocol, host_allowed, is_loopback
from agent.server import create_app, resolve_token
from tests.chat_fixtures import SCENE

BASE = "http://127.0.0.1"
TOKEN = "t0ken-for-tests-0123456789"


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def client(home):
    with TestClient(create_app(Engine("preview", home=home), port=8765), base_url=BASE + ":8765") as c:
        yield c


def session(client) -> dict:
    res = client.post("/api/sessions", json={"blueprint": SCENE, "wait": True})
    assert res.status_code == 201, res.text
    return res.json()


@pytest.mark.parametrize("host", [
    "127.0.0.1.evil.example:8765", "127.0.0.1.nip.io:8765", "localhost:8765@evil.example", "localhost.evil:8765",
    "127.attacker.example:8765", "evil.example:8765", "127.0.0.1:8766", "127.0.0.1:99999", "127.0.0.1:", "[::1",
    "127.0.0.1:8765/x", "", "0.0.0.0:8765", "127.0.0.1 :8765",
])
def test_rebinding_hosts_are_refused(client, host):
    res = client.get("/api/health", headers={"host": host})
    assert res.status_code == 421, host
    assert client.get("/api/sessions", headers={"host": host}).status_code == 421
    create = client.post("/api/sessions", json={"prompt": "a cat"}, headers={"host": host})
    assert create.status_code == 421
    assert client.get("/api/sessions").json() == []  # nothing was created behind the refusal


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST:8765", "[::1]:8765", "127.5.6.7:8765"])
def test_loopback_hosts_with_the_right_port_are_served(client, host):
    assert client.get("/api/health", headers={"host": host}).status_code == 200


def test_host_parsing():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("127.attacker.example") and not is_loopback("127.0.0.1.nip.io") and not is_loopback("0.0.0.0")
    assert host_allowed("127.0.0.1:8080", None) and not host_allowed("127.0.0.1:8080", 9000)
    assert host_allowed("localhost", 80) and not host_allowed("localhost", 8765)


def test_serve_on_a_lookalike_host_needs_a_token(monkeypatch, tmp_path):
    monkeypatch.delenv("SCENEWRIGHT_TOKEN", raising=False)
    with pytest.raises(UserError, match="--token"):
        resolve_token("127.attacker.example", None)
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    from agent.cli import app

    res = CliRunner().invoke(app, ["serve", "--host", "127.attacker.example"], catch_exceptions=False)
    assert res.exit_code == 2 and "--token" in res.stderr and "Traceback" not in res.output


def test_query_token_only_on_image_and_stream_gets(home):
    app = create_app(Engine("preview", home=home), token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app, base_url="http://10.0.0.5") as c:
        view = c.post("/api/sessions", json={"blueprint": SCENE, "wait": True}, headers=auth).json()
        turn = view["turns"][0]
        q = {"token": TOKEN}
        assert c.get(turn["image_url"], params=q).status_code == 200
        assert c.get(f"/api/runs/{turn['run_id']}/image", params=q).status_code == 200
        assert c.get(f"/api/runs/{turn['run_id']}/events/stream", params=q).status_code == 200
        assert c.get("/api/sessions", params=q).status_code == 401
        assert c.get(f"/api/runs/{turn['run_id']}", params=q).status_code == 401
        sid = view["session_id"]
        write = c.post(f"/api/sessions/{sid}/messages", params=q, json={"text": "warmer light", "wait": True})
        assert write.status_code == 401  # a token in a URL (logs, history, Referer) never authorises a write
        assert c.post("/api/sessions", params=q, json={"prompt": "a cat"}).status_code == 401


def test_security_headers_on_every_response(client):
    for res in (client.get("/"), client.get("/api/health"), client.get("/web/app.js"),
                client.get("/api/health", headers={"host": "evil.example"}), client.get("/api/sessions/bad id!")):
        assert res.headers["x-content-type-options"] == "nosniff"
        csp = res.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert res.headers["x-frame-options"] == "DENY"
    assert "unsafe-inline" not in client.get("/").headers["content-security-policy"]


def _raw(client, path: str, text: str):
    return client.post(path, content=text.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"})


@pytest.mark.parametrize("body,what", [
    ('{"prompt": "a cat \\ud800 on a mat"}', "surrogate"),
    ('{"prompt": "a cat", "seed": NaN}', "NaN"),
    ('{"prompt": "a cat", "seed": Infinity}', "Infinity"),
    ('{"prompt": "a cat", "seed": 1e999}', "out of range"),
    ('{"prompt": "a cat", "seed": 9223372036854775808}', "out of range"),
    ('{"prompt": "a cat", "seed": ' + "9" * 5000 + "}", "out of range"),
    ('{"prompt": "a cat\\u0000"}', "NUL"),
    ('{"prompt": "a cat"', "not valid JSON"),
])
def test_odd_json_is_a_400_naming_the_problem(client, body, what):
    for path in ("/api/sessions", "/api/runs"):
        res = _raw(client, path, body)
        assert res.status_code == 400 and what in res.json()["detail"], (path, res.text)


def test_odd_values_in_session_routes_are_400s(client):
    sid = session(client)["session_id"]
    assert _raw(client, f"/api/sessions/{sid}/messages", '{"text": "make the cat \\ud800 bigger"}').status_code == 400
    nul = client.post(f"/api/sessions/{sid}/messages", json={"text": "make the cat\u0000 bigger", "wait": True})
    assert nul.status_code == 400 and "NUL" in nul.json()["detail"]
    assert _raw(client, f"/api/sessions/{sid}/branch", '{"turn": 9223372036854775808}').status_code == 400
    assert client.post(f"/api/sessions/{sid}/branch", json={"turn": 2**40}).status_code == 422
    assert client.get(f"/api/sessions/{sid}/turns/9223372036854775808").status_code == 422
    assert client.get(f"/api/sessions/{sid}/turns/-1").status_code == 422
    assert len(client.get(f"/api/sessions/{sid}").json()["turns"]) == 1  # none of that became a turn


def test_damaged_artifact_is_not_served(client, home):
    turn = session(client)["turns"][0]
    sha = turn["image_url"].rsplit("/", 1)[1]
    path = home / "artifacts" / sha[:2] / f"{sha}.png"
    from PIL import Image

    Image.new("RGB", (512, 512), (0, 255, 0)).save(path)
    res = client.get(turn["image_url"])
    assert res.status_code == 404 and "other pixels" in res.json()["detail"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slow_headers_are_cut_off(home, monkeypatch):
    import uvicorn

    monkeypatch.setattr(GuardedH11Protocol, "header_timeout_s", 0.5)
    port = _free_port()
    app = create_app(Engine("preview", home=home), port=port, recover=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http=GuardedH11Protocol))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)  # never ends the headers
        slow.settimeout(5)
        t0 = time.time()
        assert slow.recv(1024) == b""  # closed by the server
        assert time.time() - t0 < 4
        slow.close()
        idle = socket.create_connection(("127.0.0.1", port))  # says nothing at all
        idle.settimeout(5)
        assert idle.recv(1024) == b""
        idle.close()
        ok = socket.create_connection(("127.0.0.1", port))
        ok.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
        ok.settimeout(5)
        reply = b""
        while chunk := ok.recv(4096):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200") and json.loads(reply.split(b"\r\n\r\n", 1)[1])["ok"] is True
        ok.close()
    finally:
        server.should_exit = True
        thread.join(10)
