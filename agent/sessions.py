"""Chat sessions: a conversation that edits one picture turn by turn.

A session is a list of turns. The first turn plans a prompt (or takes a blueprint) and paints it; every later turn
is a message that the planner turns into edit operations (:mod:`agent.edits`; the preview profile reads them with
:mod:`planners.edit_rules`), applied to the current :class:`~agent.edits.SceneState` to make the next one, which is
compiled and executed *with the cache*: a node runs again only when its inputs changed, and the turn records which
nodes ran (``reran``) and which came from the cache (``cached``), from the run's own events.

What an edit re-runs, and why:

- **Text** ("the sign should say CLOSED"): only ``text`` (and ``adjust``) — scene text is drawn last.
- **Look** ("warmer light", "more contrast"): only ``adjust``, one ``image_to_image`` node the session appends
  after the recipe's output. The look lives beside the blueprint in the turn's state.
- **One object's description or colour** ("make the cat red"): the LLM Blueprint recipe's global pass
  (``scene``) takes every object's phrase, so a plain recompile would repaint the whole picture. A session instead
  keeps the previous global pass (the *scene anchor*: its ``scene`` node inputs) while the layout is unchanged,
  and forces that object's refinement loop to repaint its box with the new description (its loop starts from
  score 0, at least one iteration): ``check.<obj>``, ``refine.<obj>.*``, ``compose`` and ``text`` run; every
  other object comes from the cache. The blueprint still says the new description, and the next layout change
  (below) recompiles the global pass from it, dropping the anchor.
- **Layout and scene** (bigger, move, add, remove, background, style, seed): ``scene`` and everything after it —
  the global pass draws all boxes together, so a layout change is a new picture. What the cache can keep, it does.
- **Undo**: the state (and scene anchor) of the turn before — every node comes from the cache.

So a session turn's graph is a function of its state *and* its anchor, not of the blueprint alone; the run's
``request.json`` (kind ``chat``) says which anchor was used, and ``graph.json`` is what ran (replay uses it).

Sessions persist in the ``sessions`` and ``session_turns`` tables of the store's ``index.sqlite`` beside the run
records, so a session can be listed, resumed after a restart (turns interrupted mid-run are resumed from their run
record), branched from any earlier turn into a new session, and undone step by step.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from agent.api import Engine, RunOutcome, UserError, check_text
from agent.run import Run, RunCancelled
from agent.blueprint import Blueprint, BlueprintError
from agent.edits import EditError, EditPlan, SceneState, apply_edits, parse_edit_plan
from agent.graph import Graph, LoopNode, ToolNode
from agent.db import SchemaTooNew, migrate_index
from agent.store import RunRecord, StoreError, _sqlite_errors, connect_index
from planners.base import PlanningError

SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$")
MAX_MESSAGE_CHARS = 2000
ADJUST_NODE = "adjust"
ADJUST_STRENGTH = 0.6
STATEFUL = ("done", "failed")  # turns whose state the next turn builds on ("rejected" ones have none)
PENDING = ("queued", "planning", "running")



def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def check_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
        raise UserError(f"'{str(session_id)[:80]}' is not a session id; `scenewright chat --list` shows them")
    return session_id


@dataclass
class Turn:
    """One message and what it did. ``state`` is the SceneState JSON (None for a rejected message)."""

    session_id: str
    index: int
    kind: str  # prompt | blueprint | edit | undo | branch
    message: str
    status: str  # queued | planning | running | done | failed | rejected
    created: str = ""
    updated: str = ""
    error: str | None = None
    prev: int | None = None  # the turn one undo step back
    state: dict | None = None
    scene: dict | None = None  # the scene node inputs this turn's graph used (the anchor for the next turn)
    ops: list[dict] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    run_id: str | None = None
    reran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    result: dict | None = None
    seed: int = 0

    @property
    def image(self) -> str | None:
        return (self.result or {}).get("image")

    @property
    def blueprint(self) -> Blueprint | None:
        return Blueprint.model_validate(self.state["blueprint"]) if self.state else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image"] = self.image
        return d


_ROW = (
    "session_id",
    "idx",
    "created",
    "updated",
    "kind",
    "message",
    "status",
    "error",
    "prev",
    "state",
    "scene",
    "ops",
    "changes",
    "run_id",
    "reran",
    "cached",
    "result",
    "seed",
)
_JSON_COLS = {"state", "scene", "ops", "changes", "reran", "cached", "result"}


def _turn_from_row(row: tuple) -> Turn:
    d = dict(zip(_ROW, row))
    for k in _JSON_COLS:
        try:
            d[k] = json.loads(d[k]) if d[k] else None
        except (TypeError, ValueError, RecursionError):
            raise StoreError(
                f"turn {d.get('idx')} of session {d.get('session_id')} is damaged in index.sqlite (column {k});"
                " branch from an earlier turn, or `scenewright doctor` to check the store"
            ) from None
    return Turn(
        session_id=d["session_id"],
        index=d["idx"],
        kind=d["kind"],
        message=d["message"],
        status=d["status"],
        created=d["created"],
        updated=d["updated"],
        error=d["error"],
        prev=d["prev"],
        state=d["state"],
        scene=d["scene"],
        ops=d["ops"] or [],
        changes=d["changes"] or [],
        run_id=d["run_id"],
        reran=d["reran"] or [],
        cached=d["cached"] or [],
        result=d["result"],
        seed=d["seed"] or 0,
    )


class SessionDB:
    """The two session tables in the store's ``index.sqlite`` (one connection per thread, WAL, short transactions)."""

    def __init__(self, home):
        self.path = home / "index.sqlite"
        self._local = threading.local()
        self.empty = False  # a read-only home that never held a session: nothing to list, nothing to open
        with _sqlite_errors(self.path):
            try:
                migrate_index(self.conn(), self.path)  # a read-only home is left as it is (agent/db.py)
            except SchemaTooNew as err:
                raise StoreError(str(err)) from None
            self.empty = not self.conn().execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'"
            ).fetchone()

    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = connect_index(self.path)  # damage, a read-only disk: one StoreError line
        return c

    def tx(self, sql: str, params: tuple = ()) -> None:
        c = self.conn()
        with _sqlite_errors(self.path):
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(sql, params)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def create_session(self, session_id: str, title: str, profile: str, parent: tuple[str, int] | None = None) -> None:
        now = _now()
        self.tx(
            "INSERT INTO sessions (session_id, created, updated, title, profile, parent_session, parent_turn)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session_id, now, now, title[:200], profile, parent[0] if parent else None, parent[1] if parent else None),
        )

    def session(self, session_id: str) -> dict | None:
        if self.empty:
            return None
        cur = self.conn().execute(
            "SELECT session_id, created, updated, title, profile, parent_session, parent_turn FROM sessions"
            " WHERE session_id = ?",
            (session_id,),
        )
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row)) if row else None

    def sessions(self, limit: int = 100) -> list[dict]:
        if self.empty:
            return []
        cur = self.conn().execute(
            "SELECT s.session_id, s.created, s.updated, s.title, s.profile, s.parent_session, s.parent_turn,"
            " (SELECT COUNT(*) FROM session_turns t WHERE t.session_id = s.session_id) AS turns"
            " FROM sessions s ORDER BY s.updated DESC, s.session_id DESC LIMIT ?",
            (limit,),
        )
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def add_turn(self, turn: Turn) -> Turn:
        """Insert with the next free index (atomic, so two writers never take the same one)."""
        c = self.conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            (n,) = c.execute(
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM session_turns WHERE session_id = ?", (turn.session_id,)
            ).fetchone()
            turn.index = n
            turn.created = turn.updated = _now()
            c.execute(
                f"INSERT INTO session_turns ({', '.join(_ROW)}) VALUES ({', '.join('?' * len(_ROW))})",
                self._values(turn),
            )
            c.execute("UPDATE sessions SET updated = ? WHERE session_id = ?", (turn.updated, turn.session_id))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return turn

    def save_turn(self, turn: Turn) -> None:
        turn.updated = _now()
        cols = [c for c in _ROW if c not in ("session_id", "idx", "created")]
        values = dict(zip(_ROW, self._values(turn)))
        self.tx(
            f"UPDATE session_turns SET {', '.join(f'{c} = ?' for c in cols)} WHERE session_id = ? AND idx = ?",
            (*[values[c] for c in cols], turn.session_id, turn.index),
        )
        self.tx("UPDATE sessions SET updated = ? WHERE session_id = ?", (turn.updated, turn.session_id))

    @staticmethod
    def _values(turn: Turn) -> tuple:
        d = {
            "session_id": turn.session_id,
            "idx": turn.index,
            "created": turn.created,
            "updated": turn.updated,
            "kind": turn.kind,
            "message": turn.message,
            "status": turn.status,
            "error": turn.error,
            "prev": turn.prev,
            "state": turn.state,
            "scene": turn.scene,
            "ops": turn.ops,
            "changes": turn.changes,
            "run_id": turn.run_id,
            "reran": turn.reran,
            "cached": turn.cached,
            "result": turn.result,
            "seed": turn.seed,
        }
        return tuple(
            json.dumps(d[c], sort_keys=True, ensure_ascii=False) if c in _JSON_COLS and d[c] is not None else d[c]
            for c in _ROW
        )

    def turns(self, session_id: str) -> list[Turn]:
        cur = self.conn().execute(
            f"SELECT {', '.join(_ROW)} FROM session_turns WHERE session_id = ? ORDER BY idx", (session_id,)
        )
        return [_turn_from_row(r) for r in cur.fetchall()]

    def turn(self, session_id: str, index: int) -> Turn | None:
        row = (
            self.conn()
            .execute(
                f"SELECT {', '.join(_ROW)} FROM session_turns WHERE session_id = ? AND idx = ?", (session_id, index)
            )
            .fetchone()
        )
        return _turn_from_row(row) if row else None

    def pending_turns(self) -> list[Turn]:
        cur = self.conn().execute(
            f"SELECT {', '.join(_ROW)} FROM session_turns WHERE status IN ({', '.join('?' * len(PENDING))})"
            " ORDER BY created, session_id, idx",
            PENDING,
        )
        return [_turn_from_row(r) for r in cur.fetchall()]


# --- compiling a session state --------------------------------------------------------------------------------------
def _scene_compatible(fresh: dict, anchor: dict) -> bool:
    """Same layout and scene settings; only object phrases (and so the global prompt) may differ."""
    if set(fresh) != set(anchor):
        return False
    for key in fresh:
        if key in ("prompt", "objects"):
            continue
        if fresh[key] != anchor[key]:
            return False
    fo, ao = fresh.get("objects", []), anchor.get("objects", [])
    return len(fo) == len(ao) and all(a["name"] == b["name"] and a["box"] == b["box"] for a, b in zip(fo, ao))


def compile_state(engine: Engine, state: SceneState, anchor: dict | None = None) -> tuple[Graph, dict, list[str]]:
    """The graph for a state: the recipe's graph, the scene anchor kept when the layout allows, the look appended.

    Returns ``(graph, scene_inputs_used, repainted_objects)``.
    """
    bp = state.blueprint
    graph = engine.compile(bp)
    nodes = list(graph.nodes)
    scene_i = next((i for i, n in enumerate(nodes) if n.id == "scene" and isinstance(n, ToolNode)), None)
    scene_inputs = nodes[scene_i].inputs if scene_i is not None else {}
    repainted: list[str] = []
    if scene_i is not None and anchor and anchor != scene_inputs and _scene_compatible(scene_inputs, anchor):
        old_phrase = {o["name"]: o["phrase"] for o in anchor["objects"]}
        changed = {o["name"]: o for o in scene_inputs["objects"] if old_phrase.get(o["name"]) != o["phrase"]}
        nodes[scene_i] = nodes[scene_i].model_copy(update={"inputs": anchor})
        scene_inputs = anchor
        for i, n in enumerate(nodes):
            if not isinstance(n, LoopNode):
                continue
            repaint = next((b for b in n.body if b.tool == "regional_repaint"), None)
            if repaint is None:
                continue
            for name, obj in changed.items():
                if repaint.inputs.get("box") == obj["box"]:
                    # the user asked for this object to change: repaint it at least once, keep the best repaint
                    nodes[i] = n.model_copy(
                        update={"state": {**n.state, n.score: 0.0}, "max_iters": max(1, n.max_iters)}
                    )
                    repainted.append(name)
    output = graph.output
    if state.look:
        if "image_to_image" not in engine.registry:
            raise UserError(f"profile '{engine.profile.name}' has no image_to_image tool for look adjustments")
        look = ", ".join(state.look)
        # the preview tool reads adjustment words; a diffusion img2img pass needs the scene described too
        prompt = look if engine.profile.backend == "preview" else f"{bp.global_prompt()}, {look}"
        tool = engine.registry.get("image_to_image")
        nodes.append(
            ToolNode(
                id=ADJUST_NODE,
                tool="image_to_image",
                version=tool.version,
                inputs={"image": {"ref": output}, "prompt": prompt, "strength": ADJUST_STRENGTH},
            )
        )
        output = f"{ADJUST_NODE}.image"
    return graph.model_copy(update={"nodes": nodes, "output": output}), scene_inputs, sorted(repainted)


# --- running -------------------------------------------------------------------------------------------------------
class _BufferRecorder:
    """Keeps LLM exchanges of an edit call until the turn's run record exists, then writes them to llm.jsonl."""

    def __init__(self):
        self.rows: list[tuple[str, dict, dict]] = []

    def record(self, kind: str, request: dict, response: dict) -> None:
        self.rows.append((kind, request, response))

    def lookup(self, kind: str, request: dict) -> dict | None:
        return None

    def flush(self, record: RunRecord) -> None:
        for kind, request, response in self.rows:
            record.append_jsonl("llm.jsonl", {"kind": kind, "request": request, "response": response})


def _node_summary(record: RunRecord) -> tuple[list[str], list[str]]:
    ran, cached = [], []
    for ev in record.read_jsonl("events.jsonl"):
        if ev.get("event") == "finished":
            ran.append(ev["node"])
        elif ev.get("event") == "cached":
            cached.append(ev["node"])
    return ran, cached


def _result_dict(outcome: RunOutcome, record: RunRecord) -> dict:
    res = record.read_json("result.json") if record.exists("result.json") else {}
    return {
        "ok": outcome.ok,
        "image": outcome.image,
        "image_sha256": res.get("image_sha256"),
        "total_nodes": outcome.total_nodes,
        "cached_nodes": outcome.cached_nodes,
        "seconds": outcome.seconds,
        "failed": outcome.failed,
        "loops": outcome.loops,
    }


class ChatSession:
    """One conversation. ``send`` runs a message now; ``submit`` + ``process`` split it for a background worker."""

    def __init__(self, sessions: "Sessions", session_id: str):
        self.sessions = sessions
        self.engine = sessions.engine
        self.db = sessions.db
        self.id = session_id

    # --- reading -----------------------------------------------------------------------------------------------
    @property
    def info(self) -> dict:
        return self.db.session(self.id) or {}

    def turns(self) -> list[Turn]:
        return self.db.turns(self.id)

    def turn(self, index: int) -> Turn:
        t = self.db.turn(self.id, index)
        if t is None:
            raise UserError(f"session {self.id} has no turn {index}; it has {len(self.turns())}")
        return t

    def head(self, before: int | None = None) -> Turn | None:
        """The turn whose state the next message edits: the last one with a picture state."""
        for t in reversed(self.turns()):
            if before is not None and t.index >= before:
                continue
            if t.status in STATEFUL and t.state is not None:
                return t
        return None

    # --- writing -----------------------------------------------------------------------------------------------
    def send(self, message: str, on_event: Callable[[dict], None] | None = None) -> Turn:
        """Apply one message and paint the result. Raises UserError if the message cannot be applied."""
        turn = self.submit(message)
        turn = self.process(turn.index, on_event)
        if turn.status == "rejected":
            raise UserError(turn.error or "the message could not be applied")
        return turn

    def undo(self, on_event=None) -> Turn:
        return self.send("undo", on_event)

    def submit(self, message: str) -> Turn:
        """Record the message as a queued turn (fast; the work happens in :meth:`process`)."""
        message = (message or "").strip()
        if not message:
            raise UserError("the message is empty; say what to change, e.g. 'make the cat bigger'")
        if len(message) > MAX_MESSAGE_CHARS:
            raise UserError(f"the message is longer than {MAX_MESSAGE_CHARS} characters; describe one change at a time")
        check_text(message, "the message")
        return self.db.add_turn(Turn(session_id=self.id, index=-1, kind="edit", message=message, status="queued"))

    def process(self, index: int, on_event=None) -> Turn:
        """Plan, apply, compile and run a queued turn. Never raises for user mistakes: they end as status fields."""
        turn = self.turn(index)
        if turn.status not in PENDING:
            return turn
        if turn.status == "running" and turn.run_id:
            return self._resume(turn, on_event)
        try:
            if turn.kind in ("prompt", "blueprint"):
                return self._first(turn, on_event)
            return self._edit(turn, on_event)
        except (UserError, EditError, BlueprintError, PlanningError) as err:
            turn.status, turn.error = ("rejected" if turn.state is None else "failed"), str(err)
            self.db.save_turn(turn)
            return turn
        except BaseException as err:  # a bug or an interrupt: keep the record honest, then let it surface
            turn.status, turn.error = "failed", f"{type(err).__name__}: {err}"
            self.db.save_turn(turn)
            raise

    def branch(self, index: int, title: str | None = None) -> "ChatSession":
        """A new session that starts from turn ``index`` of this one (its picture, state and undo point)."""
        src = self.turn(index)
        if src.state is None or src.status not in STATEFUL:
            raise UserError(f"turn {index} of session {self.id} has no picture to branch from ({src.status})")
        new = self.sessions._new_session(
            title or f"{self.info.get('title', '')} (branch of turn {index})", parent=(self.id, index)
        )
        self.db.add_turn(
            Turn(
                session_id=new.id,
                index=-1,
                kind="branch",
                message=f"branched from {self.id} turn {index}",
                status="done",
                state=src.state,
                scene=src.scene,
                changes=[f"started from turn {index} of {self.id}"],
                run_id=src.run_id,
                result=src.result,
                seed=src.seed,
                reran=[],
                cached=[],
            )
        )
        return new

    # --- the work ----------------------------------------------------------------------------------------------
    def _first(self, turn: Turn, on_event) -> Turn:
        engine = self.engine
        turn.status = "planning"
        self.db.save_turn(turn)
        if turn.kind == "prompt":
            run = engine.start_run(
                {"kind": "prompt", "prompt": turn.message, "seed": turn.seed, "session": self.id, "turn": turn.index},
                prompt=turn.message, on_event=on_event,
            )
            turn.run_id = run.id
            said: list[str] = []  # what the planner left out: shown with the turn's changes (CLI, API, page)
            try:
                bp = engine.plan(turn.message, run, seed=turn.seed, notices=said)
            except (PlanningError, UserError) as err:
                run.record.set_status("failed", error=str(err))
                engine.forget(run)
                raise
        else:
            said = []
            bp = Blueprint.model_validate(turn.state["blueprint"])
            run = engine.start_run({"kind": "blueprint", "seed": bp.seed, "session": self.id, "turn": turn.index},
                                   prompt=turn.message, on_event=on_event)  # fmt: skip
            turn.run_id = run.id
        state = SceneState(blueprint=bp)
        turn.changes = [f"planned {len(bp.objects)} objects, {len(bp.texts)} texts"] + [f"note: {n}" for n in said]
        return self._run(turn, run, state, None)

    def _edit(self, turn: Turn, on_event) -> Turn:
        engine = self.engine
        head = self.head(before=turn.index)
        if head is None:
            raise UserError(f"session {self.id} has no picture yet to edit; start it with a prompt")
        state = SceneState.model_validate(head.state)
        turn.status = "planning"
        self.db.save_turn(turn)
        recorder = _BufferRecorder()
        plan = self._plan_edit(turn.message, state, recorder)
        anchor = head.scene
        if plan.action == "undo":
            if head.prev is None:
                raise UserError("there is nothing to undo")
            target = self.turn(head.prev)
            new_state = SceneState.model_validate(target.state)
            turn.kind, turn.prev, turn.ops = "undo", target.prev, []
            turn.changes = [f"back to the picture of turn {target.index}"]
            anchor = target.scene
        else:
            new_state, turn.changes = apply_edits(state, plan.ops)
            turn.prev, turn.ops = head.index, [op.model_dump(mode="json") for op in plan.ops]
        run = engine.start_run(
            {
                "kind": "chat",
                "session": self.id,
                "turn": turn.index,
                "message": turn.message,
                "action": plan.action,
                "ops": turn.ops,
                "seed": new_state.blueprint.seed,
                "parent_run": head.run_id,
                "look": new_state.look,
            },
            prompt=f"[{self.id}#{turn.index}] {turn.message}", on_event=on_event,
        )
        recorder.flush(run.record)
        turn.run_id = run.id
        return self._run(turn, run, new_state, anchor)

    def _plan_edit(self, message: str, state: SceneState, recorder) -> EditPlan:
        """LLM planners that know how to edit get the message; otherwise (and for the preview profile) rules do."""
        if self.engine.profile.planner.kind != "rule":
            edit = getattr(self.engine.planner, "edit", None)  # the engine's one planner, this turn's recorder
            if edit is not None:
                out = edit(state.blueprint, message, look=list(state.look), recorder=recorder)
                return out if isinstance(out, EditPlan) else parse_edit_plan(out)
        from planners.edit_rules import parse_message

        return parse_message(message, state)

    def _run(self, turn: Turn, run: Run, state: SceneState, anchor: dict | None) -> Turn:
        record = run.record
        try:
            graph, scene, repainted = compile_state(self.engine, state, anchor)
        except BaseException:
            self.engine.forget(run)
            raise
        described = {op.get("name") for op in turn.ops if op.get("op") == "describe_object"}
        if described & set(repainted):
            names = ", ".join(sorted(described & set(repainted)))
            turn.changes = turn.changes + [f"repainting {names} on the previous scene (the layout is unchanged)"]
        if repainted:
            record.write_json(
                "request.json", {**record.read_json("request.json"), "scene_anchored": True, "repainted": repainted}
            )
        turn.state, turn.scene, turn.seed = state.model_dump(mode="json"), scene, state.blueprint.seed
        turn.status = "running"
        self.db.save_turn(turn)
        try:
            outcome = self.engine.execute(graph, run, blueprint=state.blueprint)
        except RunCancelled:
            return self._cancelled(turn, record)
        return self._finish(turn, record, outcome)

    def _resume(self, turn: Turn, on_event) -> Turn:
        try:
            outcome = self.engine.resume(turn.run_id, on_event=on_event)
        except RunCancelled:
            return self._cancelled(turn, self.engine.store.open_run(turn.run_id))
        return self._finish(turn, self.engine.store.open_run(turn.run_id), outcome)

    def _cancelled(self, turn: Turn, record: RunRecord) -> Turn:
        """A cancelled turn keeps its state (the next message builds on it) and says so; its run can be resumed."""
        turn.reran, turn.cached = _node_summary(record)
        turn.status, turn.error = "failed", f"cancelled; `scenewright resume {record.id}` finishes its picture"
        self.db.save_turn(turn)
        return turn

    def _finish(self, turn: Turn, record: RunRecord, outcome: RunOutcome) -> Turn:
        turn.reran, turn.cached = _node_summary(record)
        turn.result = _result_dict(outcome, record)
        turn.status = "done" if outcome.ok else "failed"
        turn.error = None if outcome.ok else "; ".join(f"{k}: {v}" for k, v in outcome.failed.items()) or "run failed"
        self.db.save_turn(turn)
        return turn


class Sessions:
    """All sessions of one store, run by one engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.db = SessionDB(engine.store.home)

    def _new_session(self, title: str, parent: tuple[str, int] | None = None) -> ChatSession:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        sid = f"s-{stamp}-{secrets.token_hex(3)}"
        self.db.create_session(sid, title or "untitled", self.engine.profile.name, parent)
        return ChatSession(self, sid)

    def create(
        self,
        prompt: str | None = None,
        *,
        blueprint: Blueprint | None = None,
        seed: int = 0,
        title: str | None = None,
        run: bool = True,
        on_event=None,
    ) -> ChatSession:
        """Start a session from a prompt (planned) or a blueprint. ``run=False`` only queues the first turn."""
        if (prompt is None) == (blueprint is None):
            raise UserError("start a session with a prompt or a blueprint (one of them)")
        if prompt is not None:
            prompt = prompt.strip()
            if not prompt:
                raise UserError("the prompt is empty; describe the image you want")
            if len(prompt) > 8000:
                raise UserError("the prompt is longer than 8000 characters")
            check_text(prompt)
        if not 0 <= seed <= 2**32 - 1:
            raise UserError(f"seed {seed} is out of range 0..{2**32 - 1}")
        text = prompt if prompt is not None else (blueprint.prompt or "blueprint")
        session = self._new_session(title or text[:80])
        first = Turn(
            session_id=session.id,
            index=-1,
            kind="prompt" if prompt is not None else "blueprint",
            message=text,
            status="queued",
            seed=seed if prompt is not None else blueprint.seed,
        )
        if blueprint is not None:
            first.state = SceneState(blueprint=blueprint).model_dump(mode="json")
        first = self.db.add_turn(first)
        if run:
            done = session.process(first.index, on_event)
            if done.status == "rejected" or (done.status == "failed" and done.run_id is None):
                raise UserError(done.error or "the first turn failed")
        return session

    def open(self, session_id: str) -> ChatSession:
        check_session_id(session_id)
        if self.db.session(session_id) is None:
            raise UserError(f"no session '{session_id}'; `scenewright chat --list` shows them")
        return ChatSession(self, session_id)

    def list(self, limit: int = 100) -> list[dict]:
        return self.db.sessions(limit)

    def recover(self, on_event=None, session_id: str | None = None) -> list[Turn]:
        """Finish turns a crash or restart left pending (of one session, or all): queued ones run, running ones
        resume from their record. Call it where nothing else is working on those turns (a server at start)."""
        done = []
        for t in self.db.pending_turns():
            if session_id is not None and t.session_id != session_id:
                continue
            session = ChatSession(self, t.session_id)
            if t.status == "planning":  # planning is not resumable; start the turn over
                t.status = "queued"
                t.run_id = None
                self.db.save_turn(t)
            done.append(session.process(t.index, on_event))
        return done


def wait_for(session: ChatSession, index: int, timeout: float = 60.0) -> Turn:
    """Poll until a turn is no longer pending (for callers that submitted to a background worker)."""
    deadline = time.monotonic() + timeout
    while True:
        t = session.turn(index)
        if t.status not in PENDING or time.monotonic() > deadline:
            return t
        time.sleep(0.05)


def describe_turn(turn: Turn) -> dict[str, Any]:
    """A compact, JSON-able summary for the CLI and logs."""
    return {
        "turn": turn.index,
        "kind": turn.kind,
        "status": turn.status,
        "message": turn.message,
        "changes": turn.changes,
        "reran": turn.reran,
        "cached": len(turn.cached),
        "image": turn.image,
        "run_id": turn.run_id,
        "error": turn.error,
    }
