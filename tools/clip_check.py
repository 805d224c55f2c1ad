"""region_check with a transformers CLIP model: does the box show what the text says?

Every (image, box) of a batch is cropped, and **all crops and all distinct texts go through one forward pass**
of ``CLIPModel``. The score is the cosine similarity of the crop's image embedding and its text's embedding,
clamped to [0, 1]: the LLM Blueprint's ``CLIPScore/100`` (= max(100·cos, 0)/100 with ViT-B/16), so its
threshold 0.25 applies as is. Texts longer than CLIP's 77 tokens are truncated.
"""

from __future__ import annotations

from collections.abc import Hashable

from tools.base import NO_CONTEXT, Tool
from tools.model_utils import box_pixels
from tools.models import ModelManager, model_identity, resolved
from tools.weights import load_kwargs
from tools.roles import RegionCheckIn, RegionCheckOut


class ClipRegionCheck(Tool):
    name = "region_check"
    version = "clip-cosine-1"
    Input = RegionCheckIn
    Output = RegionCheckOut
    resource = "gpu"
    max_batch = 64
    deterministic = False  # float round-off across devices and batch sizes (replay: within score_atol)
    kind = role = "clip"

    def __init__(self, manager: ModelManager, model_id: str):
        self.manager = manager
        self.model_id = model_id

    def identity(self) -> dict:
        return {"model": model_identity(self.model_id), "dtype": self.manager.dtype,
                "device": self.manager.device.split(":")[0]}

    def batch_key(self, inp) -> Hashable:
        return ()

    def free_memory(self) -> None:
        """On out-of-memory (the executor calls this): drop every other model, keep this tool's."""
        self.manager.free_memory(keep_kinds=(self.kind,))

    def model(self):
        mgr = self.manager

        def load(model_id: str):
            from transformers import AutoModel, AutoProcessor

            res = resolved(model_id, self.role)
            model = AutoModel.from_pretrained(res.source(), dtype=mgr.torch_dtype, **load_kwargs(res)).eval()
            return model, AutoProcessor.from_pretrained(res.source(), local_files_only=True)

        return mgr.get(self.kind, self.model_id, load, role=self.role)

    def run(self, batch: list[RegionCheckIn], ctx=NO_CONTEXT) -> list[RegionCheckOut]:
        import torch

        model, proc = self.model()
        crops = []
        for b in batch:
            im = b.image.convert("RGB")
            crops.append(im.crop(box_pixels(b.box, im.width, im.height)))
        texts = list(dict.fromkeys(b.text for b in batch))
        index = [texts.index(b.text) for b in batch]
        max_len = getattr(proc.tokenizer, "model_max_length", 77)
        enc = proc(text=texts, images=crops, return_tensors="pt", padding=True, truncation=True,
                   max_length=min(int(max_len), 77))
        device = next(model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        enc["pixel_values"] = enc["pixel_values"].to(model.dtype)
        with torch.inference_mode():
            out = model(**enc)
        img = torch.nn.functional.normalize(out.image_embeds.float(), dim=-1)
        txt = torch.nn.functional.normalize(out.text_embeds.float(), dim=-1)
        scores = (img * txt[torch.tensor(index, device=txt.device)]).sum(-1).clamp(0.0, 1.0)
        return [RegionCheckOut(score=float(s)) for s in scores.cpu()]
