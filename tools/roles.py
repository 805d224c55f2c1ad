"""The input and output models of every tool role.

A recipe asks for a role ("regional_repaint"); a profile decides which backend fills it (preview, diffusers).
All backends of a role share these models, so recipes and graphs never change when the backend does.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tools.base import Image, ToolModel

Box = Annotated[list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=4, max_length=4)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Size = Annotated[int, Field(ge=64, le=2048, multiple_of=8)]


class LayoutObject(ToolModel):
    name: str
    phrase: str
    box: Box


class TextItem(ToolModel):
    content: str
    box: Box
    style: str = ""


class ImageOut(ToolModel):
    image: Image


# --- text_to_image -------------------------------------------------------------------------------------------
class TextToImageIn(ToolModel):
    prompt: str
    negative_prompt: str = ""
    width: Size = 512
    height: Size = 512
    steps: int = Field(20, ge=1, le=200)
    guidance: float = Field(7.5, ge=0.0, le=30.0)
    seed: Seed = 0


# --- layout_to_image (LLM Blueprint global scene) ------------------------------------------------------------
class LayoutToImageIn(ToolModel):
    prompt: str
    background: str = ""
    style: str = ""
    negative_prompt: str = ""
    objects: list[LayoutObject] = []
    width: Size = 512
    height: Size = 512
    steps: int = Field(20, ge=1, le=200)
    guidance: float = Field(7.5, ge=0.0, le=30.0)
    seed: Seed = 0


# --- regional_repaint: only pixels inside ``box`` may change --------------------------------------------------
class RegionalRepaintIn(ToolModel):
    image: Image
    box: Box
    prompt: str
    negative_prompt: str = ""
    strength: float = Field(0.75, gt=0.0, le=1.0)
    steps: int = Field(20, ge=1, le=200)
    guidance: float = Field(7.5, ge=0.0, le=30.0)
    reference: Image | None = None
    seed: Seed = 0


# --- image_to_image -------------------------------------------------------------------------------------------
class ImageToImageIn(ToolModel):
    image: Image
    prompt: str
    negative_prompt: str = ""
    strength: float = Field(0.5, gt=0.0, le=1.0)
    steps: int = Field(20, ge=1, le=200)
    guidance: float = Field(7.5, ge=0.0, le=30.0)
    seed: Seed = 0


# --- region_check: does the box show what the text says? ----------------------------------------------------
class RegionCheckIn(ToolModel):
    image: Image
    box: Box
    text: str


class RegionCheckOut(ToolModel):
    score: float


# --- render_text (scene text) --------------------------------------------------------------------------------
class RenderTextIn(ToolModel):
    image: Image
    texts: list[TextItem]
    seed: Seed = 0


# --- composite: paste each layer's box region onto the base ---------------------------------------------------
class Layer(ToolModel):
    image: Image
    box: Box


class CompositeIn(ToolModel):
    base: Image
    layers: list[Layer] = []


# --- critique (ArtAug-style structured suggestions) ----------------------------------------------------------
class Suggestion(ToolModel):
    scope: Literal["global", "box"]
    aspect: str
    edit: str
    reason: str = ""
    box: Box | None = None


class CritiqueIn(ToolModel):
    image: Image
    prompt: str
    boxes: list[LayoutObject] = []


class CritiqueOut(ToolModel):
    score: float
    suggestions: list[Suggestion]
