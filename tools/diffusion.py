"""diffusers backends for the image roles: text_to_image, layout_to_image, regional_repaint, image_to_image.

``diffusers_tools(profile)`` returns the tools for the roles the profile names models for (``models`` keys:
``text_to_image``, ``layout_to_image``, ``inpaint``, ``clip``, optional ``ip_adapter`` and ``image_to_image``);
the caller fills the other roles with preview tools. All tools of a profile share one ``ModelManager`` (the
process-wide one for the profile's device/dtype/offload), so weights load once per process.

Batching: each tool's ``batch_key`` groups inputs that can share one pipeline call (same size, steps, guidance,
strength), and ``run`` makes **one** pipeline call per batch with lists of prompts/images/masks and one CPU
``torch.Generator`` per sample, so a node's image depends on its own seed only: batched or alone gives the
same pixels (up to float round-off of batched kernels).

Per-tool choices, written down:
- ``text_to_image``: ``AutoPipelineForText2Image`` (SD 1.x/2.x, SDXL, ...). Negative prompts always go as a list
  ("" when empty), so SDXL's zero-negative shortcut never makes a batched image differ from a lone one.
- ``layout_to_image``: GLIGEN. diffusers' ``StableDiffusionGLIGENPipeline`` takes one layout per call, so the
  denoising loop here calls the gated UNet directly with per-sample ``cross_attention_kwargs["gligen"]`` (boxes,
  phrase embeddings, masks: the pipeline's own tensors, one row per sample): a batch of layouts is one UNet call
  per step. Same components, scheduler, scheduled sampling (``beta=0.3``: grounding for the first 30 % of the
  steps, but at least one: below 4 steps the pipeline would ground none) and the same numbers as the pipeline
  (tested against it); phrases longer than 77 tokens are truncated (the pipeline would fail). At most 30 objects (GLIGEN's limit; the rest
  are dropped, largest boxes kept). The scene prompt is ``prompt``, plus ``background`` and ``style`` when the
  prompt does not already contain them. Without a layout model (SDXL has no GLIGEN), ``RegionalLayoutToImage``
  steers the text-to-image model with the boxes by regional prompting (MultiDiffusion; ``tools/regional.py``).
- ``regional_repaint``: ``AutoPipelineForInpainting``, rectangular mask from the box (white = repaint). The mask
  is padded by 20 px (at 512 px; scaled with the image) when the box covers < 10 % of the image, as the LLM
  Blueprint code does, to give the model context; the result is then **composited so only pixels inside the
  box change** (the role's contract; the box region of the generated image is pasted onto a copy of the input,
  so everything outside is byte-identical). ``reference`` is used through an IP-Adapter when the profile names
  one (``ip_adapter = "<repo or folder>::<subfolder>/<weights>.safetensors"``, default
  ``models/ip-adapter_sd15.safetensors``); inputs with and without a reference never share a call (the adapter
  scale is per call: 0 without a reference, which reproduces the un-adapted model). Without an IP-Adapter a graph
  that passes a reference fails validation (``ignored_inputs``): it would be dropped silently.
- ``image_to_image``: ``AutoPipelineForImage2Image.from_pipe`` of the text-to-image pipeline: same weights.
- A profile's ``lora`` (ArtAug's distilled LoRA, ``tools/lora.py``) is fused into **every** pipeline here: text-to-image,
  image-to-image, GLIGEN and inpainting (and the scene-text pass); its hash is in each tool's identity.
- Safety checkers are not loaded (``safety_checker=None``).
- img2img and inpaint denoise int(steps · strength) steps; when that would be 0 the step count is raised so
  that one step runs (diffusers would refuse the call).
- Images whose sides are not multiples of 8 are generated at the nearest smaller multiple and resized back.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from tools.base import NO_CONTEXT, Cancelled, Tool, ToolContext
from tools.lora import LoRA
from tools.model_utils import box_pixels, field, generators, hashable, image_size
from tools.models import ModelManager, model_identity, resolved, scheduler_name, shared_manager
from tools.weights import load_kwargs
from tools.roles import (
    ImageOut,
    ImageToImageIn,
    LayoutToImageIn,
    RegionalRepaintIn,
    TextToImageIn,
)

GLIGEN_MAX_OBJECTS = 30
GLIGEN_BETA = 0.3
DEFAULT_IP_WEIGHTS = "models/ip-adapter_sd15.safetensors"


def ip_adapter_spec(spec: str) -> str:
    """"repo-or-folder[@rev][::sub/folder/weights.safetensors]", the weights defaulting to the SD1.5 adapter."""
    return spec if "::" in spec else f"{spec}::{DEFAULT_IP_WEIGHTS}"


def _from_pretrained(cls, mgr: ModelManager, model_id: str, role: str):
    """``cls.from_pretrained`` on the model's resolved local files (``tools/weights.py``): the snapshot folder,
    ``use_safetensors=True``, the fp16 variant where that is all the repo has, never the network."""
    res = resolved(model_id, role)
    return _quiet(cls.from_pretrained(
        res.source(), dtype=mgr.torch_dtype, safety_checker=None, requires_safety_checker=False, **load_kwargs(res)
    ))


def _quiet(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _multiple_of_8(w: int, h: int) -> tuple[int, int]:
    return max(8, w - w % 8), max(8, h - h % 8)


def _steps(steps: int, strength: float) -> int:
    """img2img/inpaint run int(steps · strength) steps; diffusers refuses 0, so ask for enough to run one."""
    return max(steps, math.ceil(1.0 / strength - 1e-9))


def _rgb(images):
    return [im.convert("RGB") for im in images]


def _steps_callback(ctx: ToolContext, stopped: list):
    """A diffusers ``callback_on_step_end``: per-step progress into the tool context, and a cancelled run stops the
    denoising loop at the next step (``pipe._interrupt``; the caller then raises :class:`Cancelled`, so a partly
    denoised image is never returned or cached)."""

    def callback(pipe, step: int, timestep, kwargs: dict) -> dict:
        ctx.progress(step + 1, getattr(pipe, "_num_timesteps", None) or step + 1)
        if ctx.cancelled():
            pipe._interrupt = True
            stopped.append(step + 1)
        return kwargs

    return callback


def _call_pipe(pipe, ctx: ToolContext, name: str, **kwargs):
    stopped: list[int] = []
    out = pipe(**kwargs, callback_on_step_end=_steps_callback(ctx, stopped))
    if stopped:
        raise Cancelled(f"{name} stopped after step {stopped[0]}")
    return out


class _DiffusersTool(Tool):
    resource = "gpu"
    max_batch = 8
    # same seed, same pixels on one machine, but GPU kernels (and batch sizes) move floats by round-off: replay
    # compares these images within PSNR/SSIM tolerances, never byte for byte
    deterministic = False
    kind: str = ""  # model manager kind
    role: str = ""  # profile models key, for error messages

    def __init__(self, manager: ModelManager, model_id: str, *, scheduler: str | None = None, lora: LoRA | None = None):
        self.manager = manager
        self.model_id = model_id
        # optional diffusers scheduler class name (e.g. "DPMSolverMultistepScheduler", the LLM Blueprint's);
        # None keeps the model's own. ``diffusers_tools`` passes the profile's ``scheduler``.
        self.scheduler = scheduler
        self.lora = lora  # the profile's LoRA, fused into this tool's pipeline (tools/lora.py)

    def identity(self) -> dict:
        return {
            "model": model_identity(self.model_id),
            "scheduler": self.scheduler or scheduler_name(self.model_id),
            "dtype": self.manager.dtype,
            "device": self.manager.device.split(":")[0],
            **(self.lora.identity() if self.lora else {}),
        }

    def _kind(self, kind: str) -> str:
        """The model-manager kind: a LoRA-fused pipeline is its own entry, the plain one stays plain."""
        return kind + (self.lora.tag if self.lora else "")

    def _fused(self, load):
        """``load`` with the profile's LoRA fused after loading (for loaders that read weights from disk)."""
        return self.lora.loader(load) if self.lora else load

    def free_memory(self) -> None:
        """On out-of-memory (the executor calls this): drop every other model, keep this tool's."""
        self.manager.free_memory(keep_kinds=(self._kind(self.kind), self._kind(self.kind + "+ip")))

    def _get(self, kind: str, loader):
        """The pipeline for ``kind`` from the manager, ready to run. With ``scheduler`` set, a ``from_pipe`` view
        with that scheduler (same weights; the shared pipeline's own scheduler is left alone)."""
        kind = self._kind(kind)
        pipe = self.manager.get(kind, self.model_id, loader, role=self.role)
        if self.scheduler and type(pipe.scheduler).__name__ != self.scheduler:
            base = pipe

            def view(_model_id: str):
                import diffusers

                sched = getattr(diffusers, self.scheduler).from_config(base.scheduler.config)
                return _quiet(type(base).from_pipe(base, scheduler=sched))

            pipe = self.manager.get(f"{kind}@{self.scheduler}", self.model_id, view, role=self.role)
        return self.manager.prepare(pipe)

    def pipeline(self):
        raise NotImplementedError


# --- text_to_image --------------------------------------------------------------------------------------------
def _load_text2img(mgr: ModelManager):
    def load(model_id: str):
        from diffusers import AutoPipelineForText2Image

        return _from_pretrained(AutoPipelineForText2Image, mgr, model_id, "text_to_image")

    return load


class TextToImage(_DiffusersTool):
    name = "text_to_image"
    version = "diffusers-sd-1"
    Input = TextToImageIn
    Output = ImageOut
    kind = role = "text_to_image"

    def batch_key(self, inp) -> Hashable:
        return tuple(hashable(field(self, inp, k)) for k in ("width", "height", "steps", "guidance"))

    def pipeline(self):
        return self._get(self.kind, self._fused(_load_text2img(self.manager)))

    def run(self, batch: list[TextToImageIn], ctx=NO_CONTEXT) -> list[ImageOut]:
        first = batch[0]
        pipe = self.pipeline()
        out = _call_pipe(
            pipe, ctx, self.name,
            prompt=[b.prompt for b in batch],
            negative_prompt=[b.negative_prompt for b in batch],
            width=first.width,
            height=first.height,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            generator=generators([b.seed for b in batch]),
        )
        return [ImageOut(image=im) for im in _rgb(out.images)]


# --- image_to_image -------------------------------------------------------------------------------------------
class ImageToImage(_DiffusersTool):
    name = "image_to_image"
    version = "diffusers-img2img-1"
    Input = ImageToImageIn
    Output = ImageOut
    kind = "image_to_image"
    role = "text_to_image"

    def batch_key(self, inp) -> Hashable:
        return (image_size(field(self, inp, "image")),) + tuple(
            hashable(field(self, inp, k)) for k in ("steps", "guidance", "strength")
        )

    def pipeline(self):
        mgr = self.manager

        def load(model_id: str):
            from diffusers import AutoPipelineForImage2Image

            base = mgr.get(self._kind("text_to_image"), model_id, self._fused(_load_text2img(mgr)), role=self.role)
            return _quiet(AutoPipelineForImage2Image.from_pipe(base))  # the (fused) weights are shared

        return self._get(self.kind, load)

    def run(self, batch: list[ImageToImageIn], ctx=NO_CONTEXT) -> list[ImageOut]:
        first = batch[0]
        size = first.image.size
        w, h = _multiple_of_8(*size)
        pipe = self.pipeline()
        out = _call_pipe(
            pipe, ctx, self.name,
            prompt=[b.prompt for b in batch],
            negative_prompt=[b.negative_prompt for b in batch],
            image=[b.image.convert("RGB") for b in batch],
            width=w,
            height=h,
            strength=first.strength,
            num_inference_steps=_steps(first.steps, first.strength),
            guidance_scale=first.guidance,
            generator=generators([b.seed for b in batch]),
        )
        images = _rgb(out.images)
        return [ImageOut(image=im if im.size == size else im.resize(size)) for im in images]


# --- layout_to_image ------------------------------------------------------------------------------------------
def scene_prompt(inp: LayoutToImageIn) -> str:
    parts = [inp.prompt]
    low = inp.prompt.lower()
    for extra in (inp.background, inp.style):
        if extra and extra.lower() not in low:
            parts.append(extra)
    return ", ".join(p for p in parts if p)


def _layout(inp: LayoutToImageIn, most: int = GLIGEN_MAX_OBJECTS) -> tuple[list[str], list[list[float]]]:
    objs = list(inp.objects)
    if len(objs) > most:  # keep the largest boxes
        area = lambda o: (o.box[2] - o.box[0]) * (o.box[3] - o.box[1])  # noqa: E731
        objs = sorted(objs, key=area, reverse=True)[:most]
    return [o.phrase or o.name for o in objs], [list(o.box) for o in objs]


def gligen_batch(pipe, prompts, negatives, layouts, *, width, height, steps, guidance, seeds, beta=GLIGEN_BETA,
                 ctx: ToolContext = NO_CONTEXT):  # fmt: skip
    """The GLIGEN pipeline's denoising loop with one layout *per sample*: one gated-UNet call per step.

    ``layouts`` is a list of (phrases, boxes) with boxes normalised xyxy. Mirrors
    ``StableDiffusionGLIGENPipeline.__call__`` (diffusers 0.42.1) step for step; the difference is that boxes,
    phrase embeddings and masks are stacked per sample instead of repeated.
    """
    import torch

    with torch.no_grad():
        device = pipe._execution_device
        n = len(prompts)
        cfg = guidance > 1.0
        pe, npe = pipe.encode_prompt(prompts, device, 1, cfg, negatives)
        if cfg:
            pe = torch.cat([npe, pe])
        pipe.scheduler.set_timesteps(steps, device=device)
        timesteps = pipe.scheduler.timesteps
        gens = generators(seeds)
        latents = pipe.prepare_latents(n, pipe.unet.config.in_channels, height, width, pe.dtype, device, gens)

        dtype = pipe.text_encoder.dtype
        dim = pipe.unet.config.cross_attention_dim
        boxes = torch.zeros(n, GLIGEN_MAX_OBJECTS, 4, device=device, dtype=dtype)
        embeds = torch.zeros(n, GLIGEN_MAX_OBJECTS, dim, device=device, dtype=dtype)
        masks = torch.zeros(n, GLIGEN_MAX_OBJECTS, device=device, dtype=dtype)
        phrases = [p for ph, _ in layouts for p in ph]
        if phrases:
            tok = pipe.tokenizer(
                phrases, padding=True, truncation=True, max_length=pipe.tokenizer.model_max_length, return_tensors="pt"
            ).to(device)
            pooled = pipe.text_encoder(**tok).pooler_output
            k = 0
            for i, (ph, bx) in enumerate(layouts):
                m = len(ph)
                if m:
                    boxes[i, :m] = torch.tensor(bx, device=device, dtype=dtype)
                    embeds[i, :m] = pooled[k : k + m]
                    masks[i, :m] = 1
                k += m
        if cfg:  # the unconditional half sees no grounding, as in the pipeline
            boxes, embeds = torch.cat([boxes, boxes]), torch.cat([embeds, embeds])
            masks = torch.cat([torch.zeros_like(masks), masks])
        xattn = {"gligen": {"boxes": boxes, "positive_embeddings": embeds, "masks": masks}}

        # the pipeline grounds int(beta·steps) steps: none at all below 4 steps with beta 0.3; keep at least one
        grounding_steps = max(1, int(beta * len(timesteps))) if beta > 0 else 0
        extra = pipe.prepare_extra_step_kwargs(gens, 0.0)
        pipe.enable_fuser(True)
        for i, t in enumerate(timesteps):
            if ctx.cancelled():
                raise Cancelled(f"layout_to_image stopped after step {i}")
            if i == grounding_steps:
                pipe.enable_fuser(False)
            x = torch.cat([latents] * 2) if cfg else latents
            x = pipe.scheduler.scale_model_input(x, t)
            noise = pipe.unet(x, t, encoder_hidden_states=pe, cross_attention_kwargs=xattn).sample
            if cfg:
                uncond, text = noise.chunk(2)
                noise = uncond + guidance * (text - uncond)
            latents = pipe.scheduler.step(noise, t, latents, **extra).prev_sample
            ctx.progress(i + 1, len(timesteps))
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
        images = pipe.image_processor.postprocess(image, output_type="pil", do_denormalize=[True] * n)
        pipe.maybe_free_model_hooks()
    return images


class LayoutToImage(_DiffusersTool):
    name = "layout_to_image"
    version = "diffusers-gligen-1"
    Input = LayoutToImageIn
    Output = ImageOut
    kind = role = "layout_to_image"

    def batch_key(self, inp) -> Hashable:
        return tuple(hashable(field(self, inp, k)) for k in ("width", "height", "steps", "guidance"))

    def pipeline(self):
        mgr = self.manager

        def load(model_id: str):
            from diffusers import StableDiffusionGLIGENPipeline

            return _from_pretrained(StableDiffusionGLIGENPipeline, mgr, model_id, "layout_to_image")

        return self._get(self.kind, self._fused(load))

    def run(self, batch: list[LayoutToImageIn], ctx=NO_CONTEXT) -> list[ImageOut]:
        first = batch[0]
        images = gligen_batch(
            self.pipeline(),
            [scene_prompt(b) for b in batch],
            [b.negative_prompt for b in batch],
            [_layout(b) for b in batch],
            width=first.width,
            height=first.height,
            steps=first.steps,
            guidance=first.guidance,
            seeds=[b.seed for b in batch],
            ctx=ctx,
        )
        return [ImageOut(image=im) for im in _rgb(images)]


class RegionalLayoutToImage(_DiffusersTool):
    """layout_to_image without a layout model (SDXL; any profile that names none): the text-to-image model's own
    weights, steered by the boxes through regional prompting (``tools/regional.py``)."""

    name = "layout_to_image"
    version = "diffusers-regional-1"
    Input = LayoutToImageIn
    Output = ImageOut
    kind = "text_to_image"
    role = "text_to_image"

    def batch_key(self, inp) -> Hashable:
        return tuple(hashable(field(self, inp, k)) for k in ("width", "height", "steps", "guidance"))

    def pipeline(self):
        return self._get(self.kind, self._fused(_load_text2img(self.manager)))

    def run(self, batch: list[LayoutToImageIn], ctx=NO_CONTEXT) -> list[ImageOut]:
        from tools.regional import MAX_REGIONS, regional_batch

        first = batch[0]
        images = regional_batch(
            self.pipeline(),
            [scene_prompt(b) for b in batch],
            [b.negative_prompt for b in batch],
            [_layout(b, MAX_REGIONS) for b in batch],
            width=first.width,
            height=first.height,
            steps=first.steps,
            guidance=first.guidance,
            seeds=[b.seed for b in batch],
            ctx=ctx,
        )
        return [ImageOut(image=im) for im in _rgb(images)]


# --- regional_repaint -----------------------------------------------------------------------------------------
def repaint_mask(box: list[float], width: int, height: int, *, pad_px: int = 20, small: float = 0.10):
    """White-on-black mask of the box, padded by ``pad_px`` (at 512 px, scaled) when the box is < ``small`` of the
    image. Returns (mask, box_pixels)."""
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = px = box_pixels(box, width, height)
    if (x1 - x0) * (y1 - y0) < small * width * height:
        pad = round(pad_px * max(width, height) / 512)
        x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle([x0, y0, x1 - 1, y1 - 1], fill=255)
    return mask, px


def paste_box(original, generated, px):
    """A copy of ``original`` with only the pixel box ``px`` taken from ``generated``: outside is byte-identical."""
    out = original.copy()
    if generated.size != original.size:
        generated = generated.resize(original.size)
    out.paste(generated.convert(original.mode).crop(px), px[:2])
    return out


class RegionalRepaint(_DiffusersTool):
    name = "regional_repaint"
    version = "diffusers-inpaint-1"
    Input = RegionalRepaintIn
    Output = ImageOut
    kind = role = "inpaint"

    def __init__(self, manager: ModelManager, model_id: str, *, ip_adapter: str | None = None,
                 ip_adapter_scale: float = 0.6, scheduler: str | None = None, lora: LoRA | None = None):
        super().__init__(manager, model_id, scheduler=scheduler, lora=lora)
        self.ip_adapter = ip_adapter_spec(ip_adapter) if ip_adapter else None
        self.ip_adapter_scale = ip_adapter_scale

    def identity(self) -> dict:
        ident = super().identity()
        if self.ip_adapter:
            ident["ip_adapter"] = model_identity(self.ip_adapter)
            ident["ip_adapter_scale"] = self.ip_adapter_scale
        return ident

    def ignored_inputs(self) -> dict[str, str]:
        if self.ip_adapter:
            return {}
        return {"reference": "the profile names no image-prompt adapter; add models.ip_adapter (e.g. "
                             "\"h94/IP-Adapter::models/ip-adapter_sd15.safetensors\") or drop the reference"}

    def batch_key(self, inp) -> Hashable:
        ref = self.ip_adapter is not None and field(self, inp, "reference") is not None
        return (image_size(field(self, inp, "image")), ref) + tuple(
            hashable(field(self, inp, k)) for k in ("steps", "guidance", "strength")
        )

    def pipeline(self):
        mgr = self.manager

        def load(model_id: str):
            from diffusers import AutoPipelineForInpainting

            pipe = _from_pretrained(AutoPipelineForInpainting, mgr, model_id, "inpaint")
            if self.ip_adapter:
                ip = resolved(self.ip_adapter, "ip_adapter")
                sub, _, weight = (ip.file or DEFAULT_IP_WEIGHTS).rpartition("/")
                pipe.load_ip_adapter(str(ip.folder), subfolder=sub, weight_name=weight, local_files_only=True)
            return pipe

        return self._get(self.kind + ("+ip" if self.ip_adapter else ""), self._fused(load))

    def run(self, batch: list[RegionalRepaintIn], ctx=NO_CONTEXT) -> list[ImageOut]:
        first = batch[0]
        size = first.image.size
        w, h = _multiple_of_8(*size)
        masks, boxes = zip(*(repaint_mask(b.box, *size) for b in batch))
        pipe = self.pipeline()
        kw: dict[str, Any] = {}
        if self.ip_adapter:
            with_ref = first.reference is not None  # batch_key keeps reference/no-reference apart
            pipe.set_ip_adapter_scale(self.ip_adapter_scale if with_ref else 0.0)
            kw["ip_adapter_image_embeds"] = self._ip_embeds(pipe, batch, first.guidance > 1.0)
        out = _call_pipe(
            pipe, ctx, self.name,
            prompt=[b.prompt for b in batch],
            negative_prompt=[b.negative_prompt for b in batch],
            image=[b.image.convert("RGB") for b in batch],
            mask_image=list(masks),
            width=w,
            height=h,
            strength=first.strength,
            num_inference_steps=_steps(first.steps, first.strength),
            guidance_scale=first.guidance,
            generator=generators([b.seed for b in batch]),
            **kw,
        )
        return [ImageOut(image=paste_box(b.image, im, px)) for b, im, px in zip(batch, out.images, boxes)]

    @staticmethod
    def _ip_embeds(pipe, batch, cfg: bool):
        """Per-sample IP-Adapter image embeddings, shaped as the pipeline builds them for one image
        (``ip_adapter_image`` takes one image per adapter for the whole call, not one per sample). Samples
        without a reference get zeros; such batches run at adapter scale 0."""
        import torch
        from diffusers.models.embeddings import ImageProjection

        device = pipe._execution_device
        layer = pipe.unet.encoder_hid_proj.image_projection_layers[0]
        hidden = not isinstance(layer, ImageProjection)  # IP-Adapter Plus / FaceID use hidden states
        pos, neg = [], []
        for b in batch:
            ref = b.reference if b.reference is not None else batch[0].image
            p, n = pipe.encode_image(ref.convert("RGB"), device, 1, hidden)
            if b.reference is None:
                p, n = torch.zeros_like(p), torch.zeros_like(n)
            pos.append(p)
            neg.append(n)
        pos_t, neg_t = torch.stack(pos), torch.stack(neg)  # (B, 1, ...)
        return [torch.cat([neg_t, pos_t])] if cfg else [pos_t]


# --- the factory ----------------------------------------------------------------------------------------------
def diffusers_tools(profile, manager: ModelManager | None = None) -> list[Tool]:
    """Tools for the roles ``profile.models`` names; roles it lacks are left to the caller (preview tools). A
    profile's ``lora`` is fused into every diffusion pipeline (tools/lora.py) and its ``scheduler`` (a diffusers
    class name, validated by the profile) replaces every pipeline's own."""
    mgr = manager or shared_manager(profile.device, profile.dtype, profile.memory_budget_gb, profile.cpu_offload)
    models = profile.models
    lora = LoRA.of(profile.lora, profile.lora_scale) if getattr(profile, "lora", "") else None
    kw = {"lora": lora, "scheduler": getattr(profile, "scheduler", "") or None}
    tools: list[Tool] = []
    if "text_to_image" in models:
        tools.append(TextToImage(mgr, models["text_to_image"], **kw))
    if "image_to_image" in models or "text_to_image" in models:
        tools.append(ImageToImage(mgr, models.get("image_to_image") or models["text_to_image"], **kw))
    if "layout_to_image" in models:
        tools.append(LayoutToImage(mgr, models["layout_to_image"], **kw))
    elif "text_to_image" in models:
        tools.append(RegionalLayoutToImage(mgr, models["text_to_image"], **kw))
    if "inpaint" in models:
        tools.append(RegionalRepaint(mgr, models["inpaint"], ip_adapter=models.get("ip_adapter"), **kw))
    if "clip" in models:
        from tools.clip_check import ClipRegionCheck

        tools.append(ClipRegionCheck(mgr, models["clip"]))
    return tools
