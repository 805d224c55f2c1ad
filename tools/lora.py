"""A profile's LoRA (``lora = "path"``, e.g. from ``scenewright distill``), fused into every diffusion pipeline.

ArtAug distils the critic's preferences into a LoRA on the UNet's attention layers; those layers are the same in
the text-to-image, image-to-image, GLIGEN and inpainting UNets of one base model (GLIGEN adds gated layers, the
inpainting UNet four input channels, neither touches the LoRA's targets), so every diffusers tool of a profile
fuses the same LoRA (``_DiffusersTool(lora=...)`` in ``tools/diffusion.py``). Fusing happens at the UNet
(``load_lora_adapter`` → ``fuse_lora`` → ``unload_lora``): GLIGEN's pipeline has no LoRA loader of its own, and
the UNet path is the same for all of them. The file goes through diffusers' ``lora_state_dict`` first, which
converts kohya/A1111 layouts to diffusers', so a LoRA from elsewhere works too.

A fused pipeline is its own model-manager entry (kind ``...+lora:<sha>@<scale>``): the plain pipeline other
profiles share is never modified. The LoRA file's hash and scale are part of each tool's identity, so cached
results never mix with and without it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tools.models import ModelNotFound

WEIGHT_NAME = "pytorch_lora_weights.safetensors"
ADAPTER = "profile"


def lora_file(path: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / WEIGHT_NAME
    if not p.is_file():
        raise ModelNotFound(f"the profile's LoRA {p} does not exist; run `scenewright distill` or fix `lora = ...`")
    if p.suffix != ".safetensors":
        raise ModelNotFound(f"the profile's LoRA {p} is not a .safetensors file; scenewright never unpickles weights")
    return p


@dataclass(frozen=True)
class LoRA:
    path: Path
    scale: float
    digest: str  # sha256 of the file, first 16 hex digits

    @classmethod
    def of(cls, path: str, scale: float = 1.0) -> LoRA:
        p = lora_file(path)
        return cls(p, float(scale), hashlib.sha256(p.read_bytes()).hexdigest()[:16])

    @property
    def tag(self) -> str:
        """Suffix of the model-manager kind of every pipeline this LoRA is fused into."""
        return f"+lora:{self.digest}@{self.scale:g}"

    def identity(self) -> dict:
        return {"lora": self.digest, "lora_scale": self.scale}

    def fuse_into(self, pipe) -> None:
        """Fuse into ``pipe.unet`` in place; the adapter layers are removed, the fused weights stay."""
        from diffusers.loaders import StableDiffusionLoraLoaderMixin, StableDiffusionXLLoraLoaderMixin
        from safetensors.torch import load_file

        loader = StableDiffusionXLLoraLoaderMixin if hasattr(pipe, "text_encoder_2") else StableDiffusionLoraLoaderMixin
        state, alphas = loader.lora_state_dict(load_file(str(self.path)))
        unet_keys = [k for k in state if k.startswith("unet.")]
        if not unet_keys:
            raise ModelNotFound(f"the LoRA {self.path} has no UNet weights (keys 'unet.*'); it cannot be fused")
        pipe.unet.load_lora_adapter(state, prefix="unet", network_alphas=alphas, adapter_name=ADAPTER)
        pipe.unet.fuse_lora(lora_scale=self.scale, adapter_names=[ADAPTER])
        pipe.unet.unload_lora()

    def loader(self, load):
        """``load`` (model id → pipeline), then fuse."""

        def fused(model_id: str):
            pipe = load(model_id)
            self.fuse_into(pipe)
            return pipe

        return fused
