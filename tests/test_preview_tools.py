"""The preview backend: determinism, seeds, box discipline, checks that can fail, and legible text.

No OCR model is available here, so legibility is checked with pixels: big, high-contrast ink inside the box.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from tools.base import Registry
from tools.colors import color_for, find_colors, hashed_color
from tools.preview import (
    PreviewComposite,
    PreviewCritique,
    PreviewImageToImage,
    PreviewLayoutToImage,
    PreviewRegionalRepaint,
    PreviewRegionCheck,
    PreviewRenderText,
    PreviewTextToImage,
    parse_adjustments,
    preview_tools,
)
from tools.preview_render import missing_glyphs, pixel_rect
from tools.roles import (
    CompositeIn,
    CritiqueIn,
    ImageToImageIn,
    Layer,
    LayoutObject,
    LayoutToImageIn,
    RegionalRepaintIn,
    RegionCheckIn,
    RenderTextIn,
    TextItem,
    TextToImageIn,
)

ROLES = {
    "layout_to_image", "text_to_image", "regional_repaint", "region_check",
    "render_text", "image_to_image", "composite", "critique",
}


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(np.int32)


def noise_image(w: int = 160, h: int = 120, seed: int = 5) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def solid(color, w: int = 128, h: int = 128) -> Image.Image:
    return Image.new("RGB", (w, h), color)


def one(tool_cls, **fields):
    """Run a fresh tool on one input built from ``fields``; return its output."""
    return tool_cls().run([tool_cls.Input(**fields)])[0]


def outside(a: np.ndarray, rects) -> np.ndarray:
    """Boolean mask of the pixels outside every rect."""
    mask = np.ones(a.shape[:2], bool)
    for x0, y0, x1, y1 in rects:
        mask[y0:y1, x0:x1] = False
    return mask


def is_reddish(px) -> bool:
    r, g, b = (int(c) for c in px)
    return r > 120 and r > g + 60 and r > b + 60


APPLE = LayoutObject(name="apple", phrase="a red apple", box=[0.1, 0.5, 0.4, 0.9])
LAYOUT = LayoutToImageIn(
    prompt="a picnic", background="a sunny beach", width=192, height=128, seed=3,
    objects=[
        APPLE,
        LayoutObject(name="umbrella", phrase="a blue and white umbrella", box=[0.45, 0.1, 0.8, 0.7]),
        LayoutObject(name="towel", phrase="a light green towel", box=[0.3, 0.7, 0.95, 0.98]),
    ],
)


# --- registry shape ------------------------------------------------------------------------------------------
def test_preview_tools_cover_every_role_once():
    tools = preview_tools()
    assert {t.name for t in tools} == ROLES and len(tools) == len(ROLES)
    registry = Registry(tools)
    for t in tools:
        assert registry.get(t.name) is t
        assert t.identity() == {"backend": "preview"}
        assert t.deterministic and t.resource == "cpu" and t.max_batch >= 1
        assert t.version.startswith("preview-")


def test_delay_ms_sleeps_once_per_batch():
    tool = PreviewRegionCheck(delay_ms=60)
    inp = RegionCheckIn(image=solid((200, 0, 0), 64, 64), box=[0, 0, 1, 1], text="red")
    start = time.perf_counter()
    out = tool.run([inp, inp, inp])
    assert 0.055 <= time.perf_counter() - start < 1.0
    assert len(out) == 3


# --- boxes ---------------------------------------------------------------------------------------------------
def test_pixel_rect_floors_the_start_and_ceils_the_end():
    assert pixel_rect([0.1, 0.25, 0.5, 0.75], 640, 480) == (64, 120, 320, 360)  # exact despite float noise
    assert pixel_rect([0.101, 0.2501, 0.4999, 0.7499], 640, 480) == (64, 120, 320, 360)
    assert pixel_rect([0.0, 0.0, 1.0, 1.0], 100, 60) == (0, 0, 100, 60)
    assert pixel_rect([0.5, 0.5, 0.5, 0.5], 100, 60) == (50, 30, 50, 30)  # empty is allowed
    with pytest.raises(ValueError, match="inverted"):
        pixel_rect([0.6, 0.1, 0.5, 0.2], 100, 100)


# --- determinism and seeds -----------------------------------------------------------------------------------
IMAGE_CASES = [
    (PreviewLayoutToImage, LAYOUT),
    (PreviewLayoutToImage, LAYOUT.model_copy(update={"style": "watercolor", "background": "forest at night"})),
    (PreviewLayoutToImage, LAYOUT.model_copy(update={"style": "pixel art"})),
    (PreviewLayoutToImage, LAYOUT.model_copy(update={"style": "pencil sketch"})),
    (PreviewTextToImage, TextToImageIn(prompt="a purple sunset over the sea", width=128, height=96, seed=4)),
    (PreviewRegionalRepaint,
     RegionalRepaintIn(image=noise_image(), box=[0.2, 0.2, 0.7, 0.8], prompt="a red ball", seed=2)),
    (PreviewRenderText,
     RenderTextIn(image=noise_image(), texts=[TextItem(content="Hi there", box=[0.1, 0.1, 0.9, 0.5], style="chalk")],
                  seed=9)),
    (PreviewImageToImage, ImageToImageIn(image=noise_image(), prompt="warmer, more contrast")),
    (PreviewComposite,
     CompositeIn(base=noise_image(seed=1), layers=[Layer(image=noise_image(seed=2), box=[0.1, 0.1, 0.5, 0.5])])),
]


@pytest.mark.parametrize("tool_cls,inp", IMAGE_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_same_inputs_give_byte_identical_png(tool_cls, inp):
    first = tool_cls().run([inp])[0].image
    second = tool_cls().run([inp])[0].image
    assert first.mode == "RGB"
    assert png(first) == png(second)


@pytest.mark.parametrize("tool_cls,inp", [c for c in IMAGE_CASES if "seed" in type(c[1]).model_fields
                                          and c[0] is not PreviewImageToImage])
def test_seed_changes_seeded_outputs(tool_cls, inp):
    a = tool_cls().run([inp])[0].image
    b = tool_cls().run([inp.model_copy(update={"seed": inp.seed + 1})])[0].image
    assert png(a) != png(b)


def test_non_scene_checks_are_deterministic():
    image = PreviewLayoutToImage().run([LAYOUT])[0].image
    crit = CritiqueIn(image=image, prompt="a picnic", boxes=LAYOUT.objects)
    assert PreviewCritique().run([crit]) == PreviewCritique().run([crit])
    check = RegionCheckIn(image=image, box=APPLE.box, text=APPLE.phrase)
    assert PreviewRegionCheck().run([check]) == PreviewRegionCheck().run([check])


def test_inputs_are_not_mutated():
    image = noise_image()
    before = png(image)
    PreviewRegionalRepaint().run([RegionalRepaintIn(image=image, box=[0, 0, 1, 1], prompt="red", strength=1.0)])
    PreviewRenderText().run([RenderTextIn(image=image, texts=[TextItem(content="X", box=[0, 0, 1, 1])])])
    PreviewImageToImage().run([ImageToImageIn(image=image, prompt="much brighter", strength=1.0)])
    one(PreviewComposite, base=image, layers=[Layer(image=solid((0, 0, 0), 160, 120), box=[0, 0, 1, 1])])
    assert png(image) == before


# --- layout_to_image -----------------------------------------------------------------------------------------
def test_layout_is_the_requested_size_and_colours_objects_by_their_words():
    image = PreviewLayoutToImage().run([LAYOUT])[0].image
    assert image.size == (192, 128)
    a = arr(image)
    x0, y0, x1, y1 = pixel_rect(APPLE.box, 192, 128)
    cx = (x0 + x1) // 2
    assert is_reddish(a[(y0 + y1) // 2, x0 + (x1 - x0) // 3])  # labels sit at an edge, the middle is the shape
    crop = a[y0:y1, x0:x1].reshape(-1, 3)
    assert np.mean([is_reddish(p) for p in crop]) > 0.4


def test_layout_unknown_nouns_get_a_stable_hashed_colour():
    assert color_for("a gizmo", "gizmo") == hashed_color("gizmo") == color_for("", "gizmo")
    assert color_for("a tree", "tree") != hashed_color("tree")  # known nouns keep their usual colour
    assert color_for("a crimson gizmo", "gizmo") == find_colors("crimson")[0]


def test_layout_draws_nearer_objects_over_farther_ones():
    back = LayoutObject(name="box", phrase="a blue box", box=[0.1, 0.1, 0.6, 0.6])
    front = LayoutObject(name="crate", phrase="a red crate", box=[0.4, 0.4, 0.9, 0.9])
    for objects in ([back, front], [front, back]):  # list order does not matter, box bottoms do
        image = one(PreviewLayoutToImage, prompt="", objects=objects, width=128, height=128).image
        assert is_reddish(arr(image)[70, 70])  # in the overlap, away from both labels


def test_layout_style_words_change_the_picture():
    base = arr(PreviewLayoutToImage().run([LAYOUT])[0].image)
    for style in ("watercolor", "pixel art", "pencil sketch", "cartoon", "black and white"):
        styled = arr(PreviewLayoutToImage().run([LAYOUT.model_copy(update={"style": style})])[0].image)
        assert np.abs(styled - base).mean() > 3, style
    mono = arr(PreviewLayoutToImage().run([LAYOUT.model_copy(update={"style": "black and white"})])[0].image)
    assert np.abs(mono[..., 0] - mono[..., 2]).max() <= 2


def test_scene_words_pick_the_background():
    def mean_color(background):
        inp = LayoutToImageIn(prompt="", background=background, width=64, height=64)
        return arr(PreviewLayoutToImage().run([inp])[0].image).reshape(-1, 3).mean(0)

    r, g, b = mean_color("a dense forest")
    assert g > r and g > b
    r, g, b = mean_color("night sky")
    assert b > r and b > g and (r + g + b) / 3 < 80
    beach = arr(one(PreviewLayoutToImage, prompt="", background="beach", width=64, height=64).image)
    assert beach[5, 32, 2] > beach[5, 32, 0]  # sky on top
    assert beach[60, 32, 0] > beach[60, 32, 2] + 40  # sand below


def test_batch_outputs_come_back_in_input_order():
    colors = ["red", "green", "blue", "yellow"]
    batch = [LayoutToImageIn(prompt="", width=64, height=64,
                             objects=[LayoutObject(name="card", phrase=f"a {c} card", box=[0, 0, 1, 1])])
             for c in colors]
    outs = PreviewLayoutToImage().run(batch)
    assert len(outs) == 4
    for c, out in zip(colors, outs):
        expected = np.array(find_colors(c)[0])
        assert np.abs(arr(out.image)[12, 32] - expected).max() < 70, c
    checks = PreviewRegionCheck().run([RegionCheckIn(image=o.image, box=[0, 0, 1, 1], text="a red card") for o in outs])
    assert checks[0].score > 0.6 and all(c.score < 0.25 for c in checks[1:])


# --- text_to_image -------------------------------------------------------------------------------------------
def test_text_to_image_follows_prompt_colours_and_size():
    image = PreviewTextToImage().run([TextToImageIn(prompt="green green green", width=96, height=64, seed=1)])[0].image
    assert image.size == (96, 64)
    check = PreviewRegionCheck().run([RegionCheckIn(image=image, box=[0, 0, 1, 1], text="green")])[0]
    assert check.score > 0.3


# --- regional_repaint ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("box", [[0.2, 0.2, 0.7, 0.8], [0.133, 0.271, 0.611, 0.777], [0.0, 0.5, 1.0, 1.0]])
def test_repaint_changes_only_the_box(box):
    image = noise_image(157, 101)
    out = PreviewRegionalRepaint().run([RegionalRepaintIn(image=image, box=box, prompt="a red apple", seed=1)])[0].image
    rect = pixel_rect(box, 157, 101)
    a, b = arr(image), arr(out)
    keep = outside(a, [rect])
    assert (a[keep] == b[keep]).all()
    x0, y0, x1, y1 = rect
    assert np.abs(a[y0:y1, x0:x1] - b[y0:y1, x0:x1]).mean() > 20


def test_repaint_paints_the_prompt_colour_and_pastes_references():
    green = solid((30, 160, 40))
    box = [0.25, 0.25, 0.75, 0.75]
    painted = one(PreviewRegionalRepaint, image=green, box=box, prompt="a red apple", strength=0.9).image
    check = PreviewRegionCheck()
    before = check.run([RegionCheckIn(image=green, box=box, text="a red apple")])[0].score
    after = check.run([RegionCheckIn(image=painted, box=box, text="a red apple")])[0].score
    assert before < 0.25 < 0.6 < after

    reference = solid((0, 0, 255), 40, 20)
    out = one(PreviewRegionalRepaint, image=green, box=box, prompt="x", reference=reference, strength=1.0).image
    x0, y0, x1, y1 = pixel_rect(box, 128, 128)
    inner = arr(out)[y0:y1, x0:x1].reshape(-1, 3).mean(0)
    assert inner[2] > 200 and inner[1] < 60
    weak = one(PreviewRegionalRepaint, image=green, box=box, prompt="x", reference=reference, strength=0.3).image
    assert arr(weak)[64, 64, 1] > arr(out)[64, 64, 1] + 60  # strength blends with what was there


def test_repaint_with_empty_box_returns_the_image():
    image = noise_image()
    out = one(PreviewRegionalRepaint, image=image, box=[0.5, 0.5, 0.5, 0.9], prompt="red").image
    assert png(out) == png(image)


# --- region_check --------------------------------------------------------------------------------------------
def test_region_check_can_pass_and_fail():
    check = PreviewRegionCheck()
    box = [0.0, 0.0, 1.0, 1.0]
    scores = [o.score for o in check.run([
        RegionCheckIn(image=solid((200, 25, 30)), box=box, text="a red apple"),
        RegionCheckIn(image=solid((40, 150, 50)), box=box, text="a red apple"),
        RegionCheckIn(image=solid((140, 20, 20)), box=box, text="a dark red apple"),
        RegionCheckIn(image=solid((255, 140, 0)), box=box, text="a red apple"),
        RegionCheckIn(image=solid((245, 245, 245)), box=box, text="a white cup"),
        RegionCheckIn(image=solid((20, 20, 20)), box=box, text="a white cup"),
    ])]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] > 0.6 and scores[1] < 0.25
    assert scores[2] > 0.6 and scores[3] < 0.25
    assert scores[4] > 0.6 and scores[5] < 0.25


def test_region_check_on_a_storyboard():
    image = PreviewLayoutToImage().run([LAYOUT])[0].image
    check = PreviewRegionCheck()
    right, wrong, both = check.run([
        RegionCheckIn(image=image, box=APPLE.box, text="a red apple"),
        RegionCheckIn(image=image, box=APPLE.box, text="a green apple"),
        RegionCheckIn(image=image, box=LAYOUT.objects[1].box, text="a blue and white umbrella"),
    ])
    assert right.score > 0.6 and wrong.score < 0.25 and both.score > 0.6


def test_region_check_without_colour_words_asks_whether_something_is_there():
    check = PreviewRegionCheck()
    flat = solid((120, 120, 120))
    drawn = PreviewLayoutToImage().run([LayoutToImageIn(prompt="", width=128, height=128, objects=[
        LayoutObject(name="widget", phrase="a widget", box=[0.25, 0.25, 0.75, 0.75])])])[0].image
    box = [0.25, 0.25, 0.75, 0.75]
    empty, something, nothing = check.run([
        RegionCheckIn(image=flat, box=box, text="a widget"),
        RegionCheckIn(image=drawn, box=box, text="a widget"),
        RegionCheckIn(image=drawn, box=[0.5, 0.5, 0.5, 0.5], text="a widget"),
    ])
    assert empty.score < 0.3 and something.score > 0.8 and nothing.score == 0.0


# --- render_text ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["", "bold", "neon", "chalk", "red shadow"])
def test_render_text_draws_big_high_contrast_text_only_inside_the_box(style):
    image = solid((250, 250, 250), 256, 128)
    box = [0.1, 0.2, 0.9, 0.6]
    out = one(PreviewRenderText, image=image, texts=[TextItem(content="CAFÉ", box=box, style=style)]).image
    a, b = arr(image), arr(out)
    rect = pixel_rect(box, 256, 128)
    keep = outside(a, [rect])
    assert (a[keep] == b[keep]).all()
    changed = np.abs(a - b).sum(axis=2) > 60
    ys, xs = np.nonzero(changed)
    assert len(xs) > 0
    x0, y0, x1, y1 = rect
    assert xs.max() - xs.min() >= 0.5 * (x1 - x0) or ys.max() - ys.min() >= 0.6 * (y1 - y0)  # fills the box
    assert ys.max() - ys.min() >= 0.5 * (y1 - y0)


def test_render_text_picks_ink_that_contrasts_with_the_background():
    for bg in ((250, 250, 250), (10, 10, 40)):
        out = PreviewRenderText().run([RenderTextIn(image=solid(bg, 200, 100),
                                                    texts=[TextItem(content="EXIT", box=[0, 0, 1, 1])])])[0].image
        lum = arr(out) @ np.array([0.299, 0.587, 0.114])
        ink = np.abs(lum - (np.array(bg) @ np.array([0.299, 0.587, 0.114]))) > 150
        assert ink.mean() > 0.05  # plenty of strongly contrasting ink


def test_render_text_wraps_in_tall_boxes_and_keeps_several_boxes_apart():
    image = noise_image(200, 200)
    texts = [TextItem(content="FRESH BREAD DAILY", box=[0.05, 0.05, 0.35, 0.9]),
             TextItem(content="OPEN", box=[0.5, 0.1, 0.95, 0.3])]
    out = PreviewRenderText().run([RenderTextIn(image=image, texts=texts)])[0].image
    a, b = arr(image), arr(out)
    rects = [pixel_rect(t.box, 200, 200) for t in texts]
    keep = outside(a, rects)
    assert (a[keep] == b[keep]).all()
    x0, y0, x1, y1 = rects[0]
    inked = (np.abs(a - b).sum(axis=2) > 60)[y0:y1, x0:x1].any(axis=1)
    runs = int(inked[0]) + int(np.count_nonzero(inked[1:] & ~inked[:-1]))
    assert runs == 3  # one word per line down the narrow, tall box


def test_render_text_handles_unicode():
    image = solid((240, 240, 240), 256, 96)
    box = [0.05, 0.1, 0.95, 0.9]
    tool = PreviewRenderText()
    accented = arr(tool.run([RenderTextIn(image=image, texts=[TextItem(content="Café Ünïcode", box=box)])])[0].image)
    plain = arr(tool.run([RenderTextIn(image=image, texts=[TextItem(content="Cafe Unicode", box=box)])])[0].image)
    assert (accented != plain).any()
    assert missing_glyphs("Café Ünïcode Ωмега") == ""
    assert missing_glyphs("東京 café 東") == "東京"
    cjk = arr(tool.run([RenderTextIn(image=image, texts=[TextItem(content="東京 Tokyo", box=box)])])[0].image)
    assert (cjk != arr(image)).any()  # renders what it can (the Latin) and shows boxes for the rest


# --- image_to_image ------------------------------------------------------------------------------------------
def test_image_to_image_adjusts_by_prompt_words_and_strength():
    image = PreviewLayoutToImage().run([LAYOUT])[0].image
    tool = PreviewImageToImage()

    def run(prompt, strength=1.0):
        return arr(tool.run([ImageToImageIn(image=image, prompt=prompt, strength=strength)])[0].image)

    base = arr(image)
    assert run("brighter").mean() > base.mean() + 10
    assert run("darker").mean() < base.mean() - 10
    assert run("much brighter").mean() > run("slightly brighter").mean()
    assert abs(run("brighter", 0.2).mean() - base.mean()) < abs(run("brighter", 0.9).mean() - base.mean())
    assert run("more contrast").std() > base.std() + 3
    warm = run("warmer")
    assert (warm[..., 0] - warm[..., 2]).mean() > (base[..., 0] - base[..., 2]).mean() + 5
    assert (run("a nice picture") == base).all()

    def sat(a):
        return (a.max(axis=2) - a.min(axis=2)).mean()

    assert sat(run("less saturated")) < sat(base) < sat(run("more saturated"))
    assert parse_adjustments("less saturated")[0] == {"saturation": -1.0}


# --- composite -----------------------------------------------------------------------------------------------
def test_composite_copies_layer_boxes_in_order_and_nothing_else():
    base = noise_image(seed=1)
    red, blue = solid((255, 0, 0), 160, 120), solid((0, 0, 255), 160, 120)
    layers = [Layer(image=red, box=[0.1, 0.1, 0.6, 0.6]), Layer(image=blue, box=[0.4, 0.4, 0.9, 0.93])]
    out = arr(PreviewComposite().run([CompositeIn(base=base, layers=layers)])[0].image)
    a = arr(base)
    r1, r2 = pixel_rect(layers[0].box, 160, 120), pixel_rect(layers[1].box, 160, 120)
    keep = outside(a, [r1, r2])
    assert (out[keep] == a[keep]).all()
    assert (out[r2[1] : r2[3], r2[0] : r2[2]] == [0, 0, 255]).all()  # later layer wins the overlap
    assert (out[r1[1] : r2[1], r1[0] : r1[2]] == [255, 0, 0]).all()


def test_composite_rejects_layers_of_another_size():
    with pytest.raises(ValueError, match=r"layers\[0\] is 64x64 but the base is 160x120"):
        one(PreviewComposite, base=noise_image(), layers=[Layer(image=solid((0, 0, 0), 64, 64), box=[0, 0, 1, 1])])


# --- critique ------------------------------------------------------------------------------------------------
def test_critique_suggests_brightening_a_dark_image_and_the_edit_works():
    dark = Image.fromarray((np.asarray(noise_image(128, 128)) * 0.2).astype(np.uint8))
    critique = PreviewCritique()
    result = critique.run([CritiqueIn(image=dark, prompt="a cat on a sofa")])[0]
    assert 0.0 <= result.score <= 1.0
    exposure = [s for s in result.suggestions if s.aspect == "exposure"]
    assert len(exposure) == 1 and "brighter" in exposure[0].edit and exposure[0].scope == "global"
    edits = ", ".join(s.edit for s in result.suggestions if s.scope == "global")
    fixed = PreviewImageToImage().run([ImageToImageIn(image=dark, prompt=edits, strength=1.0)])[0].image
    after = critique.run([CritiqueIn(image=fixed, prompt="a cat on a sofa")])[0]
    assert after.score > result.score
    assert not [s for s in after.suggestions if s.aspect == "exposure" and "brighter" in s.edit]


def test_critique_respects_intent_and_returns_valid_suggestions():
    night = Image.new("RGB", (96, 96), (25, 30, 60))
    result = PreviewCritique().run([CritiqueIn(image=night, prompt="a quiet street at night")])[0]
    assert not [s for s in result.suggestions if s.aspect == "exposure"]

    storyboard = PreviewLayoutToImage().run([LAYOUT])[0].image
    good = PreviewCritique().run([CritiqueIn(image=storyboard, prompt="a picnic", boxes=LAYOUT.objects)])[0]
    assert good.score > 0.7 and not [s for s in good.suggestions if s.scope == "box"]
    for s in good.suggestions + result.suggestions:
        assert s.scope == "global" and s.aspect in {"exposure", "colour", "contrast", "atmosphere"} and s.edit


def test_critique_flags_washed_out_objects_with_a_repaint_prompt():
    grey = Image.new("RGB", (128, 128), (128, 128, 128))
    ghost = LayoutObject(name="apple", phrase="a red apple", box=[0.2, 0.2, 0.5, 0.5])
    result = PreviewCritique().run([CritiqueIn(image=grey, prompt="an apple", boxes=[ghost])])[0]
    boxes = [s for s in result.suggestions if s.scope == "box"]
    assert len(boxes) == 1
    assert boxes[0].box == ghost.box and boxes[0].edit == "a vivid red apple" and boxes[0].aspect == "object"


def test_colour_words_and_shape_words():
    from tools.colors import COLORS
    from tools.preview_render import is_round

    assert find_colors("a Red apple") == [COLORS["red"]]
    assert find_colors("sky blue and hot pink") == [COLORS["sky blue"], COLORS["hot pink"]]
    light, dark = find_colors("light blue")[0], find_colors("dark blue")[0]
    assert sum(light) > sum(COLORS["blue"]) > sum(dark)
    assert find_colors("a reddish glow") == [COLORS["red"]]
    assert find_colors("a wooden table") == [] and find_colors("bluebird") == []
    assert len(COLORS) >= 40
    assert is_round("two small round wooden tables") and is_round("apples") and not is_round("a wooden table")


# --- storyboards that show what they should (issue 13) -----------------------------------------------------------
def _layout(**kw) -> Image.Image:
    return PreviewLayoutToImage().one(LayoutToImageIn(width=256, height=256, **kw)).image


def test_without_a_background_the_canvas_is_not_the_first_objects_colour():
    im = _layout(prompt="a red cube left of a blue sphere", objects=[
        LayoutObject(name="cube", phrase="a red cube", box=[0.1, 0.4, 0.4, 0.7]),
        LayoutObject(name="sphere", phrase="a blue sphere", box=[0.6, 0.4, 0.9, 0.7])])
    r, g, b = (int(v) for v in np.asarray(im)[10:40, 10:40].reshape(-1, 3).mean(axis=0))
    assert not (r > 150 and r - max(g, b) > 60), (r, g, b)  # not a red canvas
    with_bg = _layout(prompt="a red cube", background="a red wall",
                      objects=[LayoutObject(name="cube", phrase="a red cube", box=[0.1, 0.4, 0.4, 0.7])])
    r, g, b = (int(v) for v in np.asarray(with_bg)[10:40, 10:40].reshape(-1, 3).mean(axis=0))
    assert r - max(g, b) > 60  # a background that names a colour still gets it


def test_a_box_inside_another_is_drawn_over_it():
    table = LayoutObject(name="table", phrase="a brown table", box=[0.05, 0.3, 0.95, 0.95])
    cat = LayoutObject(name="cat", phrase="a white cat", box=[0.3, 0.55, 0.6, 0.9])  # y1 above the table's
    for objects in ([table, cat], [cat, table]):
        im = np.asarray(_layout(prompt="a cat under a table", objects=objects), np.float32)
        x0, y0, x1, y1 = pixel_rect(cat.box, 256, 256)
        centre = im[y0 + (y1 - y0) // 3:y0 + (y1 - y0) // 2, x0 + (x1 - x0) // 3:x1 - (x1 - x0) // 3]
        assert centre.mean() > 200, centre.mean()  # white cat, not brown table


def test_labels_stay_out_of_the_middle_where_scene_text_goes():
    def sign(name):
        return _layout(prompt="a sign", background="a plain wall",
                       objects=[LayoutObject(name=name, phrase="a teal sign", box=[0.2, 0.2, 0.8, 0.8])])

    labelled, bare = np.asarray(sign("sign"), np.int16), np.asarray(sign(""), np.int16)
    x0, y0, x1, y1 = pixel_rect([0.2, 0.2, 0.8, 0.8], 256, 256)
    h = y1 - y0
    assert np.abs(labelled - bare)[y0 + int(0.3 * h):y0 + int(0.7 * h)].max() == 0  # the middle is the sign's
    assert np.abs(labelled - bare)[y0 + int(0.7 * h):y1].max() > 100  # the label is at the bottom


def test_a_colour_edit_leaves_no_corners_of_the_old_shape():
    scene = _layout(prompt="a box", background="a plain grey wall",
                    objects=[LayoutObject(name="box", phrase="a red box", box=[0.2, 0.2, 0.8, 0.8])])
    out = PreviewRegionalRepaint().one(RegionalRepaintIn(
        image=scene, box=[0.2, 0.2, 0.8, 0.8], prompt="a green ball", strength=1.0)).image
    a = np.asarray(out, np.int16)
    x0, y0, x1, y1 = pixel_rect([0.2, 0.2, 0.8, 0.8], 256, 256)
    w, h = x1 - x0, y1 - y0
    spot = (slice(y0 + int(0.1 * h), y0 + int(0.14 * h)), slice(x0 + int(0.1 * w), x0 + int(0.14 * w)))

    def red(px):
        px = px.reshape(-1, 3)
        return (px[:, 0] - np.maximum(px[:, 1], px[:, 2])) > 60

    assert red(np.asarray(scene, np.int16)[spot]).all()  # the old box was red there ...
    assert not red(a[spot]).any(), a[spot].reshape(-1, 3).mean(axis=0)  # ... outside the new ball: red is gone
    outside = np.asarray(scene, np.int16)[5:20, 5:20]
    assert np.abs(a[5:20, 5:20] - outside).max() == 0  # the background around the box is untouched
