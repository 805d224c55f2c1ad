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
    # edits already tried on this image and rejected by accept_edit: the critic is asked for something else, so
    # a rejected round is followed by a new question, not by the same (cached) answer
    rejected: Annotated[list[str], Field(max_length=16)] = []
    seed: Seed = 0


class CritiqueOut(ToolModel):
    score: float
    suggestions: list[Suggestion]


# === critique and revision loops (ImageRepainter, ArtAug) ======================================================
# --- load_image: bring a file into a graph (``sha256`` makes the cache key follow the file's content) -----------
class LoadImageIn(ToolModel):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # of the file's bytes: the cache key follows the content
    width: int = Field(0, ge=0, le=4096)  # 0 keeps the file's size
    height: int = Field(0, ge=0, le=4096)


# --- describe_image: a reference image as a structured description (ImageRepainter's IUT) ---------------------
class DescribedObject(ToolModel):
    name: str
    type: Literal["person", "animal", "object"] = "object"
    attributes: dict[str, str] = {}
    box: Box


class ImageDescription(ToolModel):
    summary: str
    style: str = ""
    lighting: str = ""
    palette: str = ""
    composition: str = ""
    objects: list[DescribedObject] = []
    relations: list[str] = []

    def clauses(self) -> list[str]:
        """The description's parts as prompt clauses, in ImageRepainter's template order (``iter.py``):
        ``{style} style, {palette}, {composition}, {summary}, {objects}, {relations}`` (lighting after style)."""
        objects = []
        for o in self.objects:
            attrs = " ".join(v for k, v in o.attributes.items() if v and k != "position" and v.lower() not in o.name.lower())
            objects.append(f"{attrs} {o.name}".strip())
        parts = [self.style and f"{self.style} style", self.lighting and f"{self.lighting} lighting", self.palette,
                 self.composition, self.summary, ", ".join(objects), ", ".join(self.relations)]  # fmt: skip
        return [" ".join(p.split()) for p in parts if p and p.strip()]

    def template_prompt(self) -> str:
        """The filled template, the text the prompt rewrite starts from."""
        return ", ".join(self.clauses())


class DescribeImageIn(ToolModel):
    image: Image


class DescribeImageOut(ToolModel):
    description: ImageDescription


# --- rewrite_prompt: a description as ``n`` different text-to-image prompts (ImageRepainter's variants) -----
class RewritePromptIn(ToolModel):
    description: ImageDescription
    n: int = Field(3, ge=1, le=8)
    seed: Seed = 0


class RewritePromptOut(ToolModel):
    prompts: list[str]  # exactly ``n``, each carrying the description's summary, objects and relations


# --- compare_images: how should the description change so the candidate looks more like the reference? -------
class Revision(ToolModel):
    aspect: Literal["style", "composition", "content"]
    change: str


class CompareImagesIn(ToolModel):
    reference: Image
    candidate: Image
    description: ImageDescription


class CompareImagesOut(ToolModel):
    revisions: list[Revision]
    description: ImageDescription  # the revised description (the next round's blueprint comes from it)


# --- image_similarity: weighted CLIP-image + DINOv2 cosine, in [0, 1] -----------------------------------------
class ImageSimilarityIn(ToolModel):
    reference: Image
    image: Image
    clip_weight: float = Field(0.5, ge=0.0, le=1.0)  # DINOv2 gets 1 - clip_weight


class ImageSimilarityOut(ToolModel):
    score: float
    clip: float
    dino: float


# --- aesthetic_score: in [0, 1] (a LAION-style 1-10 predictor is mapped by (s - 1) / 9) ------------------------
class AestheticIn(ToolModel):
    image: Image


class AestheticOut(ToolModel):
    score: float


# --- select_best: the highest-scoring image of a list (first wins ties) --------------------------------------
class SelectBestIn(ToolModel):
    images: Annotated[list[Image], Field(min_length=1)]
    scores: Annotated[list[float], Field(min_length=1)]


class SelectBestOut(ToolModel):
    image: Image
    score: float
    index: int


# --- apply_suggestions: global suggestions → image_to_image, box suggestions → regional_repaint -------------------
class ApplySuggestionsIn(ToolModel):
    image: Image
    prompt: str
    suggestions: list[Suggestion] = []
    strength: float = Field(0.45, gt=0.0, le=1.0)
    box_strength: float = Field(0.75, gt=0.0, le=1.0)
    max_box_edits: int = Field(3, ge=0, le=8)
    steps: int = Field(20, ge=1, le=200)
    guidance: float = Field(7.5, ge=0.0, le=30.0)
    seed: Seed = 0


class ApplySuggestionsOut(ToolModel):
    image: Image
    prompt: str  # the revised global prompt ('' when no global suggestion was applied)
    applied: list[str]


# --- accept_edit: ArtAug's filter (aesthetic must rise, prompt alignment may not fall by more than delta) --------
class AcceptEditIn(ToolModel):
    before: Image
    after: Image
    before_score: float
    after_score: float
    before_clip: float
    after_clip: float
    min_gain: float = Field(0.0, ge=0.0, le=1.0)
    delta: float = Field(0.01, ge=0.0, le=1.0)
    tried: list[Suggestion] = []  # this round's suggestions
    rejected: Annotated[list[str], Field(max_length=16)] = []  # edits rejected earlier on ``before``


class AcceptEditOut(ToolModel):
    image: Image
    score: float
    clip: float
    accepted: bool
    decision: str
    rejected: list[str] = []  # edits rejected on the kept image ([] once an edit is accepted: a new image)


# --- scene text (SceneVTG) and reference retrieval (RealRAG) ----------------------------------------------------
# A quadrilateral text region: x1,y1 (top-left), x2,y2 (top-right), x3,y3 (bottom-right), x4,y4 (bottom-left),
# normalised to [0, 1] like boxes.
Quad = Annotated[list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=8, max_length=8)]


class GlyphWord(ToolModel):
    content: Annotated[str, Field(min_length=1, max_length=200)]
    quad: Quad


class GlyphText(ToolModel):
    content: Annotated[str, Field(min_length=1, max_length=200)]
    quad: Quad
    style: str = ""
    # SceneVTG's word level: each word drawn in its own quad (left to right) inside the line's quad; [] = the line
    words: Annotated[list[GlyphWord], Field(max_length=16)] = []


# --- glyph_render: the text drawn with a real font and warped into its quad (the condition image) ---------------
class GlyphRenderIn(ToolModel):
    image: Image
    text: GlyphText
    weight: float = Field(1.0, ge=0.1, le=3.0)  # glyph conditioning strength: stroke weight / contrast
    seed: Seed = 0


class GlyphRenderOut(ToolModel):
    image: Image  # the input with the glyphs drawn in the quad
    mask: Image  # L mask of the region the text pass may change (the slightly dilated quad)
    font: str  # the font file used ("" when none has the glyphs)
    missing: str  # characters no available font can draw


# --- text_inpaint: a diffusion pass over the glyph image, only the masked region changes ------------------------
class TextInpaintIn(ToolModel):
    image: Image  # the glyph image (condition / init image)
    mask: Image
    prompt: str
    negative_prompt: str = ""
    strength: float = Field(0.4, gt=0.0, le=1.0)
    steps: int = Field(20, ge=1, le=200)
    guidance: float = Field(7.5, ge=0.0, le=30.0)
    seed: Seed = 0


# --- ocr_read: read the text in a quad; score = 1 - normalised edit distance to ``expected`` ---------------------
class OcrReadIn(ToolModel):
    image: Image
    quad: Quad
    expected: str = ""


class OcrReadOut(ToolModel):
    text: str
    confidence: float
    score: float  # 1 - NED(expected, text) in [0, 1]; the confidence when nothing is expected
    engine: str


# --- retrieve_reference: a real reference image for an object (RealRAG, reflective re-ranking) ------------------
class RetrieveReferenceIn(ToolModel):
    query: Annotated[str, Field(min_length=1, max_length=400)]
    draft: Image | None = None  # the generator's own draft (its box is cropped when ``box`` is given)
    box: Box | None = None
    draft_score: float = Field(0.0, ge=0.0, le=1.0)  # the draft's check score; >= ``gate`` skips retrieval
    gate: float = Field(0.25, ge=0.0, le=2.0)  # above 1: always retrieve
    k: int = Field(20, ge=1, le=200)
    weight: float = Field(0.5, ge=0.0, le=5.0)  # lambda: penalty weight on similarity to the draft
    margin: float = Field(0.2, ge=0.0, le=1.0)
    floor: float = Field(0.0, ge=-1.0, le=1.0)  # minimum text relevance


class RetrieveReferenceOut(ToolModel):
    reference: Image | None = None
    chosen: str = ""  # catalogue id of the chosen reference ("" when none)
    reason: str = ""
    ranking: str = ""  # "trained head <sha>" | "frozen CLIP" | "heuristic (stats-1)" (tools/retrieval.py)
    candidates: list[dict] = []
