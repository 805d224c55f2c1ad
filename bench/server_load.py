"""A bounded load test of ``scenewright serve`` on the loopback: a fixed number of requests, some hostile.

    python bench/server_load.py --requests 2000 --clients 16

Starts the real server (uvicorn with the guarded HTTP protocol, preview profile, a fresh home) on a free 127.0.0.1
port, makes one session so there is an image and a run to read, then ``--clients`` threads share ``--requests``
requests drawn in a fixed order from a mix: health, session list, session view, run view, events page, artifact
GET (reads) · a chat message (a write, queued) · a rebinding Host, a lone surrogate, NaN, a non-JSON write
(refusals). Each kind has an expected status; anything else is an error. Meanwhile ``--slow`` connections send
half a request line and stall (slow-loris): the server must cut them off and keep answering everyone else.
Prints requests/s, p50/p95/max latency per kind, the errors (expected: 0) and whether the slow connections were
closed. Exit 1 on any error.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import uvicorn  # noqa: E402

from agent.api import Engine  # noqa: E402
from agent.http_guard import GuardedH11Protocol  # noqa: E402
from agent.server import create_app  # noqa: E402
from chat_fixtures import SCENE  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--slow", type=int, default=8, help="slow-loris connections held open during the run")
    ap.add_argument("--header-timeout", type=float, default=2.0)
    args = ap.parse_args(argv)

    GuardedH11Protocol.header_timeout_s = args.header_timeout
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="sw-load-"))
    app = create_app(Engine("preview", home=home), port=port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, http=GuardedH11Protocol))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as c:
        view = c.post("/api/sessions", json={"blueprint": SCENE, "wait": True}).json()
    sid, turn = view["session_id"], view["turns"][0]
    hostile_json = {"content-type": "application/json"}
    mix = [  # (kind, method, path, kwargs, expected status)
        ("health", "GET", "/api/health", {}, 200),
        ("sessions", "GET", "/api/sessions", {}, 200),
        ("session", "GET", f"/api/sessions/{sid}", {}, 200),
        ("run", "GET", f"/api/runs/{turn['run_id']}", {}, 200),
        ("events", "GET", f"/api/runs/{turn['run_id']}/events", {}, 200),
        ("artifact", "GET", turn["image_url"], {}, 200),
        ("message", "POST", f"/api/sessions/{sid}/messages", {"json": {"text": "warmer light"}}, 202),
        ("rebind", "GET", "/api/health", {"headers": {"host": f"127.0.0.1.evil.example:{port}"}}, 421),
        ("surrogate", "POST", "/api/sessions", {"content": b'{"prompt": "a \\ud800"}', "headers": hostile_json}, 400),
        ("nan", "POST", "/api/runs", {"content": b'{"prompt": "a", "seed": NaN}', "headers": hostile_json}, 400),
        ("form", "POST", "/api/sessions", {"content": b"prompt=x",
                                           "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415),
    ]
    weights = [6, 3, 2, 2, 2, 4, 1, 1, 1, 1, 1]
    plan = [kind for kind, w in zip(mix, weights) for _ in range(w)]
    todo = [plan[i % len(plan)] for i in range(args.requests)]
    lat: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(todo)))

    slow_socks = []
    for _ in range(args.slow):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1")  # and nothing more
        s.settimeout(args.header_timeout + 10)
        slow_socks.append(s)

    def client():
        with httpx.Client(base_url=base, timeout=30) as c:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                kind, method, path, kw, want = todo[i]
                t0 = time.perf_counter()
                try:
                    r = c.request(method, path, **kw)
                    status = r.status_code
                except httpx.HTTPError as err:
                    status = f"{type(err).__name__}"
                dt = time.perf_counter() - t0
                with lock:
                    lat[kind].append(dt)
                    if status != want:
                        errors.append(f"{kind}: {status} (want {want})")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    closed = 0
    for s in slow_socks:
        try:
            closed += s.recv(1) == b""
        except OSError:
            closed += 1
        s.close()
    server.should_exit = True

    print(f"{args.requests} requests, {args.clients} clients, {wall:.2f} s, {args.requests / wall:.0f} req/s")
    for kind, _, _, _, want in mix:
        xs = sorted(lat[kind])
        if xs:
            print(f"  {kind:10s} {want}  n={len(xs):5d}  p50 {statistics.median(xs) * 1000:7.1f} ms"
                  f"  p95 {xs[int(len(xs) * 0.95) - 1] * 1000:7.1f} ms  max {xs[-1] * 1000:7.1f} ms")
    print(f"errors: {len(errors)}" + (f" (first: {errors[:5]})" if errors else ""))
    print(f"slow-loris connections closed by the server: {closed}/{args.slow}")
    print(json.dumps({"requests": args.requests, "seconds": round(wall, 3), "errors": len(errors),
                      "slow_closed": closed, "slow": args.slow}))
    return 1 if errors or closed != args.slow else 0


if __name__ == "__main__":
    sys.exit(main())
