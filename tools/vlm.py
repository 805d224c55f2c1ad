"""The VLM critic: ``describe_image``, ``compare_images`` and ``critique`` as tools over the planners' LLM client.

One narrow interface, :class:`VLM`, ``ask(kind, system, text, images, Model) -> Model``, on top of any
``planners.llm_client`` transport (the same classes, retries and error types the planners use):

- the question goes out as an OpenAI-style chat message with the images as ``image_url`` data-URI parts
  (``llm_client.image_part``), constrained to the JSON schema of a **bounded** pydantic model (every string
  bounded by a pattern, every list by ``maxItems``, numbers by ranges: the planners' ``SchemaLimits`` rules, so
  grammar-constrained decoding always ends);
- the answer is parsed (``json.loads``, else the first ``{...}`` in the text, ImageRepainter's parser) and
  validated with pydantic; if that fails, the errors go back as a repair turn (the bad answer as the assistant
  turn, then the errors), at most ``repairs`` times; then :class:`VLMError` with one line that says what failed;
- every exchange is recorded through the run's recorder (``llm.jsonl``, kinds ``vlm.describe``, ``vlm.compare``,
  ``vlm.rewrite``, ``vlm.critique``; images are recorded by SHA-256, not inline) and replayed from it when the recorder has it.

Transports: ``vllm-server`` (:class:`~planners.llm_client.OpenAIServerClient`, a VLM served by
``vllm serve``), ``vllm-local`` (:class:`~planners.llm_client.VLLMLocalClient`) and ``transformers``
(:class:`TransformersVLMClient`: ``AutoModelForImageTextToText`` + ``AutoProcessor`` in process, constrained by
the same xgrammar logits processor as the planners' ``TransformersClient``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from planners.llm_client import (
    Completion,
    JSONRequest,
    LLMError,
    LLMRequestError,
    LLMServerError,
    LLMTimeoutError,
    LLMUnreachableError,
    TransformersClient,
    TruncatedError,
    _one_line,
    image_part,
)
from planners.llm_planner import SchemaLimits
from tools.base import NO_CONTEXT, Tool, TransientError
from tools.roles import (
    CompareImagesIn,
    CompareImagesOut,
    CritiqueIn,
    CritiqueOut,
    DescribedObject,
    DescribeImageIn,
    DescribeImageOut,
    ImageDescription,
    Revision,
    RewritePromptIn,
    RewritePromptOut,
    Suggestion,
)

KIND_DESCRIBE, KIND_COMPARE, KIND_CRITIQUE = "vlm.describe", "vlm.compare", "vlm.critique"
KIND_REWRITE = "vlm.rewrite"


class VLMError(LLMError):
    """The VLM could not give a usable answer (after repairs) or could not be reached."""


# --- the bounded answer schemas ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class VLMLimits:
    text_chars: int = 80
    summary_chars: int = 240
    max_objects: int = 5
    max_relations: int = 4
    max_revisions: int = 4
    max_edits: int = 3
    prompt_chars: int = 300
    char_class: str = r"[^\x00-\x1f]"

    def text(self, chars: int, *, required: bool = True):
        lim = SchemaLimits(char_class=self.char_class, first_char_class=r"[^\x00-\x20]")
        return lim.text(max(1, min(chars, 400)), required=required)


class _Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")


_Box = Annotated[list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=4, max_length=4)]
ASPECTS = ("exposure", "lighting", "colour", "camera_angle", "atmosphere", "composition", "detail")


def answer_models(lim: VLMLimits) -> dict[str, type[BaseModel]]:
    t = lambda n, req=True: (lim.text(n, required=req), ...)  # noqa: E731
    Attrs = create_model("Attributes", __base__=_Forbid, color=t(lim.text_chars, False),
                         material=t(lim.text_chars, False), texture=t(lim.text_chars, False),
                         detail=t(lim.text_chars, False))  # fmt: skip
    Obj = create_model("Object", __base__=_Forbid, name=t(min(lim.text_chars, 56)),
                       type=(Literal["person", "animal", "object"], ...), attributes=(Attrs, ...), box=(_Box, ...))
    Desc = create_model(
        "Description", __base__=_Forbid, summary=t(lim.summary_chars), style=t(lim.text_chars, False),
        lighting=t(lim.text_chars, False), palette=t(lim.text_chars, False), composition=t(lim.text_chars, False),
        objects=(Annotated[list[Obj], Field(max_length=lim.max_objects)], ...),
        relations=(Annotated[list[lim.text(lim.text_chars)], Field(max_length=lim.max_relations)], ...),
    )  # fmt: skip
    Rev = create_model("Revision", __base__=_Forbid, aspect=(Literal["style", "composition", "content"], ...),
                       change=t(lim.text_chars))
    Compare = create_model("Comparison", __base__=_Forbid,
                           revisions=(Annotated[list[Rev], Field(max_length=lim.max_revisions)], ...),
                           description=(Desc, ...))
    GEdit = create_model("GlobalEdit", __base__=_Forbid, aspect=(Literal[ASPECTS], ...), edit=t(lim.text_chars),
                         reason=t(lim.text_chars, False))
    BEdit = create_model("BoxEdit", __base__=_Forbid, box=(_Box, ...), edit=t(lim.text_chars),
                         reason=t(lim.text_chars, False))
    Crit = create_model(
        "Critique", __base__=_Forbid, score=(Annotated[float, Field(ge=0.0, le=1.0)], ...),
        global_edits=(Annotated[list[GEdit], Field(max_length=lim.max_edits)], ...),
        box_edits=(Annotated[list[BEdit], Field(max_length=lim.max_edits)], ...),
    )  # fmt: skip
    return {KIND_DESCRIBE: Desc, KIND_COMPARE: Compare, KIND_CRITIQUE: Crit}


def rewrite_model(lim: VLMLimits, n: int) -> type[BaseModel]:
    """``{"prompts": [...]}`` with exactly ``n`` bounded prompts (ImageRepainter's variants answer)."""
    return create_model("Rewrite", __base__=_Forbid, prompts=(
        Annotated[list[lim.text(lim.prompt_chars)], Field(min_length=n, max_length=n)], ...))


def schema_of(model: type[BaseModel]) -> dict:
    from planners.llm_planner import _strip_titles

    return _strip_titles(model.model_json_schema())


# --- prompts -----------------------------------------------------------------------------------------------------
SYSTEM = (
    "You are a precise visual analyst for an image-generation system. Answer with one JSON object that matches"
    " the given schema, and nothing else. Boxes are normalised [x0, y0, x1, y1] in [0, 1], origin top-left."
)
DESCRIBE = (
    "Describe this reference image so that a text-to-image model can regenerate it. summary: one sentence that"
    " starts with the subject, names key elements, colours, lighting and style, and ends with the mood. style,"
    " lighting, palette, composition: short phrases. objects: at most {max_objects} main objects, largest first,"
    " each with name, type (person|animal|object), attributes (color, material, texture, detail) and its box."
    " relations: short 'subject relation object' phrases."
)
COMPARE = (
    "The first image is the reference, the second is our regeneration from this description:\n{description}\n"
    "List concrete revisions (aspect: style|composition|content) that would make the regeneration closer to the"
    " reference (style: artistic style, lighting, colour palette; composition: placement, framing; content:"
    " objects, details, atmosphere), and return the whole description revised accordingly."
)
REWRITE = (
    "Write {n} different Stable Diffusion prompts that would each regenerate the image this description"
    " describes: keep all its key information (subject, objects, relations, style, lighting, colours,"
    " composition), comma-separated, most important first, concise and vivid. The prompts must differ in"
    " wording and order, not in content.\nDescription: {template}"
)
CRITIQUE = (
    "Critique this generated image for the prompt: {prompt!r}. Objects and boxes: {boxes}. score: your aesthetic"
    " rating in [0, 1]. global_edits: changes to the whole image (aspect: exposure|lighting|colour|camera_angle|"
    "atmosphere|composition|detail), each a short prompt phrase such as 'warmer golden-hour light'. box_edits:"
    " local fixes, each a box and a short prompt for what that region should show. Leave lists empty when the"
    " image needs no change; never contradict the prompt."
)
REJECTED = (
    " These edits were already tried on this image and rejected (the aesthetic score did not rise, or the image"
    " drifted from the prompt): {rejected}. Propose different edits, or none."
)
TEMPLATES_HASH = hashlib.sha256("\n".join((SYSTEM, DESCRIBE, COMPARE, REWRITE, CRITIQUE, REJECTED)).encode()).hexdigest()[:16]


# --- the narrow interface ----------------------------------------------------------------------------------------
def parse_json_object(text: str) -> Any:
    """``json.loads``, else the first ``{...}`` span in the text (models that wrap JSON in prose or fences)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        m = re.search(r"\{.*\}", text, re.S)
        if m:
            try:
                return json.loads(m.group(0))
            except json.JSONDecodeError:
                pass
        raise ValueError(f"the answer is not JSON ({err.msg} at char {err.pos})") from None


def _errors(err: ValidationError, limit: int = 6) -> list[str]:
    out = []
    for e in err.errors()[:limit]:
        where = ".".join(str(x) for x in e["loc"]) or "(top level)"
        out.append(f"{where}: {e['msg']}")
    return out


def _recordable(messages: list[dict]) -> list[dict]:
    """Messages with data-URI images replaced by their SHA-256 (llm.jsonl stays small and readable)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            parts = []
            for p in content:
                if p.get("type") == "image_url":
                    url = p["image_url"]["url"]
                    parts.append({"type": "image", "sha256": hashlib.sha256(url.encode()).hexdigest()})
                else:
                    parts.append(p)
            content = parts
        out.append({"role": m["role"], "content": content})
    return out


class VLM:
    """``ask`` one structured question about some images; repaired, recorded, replayed."""

    def __init__(self, client, *, repairs: int = 2, max_tokens: int = 1024, temperature: float = 0.0,
                 limits: VLMLimits = VLMLimits(), image_side: int = 512):
        self.client = client
        self.repairs = repairs
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.limits = limits
        self.image_side = image_side
        self.models = answer_models(limits)
        self.exchanges = 0

    def identity(self) -> dict:
        return {"client": self.client.identity(), "templates": TEMPLATES_HASH, "repairs": self.repairs,
                "max_tokens": self.max_tokens, "temperature": self.temperature, "limits": repr(self.limits)}

    def _image(self, im) -> dict:
        im = im.convert("RGB")
        if max(im.size) > self.image_side:
            im = im.copy()
            im.thumbnail((self.image_side, self.image_side))
        return image_part(im)

    def ask(self, kind: str, text: str, images: list, *, seed: int | None = None, recorder=None,
            model: type[BaseModel] | None = None) -> BaseModel:
        """``recorder``: the run's (``ToolContext.recorder(i)``), so each exchange lands in its own run's record.
        ``model``: the answer model when it is not the kind's fixed one (the rewrite's depends on ``n``)."""
        model = model or self.models[kind]
        schema = schema_of(model)
        messages: list[dict] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": [*(self._image(im) for im in images), {"type": "text", "text": text}]},
        ]
        problems: list[str] = []
        for attempt in range(self.repairs + 1):
            completion = self._exchange(kind, messages, schema, seed, attempt, recorder)
            answer = completion.text
            try:
                if completion.finish_reason == "length":
                    raise ValueError(f"the answer was cut off at max_tokens={self.max_tokens}")
                return model.model_validate(parse_json_object(answer))
            except ValidationError as err:
                problems = _errors(err)
            except ValueError as err:
                problems = [str(err)]
            messages = messages + [
                {"role": "assistant", "content": answer[:4000]},
                {"role": "user", "content": "That answer is not usable:\n" + "\n".join(f"- {p}" for p in problems)
                 + "\nAnswer again with one JSON object that matches the schema, and nothing else."},
            ]  # fmt: skip
        raise VLMError(
            f"the VLM ({self.client.kind} {self.client.model or ''}) gave no valid {kind.split('.')[-1]} answer"
            f" after {self.repairs} repairs: {problems[0] if problems else 'no answer'}"
        )

    def _wire(self, schema, seed, kind: str) -> dict | None:
        """The constraint and sampling parameters as the transport sends them (see ``planners.llm_client``)."""
        wire = getattr(self.client, "wire", None)
        req = JSONRequest([], schema, 1, self.temperature, self.max_tokens, seed, kind.replace(".", "_"))
        return wire(req) if wire else None

    def _exchange(self, kind: str, messages, schema, seed, attempt, recorder) -> Completion:
        request = json.loads(json.dumps({
            "client": self.client.kind, "model": self.client.model, "messages": _recordable(messages),
            "schema": schema, "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": seed,
            "templates": TEMPLATES_HASH, "sent": self._wire(schema, seed, kind),
        }, sort_keys=True, ensure_ascii=False))  # fmt: skip
        recorded = recorder.lookup(kind, request) if recorder is not None else None
        if recorded is not None and recorded.get("completions"):
            return Completion.from_dict(recorded["completions"][0])
        try:
            comps = self.client.complete_json(messages, schema, n=1, temperature=self.temperature,
                                              max_tokens=self.max_tokens, seed=seed, name=kind.replace(".", "_"))
        except TruncatedError as err:
            comps = err.completions
        except (LLMUnreachableError, LLMTimeoutError, LLMServerError) as err:
            raise TransientError(f"the VLM server is unreachable or failing: {err}") from None  # retried
        except LLMError as err:
            raise VLMError(f"the VLM failed: {err}") from None
        self.exchanges += 1
        comp = comps[0] if comps else Completion("", "stop")
        if recorder is not None:
            recorder.record(kind, request, {"completions": [c.to_dict() for c in comps], "attempt": attempt})
        return comp


# --- conversions -------------------------------------------------------------------------------------------------
def fix_box(box: list[float], min_side: float = 0.05) -> list[float]:
    """Ordered, clamped to [0, 1], at least ``min_side`` on each side (boxes from a VLM are often sloppy)."""
    x0, x1 = sorted(min(1.0, max(0.0, float(v))) for v in (box[0], box[2]))
    y0, y1 = sorted(min(1.0, max(0.0, float(v))) for v in (box[1], box[3]))

    def grow(a, b):
        if b - a >= min_side:
            return a, b
        c = min(1 - min_side / 2, max(min_side / 2, (a + b) / 2))
        return c - min_side / 2, c + min_side / 2

    (x0, x1), (y0, y1) = grow(x0, x1), grow(y0, y1)
    return [round(v, 4) for v in (x0, y0, x1, y1)]


def to_description(d: BaseModel) -> ImageDescription:
    data = d.model_dump()
    objects = [
        DescribedObject(name=o["name"], type=o["type"], box=fix_box(o["box"]),
                        attributes={k: v for k, v in o["attributes"].items() if v})
        for o in data["objects"]
    ]  # fmt: skip
    return ImageDescription(**{**data, "objects": objects})


def from_description(desc: ImageDescription) -> dict:
    """An ImageDescription in the answer schema's shape (for the compare prompt)."""
    data = desc.model_dump(mode="json")
    for o in data["objects"]:
        o["attributes"] = {k: o["attributes"].get(k, "") for k in ("color", "material", "texture", "detail")}
    return data


# --- the tools ---------------------------------------------------------------------------------------------------
class _VLMTool(Tool):
    max_batch = 4
    deterministic = False

    def __init__(self, vlm: VLM):
        self.vlm = vlm
        self.version = f"vlm-{vlm.client.kind}-1"
        self.resource = "gpu" if vlm.client.kind in ("transformers", "vllm-local") else "io"

    def identity(self) -> dict:
        return self.vlm.identity()


class VLMDescribeImage(_VLMTool):
    name = "describe_image"
    Input = DescribeImageIn
    Output = DescribeImageOut

    def run(self, batch: list[DescribeImageIn], ctx=NO_CONTEXT) -> list[DescribeImageOut]:
        text = DESCRIBE.format(max_objects=self.vlm.limits.max_objects)
        return [DescribeImageOut(description=to_description(
                    self.vlm.ask(KIND_DESCRIBE, text, [b.image], recorder=ctx.recorder(i))))
                for i, b in enumerate(batch)]  # fmt: skip


class VLMCompareImages(_VLMTool):
    name = "compare_images"
    Input = CompareImagesIn
    Output = CompareImagesOut

    def run(self, batch: list[CompareImagesIn], ctx=NO_CONTEXT) -> list[CompareImagesOut]:
        out = []
        for i, b in enumerate(batch):
            text = COMPARE.format(description=json.dumps(from_description(b.description), ensure_ascii=False))
            ans = self.vlm.ask(KIND_COMPARE, text, [b.reference, b.candidate], recorder=ctx.recorder(i))
            out.append(CompareImagesOut(
                revisions=[Revision(**r) for r in ans.model_dump()["revisions"]],
                description=to_description(ans.description),
            ))  # fmt: skip
        return out


class VLMRewritePrompt(_VLMTool):
    """ImageRepainter's prompt step (``iter.py``): the filled template rewritten into ``n`` prompts, text only."""

    name = "rewrite_prompt"
    Input = RewritePromptIn
    Output = RewritePromptOut

    def run(self, batch: list[RewritePromptIn], ctx=NO_CONTEXT) -> list[RewritePromptOut]:
        out = []
        for i, b in enumerate(batch):
            text = REWRITE.format(n=b.n, template=b.description.template_prompt())
            ans = self.vlm.ask(KIND_REWRITE, text, [], seed=b.seed, recorder=ctx.recorder(i),
                               model=rewrite_model(self.vlm.limits, b.n))
            out.append(RewritePromptOut(prompts=[" ".join(p.split()) for p in ans.model_dump()["prompts"]]))
        return out


class VLMCritique(_VLMTool):
    name = "critique"
    Input = CritiqueIn
    Output = CritiqueOut

    def run(self, batch: list[CritiqueIn], ctx=NO_CONTEXT) -> list[CritiqueOut]:
        out = []
        for i, b in enumerate(batch):
            boxes = json.dumps([{"name": o.name, "box": o.box} for o in b.boxes]) if b.boxes else "none"
            text = CRITIQUE.format(prompt=b.prompt, boxes=boxes)
            if b.rejected:
                text += REJECTED.format(rejected=json.dumps(b.rejected, ensure_ascii=False))
            ans = self.vlm.ask(KIND_CRITIQUE, text, [b.image], seed=b.seed, recorder=ctx.recorder(i)).model_dump()
            suggestions = [Suggestion(scope="global", aspect=e["aspect"], edit=e["edit"], reason=e["reason"])
                           for e in ans["global_edits"]]
            suggestions += [Suggestion(scope="box", aspect="object", edit=e["edit"], reason=e["reason"],
                                       box=fix_box(e["box"])) for e in ans["box_edits"]]
            out.append(CritiqueOut(score=ans["score"], suggestions=suggestions))
        return out


# --- an in-process transformers VLM ------------------------------------------------------------------------------
def _data_uri_image(url: str):
    from PIL import Image

    if not url.startswith("data:image/") or ";base64," not in url:
        raise LLMRequestError("the transformers VLM takes images as data URIs (llm_client.image_part)")
    return Image.open(io.BytesIO(base64.b64decode(url.split(";base64,", 1)[1]))).convert("RGB")


class TransformersVLMClient(TransformersClient):
    """``AutoModelForImageTextToText`` + ``AutoProcessor`` in process; OpenAI-style image parts become the
    processor's images, the rest (xgrammar constraint, sampling, stop handling) is ``TransformersClient``'s."""

    kind = "transformers"

    def __init__(self, model: str, *, device: str | None = None, dtype: str | None = None):
        super().__init__(model, device=device, dtype=dtype)
        self._processor = None

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor

            device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
            try:
                from tools.models import resolved
                from tools.weights import load_kwargs

                res = resolved(self.model, "vlm")
                self._processor = AutoProcessor.from_pretrained(res.source(), local_files_only=True)
                kw = {"dtype": getattr(torch, self._dtype)} if self._dtype else {}
                kw.update(load_kwargs(res))
                self._model = AutoModelForImageTextToText.from_pretrained(res.source(), **kw).to(device).eval()
            except (OSError, ValueError) as err:
                raise LLMRequestError(
                    f"transformers could not load the VLM '{self.model}': {_one_line(err, 200)}"
                ) from None
            self._tok = self._processor.tokenizer
        return self._model, self._tok

    def _encode(self, messages) -> dict:
        self._load()
        images, converted = [], []
        for m in messages:
            content = m["content"]
            if isinstance(content, list):
                parts = []
                for p in content:
                    if p.get("type") == "image_url":
                        images.append(_data_uri_image(p["image_url"]["url"]))
                        parts.append({"type": "image"})
                    else:
                        parts.append(p)
                content = parts
            converted.append({"role": m["role"], "content": content})
        text = self._processor.apply_chat_template(converted, add_generation_prompt=True, tokenize=False)
        enc = self._processor(text=text, images=images or None, return_tensors="pt")
        return dict(enc)


def build_vlm_client(config):
    """The transport a profile's ``vlm`` config names (the planners' client classes)."""
    from planners import llm_client

    if config.kind == "vllm-server":
        return llm_client.OpenAIServerClient(config.url, config.model, api_key=config.api_key,
                                             timeout_s=config.timeout_s)
    if config.kind == "vllm-local":
        return llm_client.VLLMLocalClient(config.model)
    if config.kind == "transformers":
        return TransformersVLMClient(config.model)
    raise ValueError(f"VLM kind '{config.kind}' has no client; use vllm-server, vllm-local or transformers")


def vlm_tools(config, client=None) -> list[Tool]:
    limits = VLMLimits(text_chars=config.text_chars, summary_chars=config.summary_chars,
                       max_objects=config.max_objects, max_edits=config.max_edits)
    vlm = VLM(client or build_vlm_client(config), repairs=config.repairs, max_tokens=config.max_tokens,
              temperature=config.temperature, limits=limits)
    return [VLMDescribeImage(vlm), VLMCompareImages(vlm), VLMRewritePrompt(vlm), VLMCritique(vlm)]
