"""image_similarity with real encoders: ImageRepainter's ``0.5·CLIP-I + 0.5·DINOv2``.

CLIP-I is the cosine of ``CLIPModel.get_image_features`` of the two images; DINOv2 the cosine of the mean of
``last_hidden_state`` (as in the paper's code, ``facebook/dinov2-base``). Both are clamped to [0, 1] and mixed by
``clip_weight``. All references and candidates of a batch go through one forward pass per encoder.
"""

from __future__ import annotations

from tools.base import NO_CONTEXT, Tool
from tools.models import ModelManager, model_identity, resolved
from tools.weights import load_kwargs
from tools.roles import ImageSimilarityIn, ImageSimilarityOut


def _pooled(out):
    """``get_image_features`` returns a tensor in some transformers versions, a model output in others."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    for attr in ("image_embeds", "pooler_output"):
        if getattr(out, attr, None) is not None:
            return getattr(out, attr)
    raise TypeError(f"unexpected image-features output {type(out).__name__}")


def load_encoder(mgr: ModelManager, kind: str, model_id: str):
    """(model, image processor) for an image encoder (CLIP, DINOv2), through the shared model manager."""

    def load(mid: str):
        from transformers import AutoImageProcessor, AutoModel

        res = resolved(mid, kind)
        model = AutoModel.from_pretrained(res.source(), dtype=mgr.torch_dtype, **load_kwargs(res)).eval()
        return model, AutoImageProcessor.from_pretrained(res.source(), local_files_only=True)

    return mgr.get(kind, model_id, load, role=kind)


class ClipDinoSimilarity(Tool):
    name = "image_similarity"
    version = "clip-dino-cosine-1"
    Input = ImageSimilarityIn
    Output = ImageSimilarityOut
    resource = "gpu"
    max_batch = 32
    deterministic = False  # float round-off across devices and batch sizes (replay: within score_atol)

    def __init__(self, manager: ModelManager, clip_id: str, dino_id: str):
        self.manager, self.clip_id, self.dino_id = manager, clip_id, dino_id

    def identity(self) -> dict:
        return {"clip": model_identity(self.clip_id), "dino": model_identity(self.dino_id),
                "dtype": self.manager.dtype, "device": self.manager.device.split(":")[0]}

    def free_memory(self) -> None:
        self.manager.free_memory(keep_kinds=("clip", "dino"))

    def embed(self, images) -> tuple:
        import torch

        clip, clip_proc = load_encoder(self.manager, "clip-image", self.clip_id)
        dino, dino_proc = load_encoder(self.manager, "dino", self.dino_id)
        rgb = [im.convert("RGB") for im in images]
        with torch.inference_mode():
            px = clip_proc(images=rgb, return_tensors="pt")["pixel_values"]
            device = next(clip.parameters()).device
            c = _pooled(clip.get_image_features(pixel_values=px.to(device, clip.dtype))).float()
            px = dino_proc(images=rgb, return_tensors="pt")["pixel_values"]
            device = next(dino.parameters()).device
            d = dino(pixel_values=px.to(device, dino.dtype)).last_hidden_state.float().mean(1)
        n = torch.nn.functional.normalize
        return n(c, dim=-1).cpu(), n(d, dim=-1).cpu()

    def run(self, batch: list[ImageSimilarityIn], ctx=NO_CONTEXT) -> list[ImageSimilarityOut]:
        k = len(batch)
        c, d = self.embed([b.reference for b in batch] + [b.image for b in batch])
        clip = (c[:k] * c[k:]).sum(-1).clamp(0, 1)
        dino = (d[:k] * d[k:]).sum(-1).clamp(0, 1)
        return [
            ImageSimilarityOut(score=round(float(b.clip_weight * ci + (1 - b.clip_weight) * di), 6),
                               clip=round(float(ci), 6), dino=round(float(di), 6))
            for b, ci, di in zip(batch, clip, dino)
        ]
