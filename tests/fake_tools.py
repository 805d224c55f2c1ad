"""Small deterministic tools for engine tests and benchmarks: numbers and images, no models."""

from __future__ import annotations

import threading
import time

from PIL import Image as PILImage

from tools.base import NO_CONTEXT, Image, Tool, ToolModel


class NumIn(ToolModel):
    x: float = 0.0
    add: float = 1.0
    seed: int = 0


class NumOut(ToolModel):
    y: float
    score: float


class AddTool(Tool):
    """y = x + add; score = y / 10 (so loops can climb towards a threshold). Counts its calls."""

    name = "add"
    version = "1"
    Input = NumIn
    Output = NumOut
    max_batch = 8

    def __init__(self):
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def run(self, batch, ctx=NO_CONTEXT):
        with self.lock:
            self.calls.append(len(batch))
        return [NumOut(y=b.x + b.add, score=min(1.0, (b.x + b.add) / 10)) for b in batch]


class NoopIn(ToolModel):
    a: float = 0.0
    i: int = 0  # makes otherwise equal nodes distinct, so they do not share a cache entry


class NoopOut(ToolModel):
    y: float


class NoopTool(Tool):
    """Does nothing, or sleeps ``work_ms`` per input to stand in for a model call."""

    name = "noop"
    version = "1"
    Input = NoopIn
    Output = NoopOut
    max_batch = 256

    def __init__(self, work_ms: float = 0.0):
        self.work_ms = work_ms

    def run(self, batch, ctx=NO_CONTEXT):
        if self.work_ms:
            time.sleep(self.work_ms / 1000 * len(batch))
        return [NoopOut(y=b.a) for b in batch]


class FailTool(Tool):
    name = "fail"
    version = "1"
    Input = NoopIn
    Output = NoopOut

    def run(self, batch, ctx=NO_CONTEXT):
        raise RuntimeError("this tool always fails")


class PaintIn(ToolModel):
    color: str = "red"
    size: int = 32
    seed: int = 0


class PaintOut(ToolModel):
    image: Image


class PaintTool(Tool):
    name = "paint"
    version = "1"
    Input = PaintIn
    Output = PaintOut

    def run(self, batch, ctx=NO_CONTEXT):
        return [PaintOut(image=PILImage.new("RGB", (b.size, b.size), b.color)) for b in batch]


class MeanIn(ToolModel):
    image: Image


class MeanOut(ToolModel):
    red: float


class MeanRedTool(Tool):
    name = "mean_red"
    version = "1"
    Input = MeanIn
    Output = MeanOut

    def run(self, batch, ctx=NO_CONTEXT):
        return [MeanOut(red=sum(b.image.getpixel((0, 0))[:1]) / 255) for b in batch]
