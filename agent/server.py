"""``scenewright serve``: the HTTP API (FastAPI, OpenAPI schema at ``/openapi.json``, docs at ``/docs``) and the
chat web page at ``/``.

Resources: sessions (create, list, read, send a message, undo, branch), turns, runs (list, read, final image,
events by polling or as a server-sent-event stream), artifacts (content-addressed PNGs, by sha256 only).

Work runs on a small pool of worker threads: turns of different sessions (and runs posted to ``/api/runs``) run at
the same time, and the engine's scheduler batches their model calls together (the GPU is one resource, shared);
turns of one session run one after another, in the order they were sent, since each edits the picture the one
before made. Every ``POST`` that starts work returns at once (202: the queued turn, or the new run's id); clients
poll the turn or run, or stream its events. ``wait=true`` waits for the result without holding a thread (at most
``MAX_WAITERS`` at a time; beyond that the request is refused and should poll), so ``/api/health`` always answers.
A run or a turn's run is cancelled with ``POST /api/runs/{id}/cancel``: it stops at its next model step, its
record says ``cancelled``, and ``resume`` finishes it. On start the server finishes turns a previous process left
pending (resumed from their run records), so a session survives a restart.

Security, in layers:

- bound to 127.0.0.1 by default; binding anywhere else needs a token (``--token`` / ``SCENEWRIGHT_TOKEN``), sent
  as ``Authorization: Bearer <token>`` (or ``?token=`` on the image and event-stream GETs only, where a browser
  cannot set headers: ``<img>``, ``EventSource``); compared in constant time;
- without a token, the ``Host`` header must be a literal loopback address or ``localhost`` with the server's port
  (no DNS rebinding from a web page);
- writes must be ``application/json`` (a cross-site form post cannot be), bodies are capped (1 MiB default) and
  checked (UTF-8, no NUL or lone surrogates, finite numbers, 64-bit integers); headers have a read deadline;
  every response carries CSP, nosniff and no-framing headers (all of this: ``agent/http_guard.py``);
- ids are validated by pattern before they touch the file system; artifacts are served only by sha256 name, and
  only when their pixels still match it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as FastPath
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from agent.api import Engine, RunCancelled, UserError
from agent.blueprint import BlueprintError, parse_blueprint
from agent.http_guard import Guard, is_loopback
from agent.openai_images import images_router
from agent.sessions import PENDING, ChatSession, Sessions, Turn, check_session_id
from agent.store import ArtifactError, StoreError

MAX_BODY_BYTES = 1024 * 1024
MAX_TURN = 10**9  # a turn index (SQLite integers are 64-bit; larger ones were a 500)
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
WEB_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
STREAM_LIMIT_S = 600.0
WORKERS = 4  # turns and runs at the same time (their model calls share batches on the engine's scheduler)
MAX_WAITERS = 32  # wait=true requests awaiting a result at once


# --- request and response models (these make the OpenAPI schema) -------------------------------------------------
class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSession(_In):
    prompt: Annotated[str, Field(max_length=8000)] | None = None
    blueprint: dict[str, Any] | None = None
    seed: int = Field(0, ge=0, le=2**32 - 1)
    title: Annotated[str, Field(max_length=200)] | None = None
    wait: bool = False


class MessageIn(_In):
    text: Annotated[str, Field(min_length=1, max_length=2000)]
    wait: bool = False


class WaitIn(_In):
    wait: bool = False


class BranchIn(_In):
    turn: int = Field(ge=0, le=MAX_TURN)
    title: Annotated[str, Field(max_length=200)] | None = None


class RunIn(_In):
    prompt: Annotated[str, Field(max_length=8000)] | None = None
    blueprint: dict[str, Any] | None = None
    seed: int = Field(0, ge=0, le=2**32 - 1)
    wait: bool = False


class LayoutBox(BaseModel):
    name: str
    box: list[float]
    description: str = ""


class LayoutText(BaseModel):
    content: str
    box: list[float]


class Layout(BaseModel):
    width: int
    height: int
    objects: list[LayoutBox]
    texts: list[LayoutText]
    background: str = ""
    style: str = ""


class Progress(BaseModel):
    done: int
    total: int
    node: str | None = None  # the node whose model call is stepping now ("step 12/20 of repaint.cat")
    step: int | None = None
    steps: int | None = None


class TurnView(BaseModel):
    session_id: str
    index: int
    kind: str
    message: str
    status: Literal["queued", "planning", "running", "done", "failed", "rejected"]
    error: str | None = None
    created: str
    updated: str
    changes: list[str]
    ops: list[dict]
    run_id: str | None = None
    image_url: str | None = None
    reran: list[str]
    cached: list[str]
    loops: dict[str, list[dict]] = {}
    layout: Layout | None = None
    look: list[str] = []
    progress: Progress | None = None
    seconds: float | None = None


class SessionView(BaseModel):
    session_id: str
    title: str
    created: str
    updated: str
    profile: str
    parent_session: str | None = None
    parent_turn: int | None = None
    head: int | None = None
    turns: list[TurnView] = []


class SessionSummary(BaseModel):
    session_id: str
    title: str
    created: str
    updated: str
    profile: str
    turns: int
    parent_session: str | None = None
    parent_turn: int | None = None


class EventsPage(BaseModel):
    events: list[dict]
    next: int
    done: bool


class Server:
    """The engine, the sessions, and the workers: sessions run at the same time, one session's turns in order."""

    def __init__(self, engine: Engine, *, workers: int = WORKERS, max_waiters: int = MAX_WAITERS):
        self.engine = engine
        self.sessions = Sessions(engine)
        self.worker = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenewright-worker")
        self.max_waiters = max_waiters
        self.waiting = 0  # requests awaiting a result (wait=true); only touched on the event loop
        self._queues: dict[str, deque[tuple[int, Future]]] = {}  # session → its turns not yet started, in order
        self._lock = threading.Lock()

    def submit(self, session: ChatSession, index: int) -> Future:
        """Queue a turn behind the session's earlier ones; other sessions' turns do not wait for it."""
        fut: Future = Future()
        with self._lock:
            q = self._queues.get(session.id)
            idle = q is None
            if idle:
                q = self._queues[session.id] = deque()
            q.append((index, fut))
        if idle:
            self.worker.submit(self._drain, session)
        return fut

    def _drain(self, session: ChatSession) -> None:
        """Work through one session's queue on one worker thread, in order, until it is empty."""
        while True:
            with self._lock:
                q = self._queues[session.id]
                if not q:
                    del self._queues[session.id]
                    return
                index, fut = q.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(session.process(index))
            except BaseException as err:  # noqa: BLE001 - the turn's record says what happened; keep draining
                fut.set_exception(err)

    def start_run(self, body: "RunIn") -> tuple[Future, str]:
        """A run for ``POST /api/runs``: its record (and id) now, the work on a worker."""
        if body.blueprint is not None:
            try:
                bp = parse_blueprint(body.blueprint)
            except BlueprintError as err:
                raise HTTPException(400, f"invalid blueprint: {err.errors[0]}") from None
            run = self.engine.start_run({"kind": "blueprint", "seed": bp.seed}, prompt=bp.prompt)
            return self.worker.submit(self.engine.run_blueprint, bp, run=run), run.id
        if not (body.prompt or "").strip():
            raise HTTPException(400, "the prompt is empty; describe the image you want")
        run = self.engine.start_run({"kind": "prompt", "prompt": body.prompt, "seed": body.seed})
        return self.worker.submit(self.engine.generate, body.prompt, seed=body.seed, run=run), run.id

    async def wait(self, fut: Future) -> Any:
        """Await a worker's result on the event loop (no thread is held while waiting)."""
        self.waiting += 1
        try:
            return await asyncio.wrap_future(fut)
        finally:
            self.waiting -= 1

    def check_waiters(self) -> None:
        if self.waiting >= self.max_waiters:
            raise HTTPException(503, f"{self.waiting} requests are already waiting for results; send wait=false"
                                     " and poll the turn or run instead")  # fmt: skip

    def recover(self) -> None:
        """Queue the turns a previous process left pending (planning ones start over; running ones resume)."""
        for t in self.sessions.db.pending_turns():
            if t.status == "planning":
                t.status, t.run_id = "queued", None
                self.sessions.db.save_turn(t)
            self.submit(ChatSession(self.sessions, t.session_id), t.index)

    def session(self, session_id: str) -> ChatSession:
        try:
            check_session_id(session_id)
            return self.sessions.open(session_id)
        except UserError as err:
            raise HTTPException(404 if "no session" in str(err) else 400, str(err)) from None

    def run_dir(self, run_id: str) -> Path:
        if not RUN_ID.match(run_id or ""):
            raise HTTPException(400, f"'{run_id[:80]}' is not a run id")
        path = self.engine.store.runs_dir / run_id
        if not path.is_dir():
            raise HTTPException(404, f"no run '{run_id}'")
        return path

    # --- views -----------------------------------------------------------------------------------------------
    def turn_view(self, turn: Turn) -> dict:
        state = turn.state or {}
        bp = state.get("blueprint")
        layout = None
        if bp:
            layout = {
                "width": bp["canvas"]["width"],
                "height": bp["canvas"]["height"],
                "objects": [
                    {"name": o["name"], "box": o["box"], "description": o.get("description", "")} for o in bp["objects"]
                ],
                "texts": [{"content": t["content"], "box": t["box"]} for t in bp["texts"]],
                "background": bp.get("background", ""),
                "style": bp.get("style", ""),
            }
        result = turn.result or {}
        sha = result.get("image_sha256")
        progress = None
        if turn.status in PENDING and turn.run_id:
            progress = _progress(self.engine.store.runs_dir / turn.run_id / "events.jsonl")
        return {
            "session_id": turn.session_id,
            "index": turn.index,
            "kind": turn.kind,
            "message": turn.message,
            "status": turn.status,
            "error": turn.error,
            "created": turn.created,
            "updated": turn.updated,
            "changes": turn.changes,
            "ops": turn.ops,
            "run_id": turn.run_id,
            "image_url": f"/api/artifacts/{sha}" if sha else None,
            "reran": turn.reran,
            "cached": turn.cached,
            "loops": result.get("loops", {}),
            "layout": layout,
            "look": state.get("look", []),
            "progress": progress,
            "seconds": result.get("seconds"),
        }

    def session_view(self, session: ChatSession) -> dict:
        info = session.info
        head = session.head()
        return {
            **{
                k: info.get(k)
                for k in ("session_id", "title", "created", "updated", "profile", "parent_session", "parent_turn")
            },
            "head": head.index if head else None,
            "turns": [self.turn_view(t) for t in session.turns()],
        }


def _progress(events_path: Path) -> dict:
    done = total = 0
    step: dict = {}
    if events_path.exists():
        for line in events_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(ev, dict):
                continue
            kind = ev.get("event")
            if kind == "run_started":
                total += ev.get("nodes", 0)
            elif kind == "loop_expanded":
                total += ev.get("nodes", 0)
            elif kind in ("finished", "cached", "failed", "skipped"):
                done += 1
                if ev.get("node") == step.get("node"):
                    step = {}
            elif kind == "progress":
                step = {"node": ev.get("node"), "step": ev.get("step"), "steps": ev.get("total")}
    return {"done": done, "total": max(total, done), **step}


def _read_events(path: Path, after: int, limit: int) -> tuple[list[dict], int]:
    events, n = [], 0
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, start=1):
                if n <= after:
                    continue
                if not line.endswith("\n"):  # a line still being written
                    n -= 1
                    break
                try:
                    ev = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(ev, dict):
                    events.append(ev)
                if len(events) >= limit:
                    break
    return events, max(after, n if events else after)


def _read_record(path: Path) -> Any:
    """A run record file; a damaged one is a StoreError (503 naming the file), never a 500 with a traceback."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise StoreError(f"{path} is damaged ({type(err).__name__}); `scenewright doctor` lists damaged records") from None


def _read_status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "status.json").read_text()).get("status")
    except (OSError, ValueError, RecursionError, AttributeError):
        return None


def _run_done(run_dir: Path) -> bool:
    return _read_status(run_dir) in ("done", "failed", "cancelled")


def create_app(
    engine: Engine | None = None,
    *,
    profile: str = "preview",
    home: str | Path | None = None,
    token: str | None = None,
    max_body: int = MAX_BODY_BYTES,
    check_host: bool | None = None,
    recover: bool = True,
    port: int | None = None,
    workers: int = WORKERS,
    max_waiters: int = MAX_WAITERS,
) -> FastAPI:
    """The ASGI app. ``check_host`` defaults to on without a token (loopback-only), off with one; with ``port``, the
    Host header must also name that port (see ``agent/http_guard.py``)."""
    engine = engine or Engine(profile, home=home)
    server = Server(engine, workers=workers, max_waiters=max_waiters)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if recover:
            server.recover()
        yield
        server.worker.shutdown(wait=True, cancel_futures=False)  # turns in flight finish (or resume on restart)

    app = FastAPI(
        title="scenewright",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # /docs below: Swagger UI from the installed swagger-ui-py, so it works offline
        redoc_url=None,  # ReDoc only loads from a CDN
        description="Plan first, paint second: chat sessions, runs, events and artifacts. "
        "Send `Authorization: Bearer <token>` when the server was started with a token.",
    )
    app.state.server = server

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError):  # damage or a full disk: the operator's to fix
        return JSONResponse({"detail": str(exc)}, status_code=503)

    # --- page ------------------------------------------------------------------------------------------------
    web = resources.files("agent").joinpath("web")

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(web.joinpath("index.html").read_text(encoding="utf-8"))

    @app.get("/web/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in WEB_FILES:
            raise HTTPException(404, "no such file")
        return Response(
            web.joinpath(name).read_bytes(), media_type=WEB_FILES[name], headers={"Cache-Control": "no-cache"}
        )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        from fastapi.openapi.docs import get_swagger_ui_html

        if swagger_assets() is None:  # the serve extra was installed without it: the CDN, which needs a network
            return get_swagger_ui_html(openapi_url=app.openapi_url, title="scenewright API")
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title="scenewright API", swagger_js_url="/web/swagger/swagger-ui-bundle.js",
            swagger_css_url="/web/swagger/swagger-ui.css", swagger_favicon_url="/web/swagger/favicon-32x32.png",
        )

    @app.get("/web/swagger/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> Response:
        folder = swagger_assets()
        if folder is None or name not in SWAGGER_FILES:
            raise HTTPException(404, "no such file")
        return Response((folder / name).read_bytes(), media_type=SWAGGER_FILES[name],
                        headers={"Cache-Control": "public, max-age=86400"})

    # --- sessions --------------------------------------------------------------------------------------------
    @app.get("/api/health")
    async def health() -> dict:  # on the event loop: answers however busy the workers and threads are
        return {"ok": True, "profile": engine.profile.name, "active_runs": len(engine.active_runs()),
                "waiting": server.waiting, "cluster": engine.cluster_status()}  # fmt: skip

    @app.get("/api/sessions", response_model=list[SessionSummary])
    def list_sessions(limit: int = Query(100, ge=1, le=1000)):
        return server.sessions.list(limit)

    @app.post("/api/sessions", status_code=201, response_model=SessionView)
    async def create_session(body: CreateSession):
        if body.wait:
            server.check_waiters()

        def create():
            bp = None
            if body.blueprint is not None:
                try:
                    bp = parse_blueprint(body.blueprint)
                except BlueprintError as err:
                    raise HTTPException(400, f"invalid blueprint: {err.errors[0]}") from None
            try:
                session = server.sessions.create(body.prompt, blueprint=bp, seed=body.seed, title=body.title,
                                                 run=False)  # fmt: skip
            except UserError as err:
                raise HTTPException(400, str(err)) from None
            return session, server.submit(session, 0)

        session, fut = await run_in_threadpool(create)
        if body.wait:
            await server.wait(fut)
        return await run_in_threadpool(server.session_view, session)

    @app.get("/api/sessions/{session_id}", response_model=SessionView)
    def get_session(session_id: str):
        return server.session_view(server.session(session_id))

    async def _send(session_id: str, text: str, wait: bool) -> dict:
        if wait:
            server.check_waiters()

        def submit():
            session = server.session(session_id)
            try:
                turn = session.submit(text)
            except UserError as err:
                raise HTTPException(400, str(err)) from None
            return session, turn, server.submit(session, turn.index)

        session, turn, fut = await run_in_threadpool(submit)
        if wait:
            await server.wait(fut)
        return await run_in_threadpool(lambda: server.turn_view(session.turn(turn.index)))

    @app.post("/api/sessions/{session_id}/messages", status_code=202, response_model=TurnView)
    async def send_message(session_id: str, body: MessageIn):
        return await _send(session_id, body.text, body.wait)

    @app.post("/api/sessions/{session_id}/undo", status_code=202, response_model=TurnView)
    async def undo(session_id: str, body: WaitIn):
        return await _send(session_id, "undo", body.wait)

    @app.post("/api/sessions/{session_id}/branch", status_code=201, response_model=SessionView)
    def branch(session_id: str, body: BranchIn):
        session = server.session(session_id)
        try:
            new = session.branch(body.turn, body.title)
        except UserError as err:
            raise HTTPException(400, str(err)) from None
        return server.session_view(new)

    @app.get("/api/sessions/{session_id}/turns/{index}", response_model=TurnView)
    def get_turn(session_id: str, index: int = FastPath(ge=0, le=MAX_TURN)):
        session = server.session(session_id)
        turn = session.db.turn(session.id, index)
        if turn is None:
            raise HTTPException(404, f"session {session_id} has no turn {index}")
        return server.turn_view(turn)

    # --- runs ------------------------------------------------------------------------------------------------
    @app.get("/api/runs")
    def list_runs(limit: int = Query(50, ge=1, le=1000)) -> list[dict]:
        return engine.store.list_runs(limit)

    @app.post("/api/runs", status_code=202)
    async def create_run(body: RunIn):
        """Generate from a prompt, or run a blueprint. Answers at once with the run's id (poll ``GET
        /api/runs/{id}`` or stream its events); ``wait=true`` answers with the finished run instead."""
        if (body.prompt is None) == (body.blueprint is None):
            raise HTTPException(400, "give a prompt or a blueprint (one of them)")
        if body.wait:
            server.check_waiters()
        fut, run_id = await run_in_threadpool(server.start_run, body)
        if not body.wait:
            return {"run_id": run_id, "status": "queued", "url": f"/api/runs/{run_id}",
                    "events": f"/api/runs/{run_id}/events/stream"}  # fmt: skip
        try:
            outcome = await server.wait(fut)
        except RunCancelled:
            raise HTTPException(409, f"run {run_id} was cancelled; POST /api/runs/{run_id}/resume finishes it")
        except UserError as err:
            raise HTTPException(400, str(err)) from None
        except Exception as err:  # planning errors: the model's output was bad input
            raise HTTPException(422, f"{type(err).__name__}: {err}") from None
        return JSONResponse({**outcome.to_dict(), "status": "done" if outcome.ok else "failed"}, status_code=200)

    @app.post("/api/runs/{run_id}/cancel", status_code=202)
    async def cancel_run(run_id: str) -> dict:
        """Cancel a planning or running run: it stops at its next model step; ``resume`` finishes it later."""
        d = server.run_dir(run_id)
        if engine.cancel(run_id):
            return {"run_id": run_id, "status": "cancelling"}
        status = _read_status(d)
        raise HTTPException(409, f"run {run_id} is not running in this server (status '{status}')")

    @app.post("/api/runs/{run_id}/resume", status_code=202)
    async def resume_run(run_id: str) -> dict:
        """Continue a cancelled, failed or interrupted run from its record (finished nodes from the cache)."""
        d = server.run_dir(run_id)
        status = _read_status(d)
        if status in ("done",) or run_id in engine.active_runs():
            raise HTTPException(409, f"run {run_id} is {'running' if status != 'done' else 'done'}; nothing to resume")
        server.worker.submit(engine.resume, run_id)
        return {"run_id": run_id, "status": "queued", "url": f"/api/runs/{run_id}"}

    @app.post("/api/sessions/{session_id}/turns/{index}/cancel", status_code=202, response_model=TurnView)
    def cancel_turn(session_id: str, index: int):
        """Cancel a turn's run; the turn ends ``failed`` with an error that says how to resume its run."""
        session = server.session(session_id)
        turn = session.db.turn(session.id, index)
        if turn is None:
            raise HTTPException(404, f"session {session_id} has no turn {index}")
        if turn.status not in PENDING or not turn.run_id or not engine.cancel(turn.run_id):
            raise HTTPException(409, f"turn {index} of session {session_id} is not running ({turn.status})")
        return server.turn_view(turn)

    @app.get("/api/runs/{run_id}")
    def get_run(run_id: str) -> dict:
        d = server.run_dir(run_id)
        out: dict[str, Any] = {"run_id": run_id}
        for name in ("status", "request", "result", "blueprint"):
            p = d / f"{name}.json"
            out[name] = _read_record(p) if p.exists() else None
        if isinstance(out["result"], dict):
            out["result"].pop("image", None)  # a server-side path; clients use the image URL
            sha = out["result"].get("image_sha256")
            out["image_url"] = f"/api/artifacts/{sha}" if sha else None
        return out

    @app.get("/api/runs/{run_id}/image", response_class=FileResponse)
    def run_image(run_id: str):
        p = server.run_dir(run_id) / "final.png"
        if not p.exists():
            raise HTTPException(404, f"run {run_id} has no image (yet)")
        return FileResponse(p, media_type="image/png")

    @app.get("/api/runs/{run_id}/events", response_model=EventsPage)
    def run_events(run_id: str, after: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=10_000)):
        """Poll: events after line ``after``; ``next`` is the ``after`` of the next call."""
        d = server.run_dir(run_id)
        events, nxt = _read_events(d / "events.jsonl", after, limit)
        return {"events": events, "next": nxt, "done": _run_done(d) and len(events) < limit}

    @app.get("/api/runs/{run_id}/events/stream")
    async def run_events_stream(run_id: str, request: Request, after: int = Query(0, ge=0)):
        """Server-sent events: one ``node`` event per record line, then ``end`` when the run is over."""
        d = server.run_dir(run_id)
        last = request.headers.get("last-event-id")
        start = int(last) if last and last.isdigit() else after

        async def stream():
            pos, waited = start, 0.0
            yield "retry: 1000\n\n"
            while waited < STREAM_LIMIT_S:
                if await request.is_disconnected():
                    return
                events, nxt = _read_events(d / "events.jsonl", pos, 1000)
                for i, ev in enumerate(events, start=pos + 1):
                    yield f"id: {i}\nevent: node\ndata: {json.dumps(ev, separators=(',', ':'))}\n\n"
                pos = nxt
                if not events:
                    if _run_done(d):
                        status = _read_record(d / "status.json").get("status")
                        yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
                        return
                    await asyncio.sleep(0.1)
                    waited += 0.1

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    # --- artifacts -------------------------------------------------------------------------------------------
    @app.get("/api/artifacts/{sha}", response_class=FileResponse)
    def artifact(sha: str):
        if not SHA256.match(sha):
            raise HTTPException(400, "artifacts are named by their sha256 (64 lower-case hex digits)")
        p = engine.store.artifact_path(sha)
        try:
            engine.store.check_artifact(sha)  # never serve a file whose pixels are not what its name says
        except ArtifactError as err:
            raise HTTPException(404, f"no artifact {sha[:12]}" + ("" if err.reason == "is missing" else f": {err.reason}"))
        return FileResponse(p, media_type="image/png", headers={"Cache-Control": "public, max-age=31536000, immutable"})

    # --- OpenAI's Images API (agent/openai_images.py) ---------------------------------------------------------
    app.include_router(images_router(server))

    return _GuardedApp(
        app, token=token, max_body=max_body, check_host=(token is None) if check_host is None else check_host, port=port
    )


SWAGGER_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png"}


def swagger_assets() -> Path | None:
    """The folder of Swagger UI's files in the ``swagger-ui-py`` package (the serve extra), or None. Swagger UI 5:
    FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot render (an empty page)."""
    try:
        import swagger_ui
    except ImportError:
        return None
    folder = Path(swagger_ui.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


class _GuardedApp(Guard):
    """The FastAPI app behind the guard; attribute access (``.state``, ``.openapi()``…) goes to the app."""

    def __getattr__(self, name):
        return getattr(self.app, name)


def resolve_token(host: str, token: str | None) -> str | None:
    """The token to require: the given one, else $SCENEWRIGHT_TOKEN. Binding beyond the loopback without one is an
    error."""
    token = token or os.environ.get("SCENEWRIGHT_TOKEN") or None
    if token is not None and len(token) < 16:
        raise UserError(
            "the token is shorter than 16 characters;"
            " use e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`"
        )
    if not is_loopback(host) and not token:
        raise UserError(
            f"binding to {host} exposes the API beyond this machine; pass --token (or set SCENEWRIGHT_TOKEN)"
        )
    return token
