"""Plumbing tools of the critique loops (ImageRepainter, ArtAug) and the factory that fills their roles.

- ``load_image``: a file into a graph. The ``sha256`` of the file is a required input, so the cache key follows
  the content, and the tool checks the file still has it (a changed file fails the node: plan again).
- ``select_best``: the best-scoring image of a list (ImageRepainter's per-round selection).
- ``apply_suggestions``: ArtAug's edit step, composed of the profile's own ``image_to_image`` (global suggestions,
  appended to the prompt) and ``regional_repaint`` (one call per box suggestion) tools. It is a tool made of
  tools because a loop body is a fixed template, while the number and kind of suggestions is only known at run
  time; its version and identity are those of the tools it uses, so the cache stays correct.
- ``accept_edit``: ArtAug's filter. Keep the edit only if the aesthetic score rises (by more than ``min_gain``)
  and prompt alignment does not fall by more than ``delta``; otherwise hand back the image from before.

``critique_tools(profile, registry)`` returns these plus the backend of each critique role: VLM tools when the
profile names a VLM (``[profiles.X.vlm]``), CLIP+DINOv2 similarity when ``models`` has ``clip`` and ``dino``,
the CLIP aesthetic predictor when ``models`` has ``aesthetic``; the preview stand-ins otherwise.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tools.base import NO_CONTEXT, Registry, Tool
from tools.roles import (
    AcceptEditIn,
    AcceptEditOut,
    ApplySuggestionsIn,
    ApplySuggestionsOut,
    ImageOut,
    ImageToImageIn,
    LoadImageIn,
    RegionalRepaintIn,
    SelectBestIn,
    SelectBestOut,
)

MAX_IMAGE_PIXELS = 64_000_000
MAX_IMAGE_FILE_BYTES = 256 * 1024 * 1024


def open_image(path: str | Path, sha256: str | None = None) -> Image.Image:
    """Open an image file as RGB, with one-line errors a user can act on (ValueError). With ``sha256``, the file's
    bytes must hash to it (read once, so what is checked is what is decoded)."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"image file {p} does not exist")
    if not p.is_file():
        raise ValueError(f"{p} is not a file; give a PNG or JPEG image")
    source: Path | io.BytesIO = p
    if sha256 is not None:
        if p.stat().st_size > MAX_IMAGE_FILE_BYTES:
            raise ValueError(f"{p} is larger than {MAX_IMAGE_FILE_BYTES >> 20} MiB; give a PNG or JPEG image")
        data = p.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"{p} changed since it was planned (its sha256 is not {sha256[:12]}…); plan again")
        source = io.BytesIO(data)
    try:
        with Image.open(source) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{p} is {im.width}x{im.height}: too large (at most {MAX_IMAGE_PIXELS} pixels)")
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError):
        raise ValueError(f"{p} is not an image Pillow can read; give a PNG or JPEG image") from None


class LoadImage(Tool):
    name = "load_image"
    version = "load-1"
    Input = LoadImageIn
    Output = ImageOut
    resource = "io"

    def run(self, batch: list[LoadImageIn], ctx=NO_CONTEXT) -> list[ImageOut]:
        out = []
        for b in batch:
            im = open_image(b.path, b.sha256)
            if b.width and b.height and im.size != (b.width, b.height):
                im = im.resize((b.width, b.height), Image.Resampling.LANCZOS)
            out.append(ImageOut(image=im))
        return out


class SelectBest(Tool):
    name = "select_best"
    version = "select-1"
    Input = SelectBestIn
    Output = SelectBestOut

    def run(self, batch: list[SelectBestIn], ctx=NO_CONTEXT) -> list[SelectBestOut]:
        out = []
        for b in batch:
            if len(b.images) != len(b.scores):
                raise ValueError(f"select_best: {len(b.images)} images but {len(b.scores)} scores")
            i = max(range(len(b.scores)), key=lambda k: (b.scores[k], -k))
            out.append(SelectBestOut(image=b.images[i], score=b.scores[i], index=i))
        return out


class AcceptEdit(Tool):
    name = "accept_edit"
    version = "accept-2"
    Input = AcceptEditIn
    Output = AcceptEditOut

    def run(self, batch: list[AcceptEditIn], ctx=NO_CONTEXT) -> list[AcceptEditOut]:
        return [accept(b) for b in batch]


def accept(b: AcceptEditIn) -> AcceptEditOut:
    gain = b.after_score - b.before_score
    drop = b.before_clip - b.after_clip
    if gain <= b.min_gain:
        why = f"rejected: aesthetic {b.before_score:.4f} → {b.after_score:.4f} did not rise"
    elif drop > b.delta:
        why = f"rejected: prompt alignment fell {b.before_clip:.4f} → {b.after_clip:.4f} (more than {b.delta:g})"
    else:
        why = (f"accepted: aesthetic {b.before_score:.4f} → {b.after_score:.4f},"
               f" alignment {b.before_clip:.4f} → {b.after_clip:.4f}")
        return AcceptEditOut(image=b.after, score=b.after_score, clip=b.after_clip, accepted=True, decision=why)
    rejected = list(dict.fromkeys([*b.rejected, *(s.edit for s in b.tried if s.edit.strip())]))[-16:]
    return AcceptEditOut(image=b.before, score=b.before_score, clip=b.before_clip, accepted=False, decision=why,
                         rejected=rejected)


class ApplySuggestions(Tool):
    name = "apply_suggestions"
    Input = ApplySuggestionsIn
    Output = ApplySuggestionsOut
    resource = "gpu"  # it runs the profile's model tools, on the executor's model thread
    max_batch = 8

    def __init__(self, registry: Registry):
        self.registry = registry

    @property
    def version(self) -> str:  # type: ignore[override]
        return "apply-1+" + "+".join(self.registry.get(n).version for n in ("image_to_image", "regional_repaint"))

    def identity(self) -> dict:
        return {n: self.registry.get(n).identity() for n in ("image_to_image", "regional_repaint")}

    def run(self, batch: list[ApplySuggestionsIn], ctx=NO_CONTEXT) -> list[ApplySuggestionsOut]:
        i2i, repaint = self.registry.get("image_to_image"), self.registry.get("regional_repaint")
        out = []
        for b in batch:
            image, applied, prompt = b.image, [], ""
            edits = [s.edit.strip() for s in b.suggestions if s.scope == "global" and s.edit.strip()]
            if edits:
                prompt = ", ".join(dict.fromkeys(edits)) + (f", {b.prompt}" if b.prompt else "")
                image = i2i.run([ImageToImageIn(image=image, prompt=prompt, strength=b.strength, steps=b.steps,
                                                guidance=b.guidance, seed=b.seed)], ctx)[0].image
                applied.append(f"image_to_image: {prompt!r} at strength {b.strength:g}")
            boxes = [s for s in b.suggestions if s.scope == "box" and s.box is not None and s.edit.strip()]
            for k, s in enumerate(boxes[: b.max_box_edits]):
                image = repaint.run([RegionalRepaintIn(
                    image=image, box=s.box, prompt=s.edit, strength=b.box_strength, steps=b.steps,
                    guidance=b.guidance, seed=(b.seed + 1 + k) % 2**32,
                )], ctx)[0].image  # fmt: skip
                applied.append(f"regional_repaint {[round(v, 3) for v in s.box]}: {s.edit!r}")
            out.append(ApplySuggestionsOut(image=image, prompt=prompt, applied=applied))
        return out


def critique_tools(profile, registry: Registry, recorder=None) -> list[Tool]:
    """The loop tools and the critique-role backends this profile asks for (see the module docstring)."""
    from tools.preview_vlm import preview_vlm_tools

    tools: list[Tool] = [LoadImage(), SelectBest(), AcceptEdit(), ApplySuggestions(registry)]
    tools += preview_vlm_tools(delay_ms=profile.delay_ms)
    vlm = getattr(profile, "vlm", None)
    if vlm is not None and vlm.kind != "preview":
        from tools.vlm import vlm_tools

        tools += vlm_tools(vlm)
    models = profile.models if profile.backend == "diffusers" else {}
    if models.get("clip") and models.get("dino"):
        from tools.similarity import ClipDinoSimilarity

        tools.append(ClipDinoSimilarity(_manager(profile), models["clip"], models["dino"]))
    if models.get("aesthetic") and (models.get("aesthetic_clip") or models.get("clip")):
        from tools.aesthetic import ClipAestheticScore

        tools.append(ClipAestheticScore(_manager(profile), models.get("aesthetic_clip") or models["clip"],
                                        models["aesthetic"]))
    return tools


def _manager(profile):
    from tools.models import shared_manager

    return shared_manager(profile.device, profile.dtype, profile.memory_budget_gb, profile.cpu_offload)
