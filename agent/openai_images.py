"""``POST /v1/images/generations`` on ``scenewright serve``: OpenAI's Images API, so the official ``openai`` client
(and the tools built on it) paint through scenewright with nothing changed but ``base_url``.

Each image is an ordinary scenewright run with its record: ``n`` images are ``n`` runs with seeds ``seed``,
``seed + 1``, …, started at once on the server's workers, so their model calls meet in the engine's shared batches.
The request is OpenAI's (``prompt``, ``n``, ``size``, ``response_format``, ``model``, ``user``) plus scenewright's
``seed`` and ``blueprint`` (the ``openai`` client sends them with ``extra_body=``); the answer is OpenAI's
(``created``, ``data[].b64_json`` or ``data[].url``) plus each image's ``run_id``, ``seed``, planned ``blueprint`` and
``notices``, and the server's ``profile``. The ``model`` is the server's profile: another name is refused, not
quietly replaced. Fields OpenAI has and scenewright cannot honour (``quality``, ``style``, ``background``…) are
refused by name, never ignored. Errors have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so
the client raises its usual exceptions with our message.

The route sits behind the same guard as the rest of the API (``agent/http_guard.py``): the client's
``Authorization: Bearer <api_key>`` is the server's token, and the Host check applies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from annotated_types import Ge, Le, MultipleOf
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from agent.api import RunCancelled, RunOutcome, UserError, check_text
from agent.blueprint import Blueprint, BlueprintError, Canvas, parse_blueprint
from agent.store import StoreError

if TYPE_CHECKING:
    from agent.server import Server

MAX_N = 10  # images per request, as OpenAI's dall-e-2 allows
MAX_SEED = 2**32 - 1
_SIZE = re.compile(r"^([0-9]{1,5})x([0-9]{1,5})$")


class ImagesIn(BaseModel):
    """OpenAI's image-generation request, the fields scenewright honours, and its own ``seed`` and ``blueprint``."""

    model_config = ConfigDict(extra="forbid")

    prompt: Annotated[str, Field(max_length=8000)]
    n: int = Field(1, ge=1, le=MAX_N)
    size: Annotated[str, Field(max_length=20)] | None = None  # "WxH"; None or "auto": the profile's canvas
    response_format: Literal["url", "b64_json"] = "url"
    model: Annotated[str, Field(max_length=200)] | None = None  # the server's profile name, or left out
    user: Annotated[str, Field(max_length=256)] | None = None  # OpenAI's end-user id: accepted, not used
    seed: int | None = Field(None, ge=0, le=MAX_SEED)  # the first image's; default 0 (a blueprint: its own seed)
    blueprint: dict[str, Any] | None = None  # paint this blueprint instead of planning a prompt (then prompt "")


class ImageOut(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    run_id: str
    seed: int
    blueprint: dict[str, Any] | None = None
    notices: list[str] = []


class ImagesOut(BaseModel):
    created: int
    data: list[ImageOut]
    size: str
    output_format: Literal["png"] = "png"
    profile: str
    run_ids: list[str]


class OpenAIError(Exception):
    """An error answered in OpenAI's shape; ``param`` names the request field at fault."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def response(self) -> JSONResponse:
        """``x-should-retry`` tells the ``openai`` client (which retries 409 and 5xx by default) to retry only when
        the server was busy: a failed or cancelled run would only run again."""
        error = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        retry = "true" if self.status == 503 and self.code is None else "false"
        return JSONResponse({"error": error}, status_code=self.status, headers={"x-should-retry": retry})


class _OpenAIRoute(APIRoute):
    """A route whose every error (validation, ``HTTPException``, bad input, a damaged store) is OpenAI-shaped; the
    rest of the API keeps FastAPI's ``{"detail": ...}``."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request):
            try:
                return await handler(request)
            except OpenAIError as err:
                return err.response()
            except RequestValidationError as err:
                return _validation_error(err).response()
            except HTTPException as err:
                return OpenAIError(err.status_code, str(err.detail)).response()
            except UserError as err:
                return OpenAIError(400, str(err)).response()
            except StoreError as err:
                return OpenAIError(503, str(err)).response()

        return route


def _validation_error(err: RequestValidationError) -> OpenAIError:
    e = err.errors()[0]
    loc = [str(x) for x in e.get("loc", ()) if x != "body"]
    field = loc[0] if loc else None
    if e.get("type") == "extra_forbidden":
        taken = ", ".join(ImagesIn.model_fields)
        return OpenAIError(400, f"'{field}' is not a field this server takes; it takes {taken}", param=field,
                           code="unknown_parameter")  # fmt: skip
    if field is None:
        return OpenAIError(400, f"the request body must be a JSON object with a prompt ({e.get('msg')})")
    return OpenAIError(400, f"{'.'.join(loc)}: {e.get('msg')}", param=field)


def _limits() -> tuple[int, int, int]:
    """(smallest side, largest side, multiple): the canvas limits, read from the blueprint's Canvas model."""
    meta = Canvas.model_fields["width"].metadata
    lo = next(m.ge for m in meta if isinstance(m, Ge))
    hi = next(m.le for m in meta if isinstance(m, Le))
    step = next(m.multiple_of for m in meta if isinstance(m, MultipleOf))
    return lo, hi, step


def parse_size(size: str | None) -> Canvas | None:
    """``"WxH"`` → the canvas; None or ``"auto"`` → None (the profile's). A bad size is a 400 naming the limits."""
    if size is None or size == "auto":
        return None
    lo, hi, step = _limits()
    m = _SIZE.match(size)
    ok = m is not None and all(lo <= int(v) <= hi and int(v) % step == 0 for v in m.groups())
    if not ok:
        raise OpenAIError(400, f"size '{size[:20]}' is not WIDTHxHEIGHT with each side a multiple of {step} from {lo}"
                               f" to {hi} (e.g. '512x512', '768x512'); leave it out for the profile's size",
                          param="size", code="invalid_size")  # fmt: skip
    return Canvas(width=int(m.group(1)), height=int(m.group(2)))


def images_router(server: "Server") -> APIRouter:
    """The ``/v1/images/generations`` route for the server's engine and workers (``create_app`` mounts it)."""
    engine = server.engine
    router = APIRouter(route_class=_OpenAIRoute)

    @router.post("/v1/images/generations", response_model=ImagesOut, response_model_exclude_none=True,
                 tags=["OpenAI-compatible"])  # fmt: skip
    async def generate_images(body: ImagesIn, request: Request):
        """OpenAI's image generation: ``n`` images, each a scenewright run (seeds ``seed``, ``seed + 1``, …) painted
        at the same time; answers when all are done, with each image as ``url`` (``GET /api/runs/{id}/image``, send
        the same token) or ``b64_json`` (the PNG, with its recipe in text chunks)."""
        profile = engine.profile
        if body.model is not None and body.model != profile.name:
            raise OpenAIError(400, f"this server paints with profile '{profile.name}'; send model='{profile.name}' or"
                                   " leave model out (start `scenewright serve --profile NAME` for another)",
                              param="model", code="model_not_found")  # fmt: skip
        canvas = parse_size(body.size)
        bp = _blueprint(body, canvas)
        first = body.seed if body.seed is not None else (bp.seed if bp is not None else 0)
        if first + body.n - 1 > MAX_SEED:
            raise OpenAIError(400, f"seeds {first}…{first + body.n - 1} go past {MAX_SEED}; send a smaller seed",
                              param="seed")  # fmt: skip
        seeds = [first + i for i in range(body.n)]
        server.check_waiters()
        started = await run_in_threadpool(_start, server, body.prompt, bp, canvas, seeds)
        outcomes = await asyncio.gather(*(server.wait(fut) for _, fut in started), return_exceptions=True)
        _raise_for(outcomes, [run_id for run_id, _ in started])
        base = str(request.base_url).rstrip("/")
        data = await run_in_threadpool(_images, outcomes, seeds, body.response_format, base)
        final = canvas or (bp.canvas if bp is not None else Canvas(width=profile.width, height=profile.height))
        return {"created": int(time.time()), "data": data, "size": f"{final.width}x{final.height}",
                "profile": profile.name, "run_ids": [o.run_id for o in outcomes]}  # fmt: skip

    return router


def _blueprint(body: ImagesIn, canvas: Canvas | None) -> Blueprint | None:
    """The blueprint to paint (``size`` replaces its canvas: boxes are normalised), or None to plan the prompt."""
    if body.blueprint is None:
        if not body.prompt.strip():
            raise OpenAIError(400, "the prompt is empty; describe the image you want", param="prompt")
        try:
            check_text(body.prompt)
        except UserError as err:
            raise OpenAIError(400, str(err), param="prompt") from None
        return None
    if body.prompt.strip():
        raise OpenAIError(400, "give a prompt or a blueprint, not both; with a blueprint send prompt=''",
                          param="prompt")  # fmt: skip
    raw = {**body.blueprint, **({"canvas": canvas.model_dump()} if canvas is not None else {})}
    try:
        return parse_blueprint(raw)
    except BlueprintError as err:
        raise OpenAIError(400, f"invalid blueprint: {err.errors[0]}", param="blueprint") from None


def _start(server: "Server", prompt: str, bp: Blueprint | None, canvas: Canvas | None, seeds: list[int]):
    """One run record per image now (ids known even if the client goes away), the work on the server's workers."""
    engine = server.engine
    try:
        engine.require_models()  # before any record: a missing package is the operator's to fix, not a dead run
    except UserError as err:
        raise OpenAIError(503, str(err), code="models_unavailable") from None
    started = []
    for seed in seeds:
        if bp is None:
            run = engine.start_run({"kind": "prompt", "prompt": prompt, "seed": seed, "api": "openai-images"})
            fut = server.worker.submit(engine.generate, prompt, seed=seed, run=run, canvas=canvas)
        else:
            one = bp.model_copy(update={"seed": seed})  # the record's blueprint carries the seed it was painted with
            run = engine.start_run({"kind": "blueprint", "seed": seed, "api": "openai-images"}, prompt=bp.prompt)
            fut = server.worker.submit(engine.run_blueprint, one, run=run)
        started.append((run.id, fut))
    return started


def _raise_for(outcomes: list, run_ids: list[str]) -> None:
    """All images or an error naming each run that did not finish and where its record is."""
    problems, statuses = [], set()
    for run_id, out in zip(run_ids, outcomes):
        if isinstance(out, RunCancelled):
            problems.append(f"run {run_id} was cancelled (POST /api/runs/{run_id}/resume finishes it)")
            statuses.add(409)
        elif isinstance(out, UserError):
            problems.append(f"run {run_id}: {out}")
            statuses.add(400)
        elif isinstance(out, BaseException):  # planning errors: the model's output was bad input
            problems.append(f"run {run_id}: {type(out).__name__}: {out}")
            statuses.add(422)
        elif not out.ok or out.image is None:
            failed = "; ".join(f"{node}: {msg}" for node, msg in out.failed.items()) or "no image"
            problems.append(f"run {run_id} failed ({failed}); its record: GET /api/runs/{run_id}")
            statuses.add(500)
    if problems:
        status = next(s for s in (400, 422, 409, 500) if s in statuses)
        raise OpenAIError(status, f"{len(problems)} of {len(run_ids)} images did not finish: " + " | ".join(problems),
                          code="run_failed")  # fmt: skip


def _images(outcomes: list[RunOutcome], seeds: list[int], response_format: str, base: str) -> list[dict]:
    data = []
    for out, seed in zip(outcomes, seeds):
        bp_path = Path(out.run_dir) / "blueprint.json"
        item: dict[str, Any] = {
            "run_id": out.run_id,
            "seed": seed,
            "blueprint": json.loads(bp_path.read_text(encoding="utf-8")) if bp_path.exists() else None,
            "notices": out.notices,
        }
        if response_format == "b64_json":
            item["b64_json"] = base64.b64encode(Path(out.image).read_bytes()).decode("ascii")
        else:
            item["url"] = f"{base}/api/runs/{out.run_id}/image"
        data.append(item)
    return data
