"""aesthetic_score: a CLIP-embedding aesthetic predictor (the LAION "improved aesthetic predictor" layout).

``models.aesthetic`` is a safetensors file with an MLP head over the L2-normalised CLIP image embedding:
``layers.0`` Linear → Dropout → ``layers.2`` Linear → Dropout → ``layers.4`` Linear → Dropout → ``layers.6``
Linear → ``layers.7`` Linear (to 1), the keys of LAION's ``sac+logos+ava1-l14-linearMSE.pth`` once converted to
safetensors (``safetensors.torch.save_file(torch.load(pth), "head.safetensors")``; it expects CLIP ViT-L/14,
``models.aesthetic_clip = "openai/clip-vit-large-patch14"``, else ``models.clip`` is used). Layer sizes are read
from the weights, so any head of that shape loads. The 1–10 rating is mapped to [0, 1] by ``(s - 1) / 9``.
The tiny test profile writes a random head of the same layout (``tests/tiny_vlm.py``).
"""

from __future__ import annotations

from tools.base import NO_CONTEXT, Tool
from tools.models import ModelManager, model_identity, resolved
from tools.roles import AestheticIn, AestheticOut
from tools.similarity import _pooled, load_encoder

HEAD_KEYS = (0, 2, 4, 6, 7)


def build_head(state: dict):
    """The MLP for a LAION-layout state dict (sizes from the weights)."""
    import torch.nn as nn

    layers: list = []
    for i, key in enumerate(HEAD_KEYS):
        w = state[f"layers.{key}.weight"]
        layers.append(nn.Linear(w.shape[1], w.shape[0]))
        if key in (0, 2, 4):
            layers.append(nn.Dropout(0.0))
    head = nn.Sequential(*layers)  # indices 0,2,4,6,7 line up with HEAD_KEYS
    head.load_state_dict({f"{k}.{p}": state[f"layers.{k}.{p}"] for k in HEAD_KEYS for p in ("weight", "bias")})
    return head.eval()


class ClipAestheticScore(Tool):
    name = "aesthetic_score"
    version = "clip-mlp-aesthetic-1"
    Input = AestheticIn
    Output = AestheticOut
    resource = "gpu"
    max_batch = 32
    deterministic = False  # float round-off across devices and batch sizes (replay: within score_atol)

    def __init__(self, manager: ModelManager, clip_id: str, head_path: str):
        self.manager, self.clip_id, self.head_path = manager, clip_id, head_path

    def identity(self) -> dict:
        return {"clip": model_identity(self.clip_id), "head": model_identity(self.head_path), "dtype": self.manager.dtype}

    def _models(self):
        clip = load_encoder(self.manager, "clip-image", self.clip_id)  # the similarity tool's cache entry

        def load(spec: str):
            from safetensors.torch import load_file

            res = resolved(spec, "aesthetic")  # a local .safetensors file or "repo::head.safetensors"
            return build_head(load_file(res.source()))

        head = self.manager.get("aesthetic-head", self.head_path, load, role="aesthetic")
        return clip, head

    def run(self, batch: list[AestheticIn], ctx=NO_CONTEXT) -> list[AestheticOut]:
        import torch

        (clip, proc), head = self._models()
        with torch.inference_mode():
            px = proc(images=[b.image.convert("RGB") for b in batch], return_tensors="pt")["pixel_values"]
            emb = _pooled(clip.get_image_features(pixel_values=px.to(next(clip.parameters()).device, clip.dtype)))
            emb = torch.nn.functional.normalize(emb.float(), dim=-1)
            hp = next(head.parameters())
            rating = head(emb.to(hp.device, hp.dtype)).float().squeeze(-1).cpu()
        return [AestheticOut(score=round(float(((r - 1) / 9).clamp(0, 1)), 6)) for r in rating]
