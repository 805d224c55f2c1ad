"""What ``scenewright eval`` measures an image with: an open-vocabulary detector and a CLIP colour classifier.

* :class:`OwlDetector` finds named things with OWL-ViT or OWLv2 (``AutoModelForZeroShotObjectDetection``; the
  profile's ``models.detector``). LMD scores its benchmark with OWL-ViT at a 0.15 score threshold and class-aware
  NMS; SLD uses OWLv2 at 0.2. Boxes come back normalised ``[x0, y0, x1, y1]``, best first per label.
* :class:`ClipColours` names the colour of a crop by CLIP zero-shot over colour names, with GenEval's three
  prompt templates ("a photo of a {c} {object}", "a photo of a {c}-colored {object}", "a photo of a {c} object")
  averaged per colour (the profile's ``models.clip``).

Both load through the shared :class:`~tools.models.ModelManager`, so device, dtype, memory budget and the
"model not found" message are the profile's, as for every other tool.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.model_utils import box_pixels
from tools.models import ModelManager, model_identity, resolved
from tools.weights import load_kwargs

# GenEval's colour names (evaluation/evaluate_images.py)
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
TEMPLATES = ("a photo of a {c} {o}", "a photo of a {c}-colored {o}", "a photo of a {c} object")


@dataclass(frozen=True)
class Found:
    box: tuple[float, float, float, float]  # normalised, origin top-left
    score: float


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(found: list[Found], overlap: float) -> list[Found]:
    """Best first; drop a box overlapping a kept one by more than ``overlap`` IoU (1.0 keeps everything)."""
    kept: list[Found] = []
    for f in sorted(found, key=lambda f: -f.score):
        if overlap >= 1.0 or all(_iou(f.box, k.box) < overlap for k in kept):
            kept.append(f)
    return kept


class OwlDetector:
    kind = role = "detector"

    def __init__(self, manager: ModelManager, model_id: str, *, threshold: float = 0.15, overlap: float = 0.5,
                 max_per_label: int = 16):
        self.manager = manager
        self.model_id = model_id
        self.threshold = threshold
        self.overlap = overlap
        self.max_per_label = max_per_label

    def identity(self) -> dict:
        return {"model": model_identity(self.model_id), "threshold": self.threshold, "nms": self.overlap}

    def model(self):
        mgr = self.manager

        def load(model_id: str):
            from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

            res = resolved(model_id, self.role)
            model = AutoModelForZeroShotObjectDetection.from_pretrained(
                res.source(), dtype=mgr.torch_dtype, **load_kwargs(res)).eval()
            return model, AutoProcessor.from_pretrained(res.source(), local_files_only=True)

        return mgr.get(self.kind, self.model_id, load, role=self.role)

    def detect(self, image, labels: list[str]) -> dict[str, list[Found]]:
        """{label: detections best first} for every label (an empty list when nothing passes the threshold)."""
        import torch

        labels = list(dict.fromkeys(labels))
        out: dict[str, list[Found]] = {label: [] for label in labels}
        if not labels:
            return out
        model, proc = self.model()
        im = image.convert("RGB")
        queries = [f"a photo of a {label}" for label in labels]
        longest = model.config.text_config.max_position_embeddings  # 16 for OWL-ViT and OWLv2
        enc = proc(text=[queries], images=im, return_tensors="pt", padding="max_length", truncation=True,
                   max_length=longest)
        device = next(model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        enc["pixel_values"] = enc["pixel_values"].to(model.dtype)
        with torch.inference_mode():
            raw = model(**enc)
        # OWLv2 pads the image to a square before predicting: boxes are relative to that square
        side = max(im.width, im.height) if model.config.model_type == "owlv2" else None
        size = (side, side) if side else (im.height, im.width)
        result = proc.post_process_grounded_object_detection(
            raw, threshold=self.threshold, target_sizes=[size], text_labels=[labels])[0]
        for box, score, index in zip(result["boxes"].tolist(), result["scores"].tolist(), result["labels"].tolist()):
            x0, y0, x1, y1 = (max(0.0, min(1.0, v)) for v in (box[0] / im.width, box[1] / im.height,
                                                              box[2] / im.width, box[3] / im.height))
            if x1 > x0 and y1 > y0:
                out[labels[int(index)]].append(Found((x0, y0, x1, y1), float(score)))
        return {label: nms(found, self.overlap)[: self.max_per_label] for label, found in out.items()}


class ClipColours:
    kind = "clip"
    role = "clip"

    def __init__(self, manager: ModelManager, model_id: str, colours: tuple[str, ...] = COLOURS):
        self.manager = manager
        self.model_id = model_id
        self.colours = colours
        self._classifiers: dict[str, object] = {}

    def identity(self) -> dict:
        return {"model": model_identity(self.model_id), "colours": list(self.colours)}

    def model(self):
        mgr = self.manager

        def load(model_id: str):
            from transformers import AutoModel, AutoProcessor

            res = resolved(model_id, self.role)
            model = AutoModel.from_pretrained(res.source(), dtype=mgr.torch_dtype, **load_kwargs(res)).eval()
            return model, AutoProcessor.from_pretrained(res.source(), local_files_only=True)

        return mgr.get(self.kind, self.model_id, load, role=self.role)

    def _classifier(self, noun: str):
        """One unit text embedding per colour: the normalised mean over the templates (clip_benchmark's way)."""
        import torch

        if noun not in self._classifiers:
            model, proc = self.model()
            texts = [t.format(c=c, o=noun) for c in self.colours for t in TEMPLATES]
            enc = proc(text=texts, return_tensors="pt", padding=True, truncation=True, max_length=77)
            device = next(model.parameters()).device
            with torch.inference_mode():
                emb = model.get_text_features(**{k: v.to(device) for k, v in enc.items()})
            emb = getattr(emb, "pooler_output", emb)  # transformers 5 may return an output object
            emb = torch.nn.functional.normalize(emb.float(), dim=-1).view(len(self.colours), len(TEMPLATES), -1)
            self._classifiers[noun] = torch.nn.functional.normalize(emb.mean(1), dim=-1)
        return self._classifiers[noun]

    def colours_of(self, image, boxes: list[tuple[float, float, float, float]], noun: str) -> list[str]:
        """The colour name CLIP finds most likely for each box of ``image``."""
        import torch

        if not boxes:
            return []
        model, proc = self.model()
        im = image.convert("RGB")
        crops = [im.crop(box_pixels(list(b), im.width, im.height)) for b in boxes]
        enc = proc(images=crops, return_tensors="pt")
        device = next(model.parameters()).device
        with torch.inference_mode():
            emb = model.get_image_features(pixel_values=enc["pixel_values"].to(device, model.dtype))
        emb = getattr(emb, "pooler_output", emb)
        emb = torch.nn.functional.normalize(emb.float(), dim=-1)
        best = (emb @ self._classifier(noun).T).argmax(-1).tolist()
        return [self.colours[i] for i in best]
