"""A profile's LoRA (``lora = "path"``, e.g. from ``scenewright distill``) in the Stable Diffusion tools.

``with_lora(tools, profile, manager)`` swaps ``text_to_image`` and ``image_to_image`` (and the text-only
``layout_to_image`` fallback) for variants whose pipeline is loaded fresh, gets ``load_lora_weights`` and is
fused at ``lora_scale``. The fused pipeline is its own model-manager entry (kind ``...+lora:<sha>``), so the
plain pipeline other profiles share is never modified. The LoRA file's hash is part of each tool's identity, so
cached results never mix with and without it. GLIGEN and inpainting UNets are left alone: the LoRA is trained on
the text-to-image UNet.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tools.models import ModelNotFound

WEIGHT_NAME = "pytorch_lora_weights.safetensors"


def lora_file(path: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / WEIGHT_NAME
    if not p.is_file():
        raise ModelNotFound(f"the profile's LoRA {p} does not exist; run `scenewright distill` or fix `lora = ...`")
    return p


def _load_with_lora(mgr, path: Path, scale: float):
    def load(model_id: str):
        from tools.diffusion import _load_text2img

        pipe = _load_text2img(mgr)(model_id)
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="profile")
        pipe.fuse_lora(lora_scale=scale, adapter_names=["profile"])
        pipe.unload_lora_weights()  # the fused weights stay; the adapter layers go
        return pipe

    return load


def with_lora(tools: list, profile, mgr) -> list:
    from tools.diffusion import ImageToImage, TextToImage

    path = lora_file(profile.lora)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    tag = f"+lora:{digest}@{profile.lora_scale:g}"
    loader = _load_with_lora(mgr, path, profile.lora_scale)

    class _LoRA:
        def identity(self) -> dict:
            return {**super().identity(), "lora": digest, "lora_scale": profile.lora_scale}

    out = []
    for tool in tools:
        if isinstance(tool, TextToImage):
            class LoRAText(_LoRA, type(tool)):  # type: ignore[misc, valid-type]
                def pipeline(self):
                    return self._get("text_to_image" + tag, loader)

            new = LoRAText.__new__(LoRAText)
            new.__dict__.update(tool.__dict__)
            out.append(new)
        elif isinstance(tool, ImageToImage):
            class LoRAImg(_LoRA, ImageToImage):
                def pipeline(self):
                    def load(model_id: str):
                        from diffusers import AutoPipelineForImage2Image

                        from tools.diffusion import _quiet

                        base = self.manager.get("text_to_image" + tag, model_id, loader, role=self.role)
                        return _quiet(AutoPipelineForImage2Image.from_pipe(base))

                    return self._get("image_to_image" + tag, load)

            new = LoRAImg.__new__(LoRAImg)
            new.__dict__.update(tool.__dict__)
            out.append(new)
        else:
            out.append(tool)
    return out
