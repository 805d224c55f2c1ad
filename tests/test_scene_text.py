"""SceneVTG: text regions (quads), glyph rendering, the text pass, OCR verification, the recipe on preview and tiny.

The OCR tests read text back for real with EasyOCR's offline English weights (extra ``ocr``); without them they
skip, unless SCENEWRIGHT_REQUIRE_OCR=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.api import Engine
from agent.blueprint import Blueprint
from agent.executor import Executor
from agent.graph import validate_graph
from agent.recipes.scene_text import RegionError, compile_scene_text, text_regions
from agent.store import Store
from tools.base import NO_CONTEXT, Registry, Tool
from tools.ocr import easyocr_available, ned
from tools.preview_render import pixel_rect
from tools.roles import GlyphRenderIn, GlyphText, OcrReadIn, OcrReadOut
from tools.scene_text import GlyphRender, box_to_quad, font_for, region_box, validate_regions

PHRASE = "OPEN 24 HOURS"


def require_ocr():
    if not easyocr_available():
        if os.environ.get("SCENEWRIGHT_REQUIRE_OCR") == "1":
            pytest.fail("EasyOCR is not installed but SCENEWRIGHT_REQUIRE_OCR=1; pip install '.[ocr]'")
        pytest.skip("EasyOCR not installed (pip install '.[ocr]'); SCENEWRIGHT_REQUIRE_OCR=1 makes this fail")


def sign_blueprint(text: str = PHRASE, box=(0.1, 0.12, 0.9, 0.3)) -> Blueprint:
    return Blueprint(prompt=f'a shop front, a sign that says "{text}"', background="a brick wall", seed=5,
                     objects=[{"name": "door", "box": [0.35, 0.45, 0.65, 0.95]}],
                     texts=[{"content": text, "box": list(box), "style": "sign"}])


# --- geometry and validation -----------------------------------------------------------------------------------
def test_region_validation_messages():
    ok = {"text": "SALE", "quad": box_to_quad([0.1, 0.1, 0.4, 0.2])}
    assert validate_regions([ok], 512, 512) == []
    assert "leaves the canvas" in validate_regions([{"text": "SALE", "quad": [0, 0, 1.2, 0, 1, 1, 0, 1]}], 512, 512)[0]
    twisted = {"text": "SALE", "quad": [0.1, 0.1, 0.4, 0.2, 0.4, 0.1, 0.1, 0.2]}
    assert "convex" in validate_regions([twisted], 512, 512)[0]
    over = {"text": "BIG SALE", "quad": box_to_quad([0.2, 0.12, 0.5, 0.22])}
    assert any("overlap" in e for e in validate_regions([ok, over], 512, 512))
    long_text = {"text": "A VERY LONG SENTENCE THAT CANNOT FIT HERE AT ALL", "quad": box_to_quad([0.1, 0.1, 0.15, 0.3])}
    assert "does not fit" in validate_regions([long_text], 512, 512)[0]
    with pytest.raises(RegionError):
        compile_scene_text(sign_blueprint(), Engine("preview").registry, regions=[ok, over])


def test_glyph_warp_stays_in_quad_and_text_kept_exactly():
    base = Image.new("RGB", (256, 256), (120, 90, 60))
    quad = [0.1, 0.3, 0.9, 0.2, 0.92, 0.45, 0.12, 0.55]  # a tilted sign
    out = GlyphRender().run([GlyphRenderIn(image=base, text=GlyphText(content="Café №5", quad=quad))])[0]
    assert out.missing == "" and out.font.startswith("DejaVu")
    changed = np.any(np.asarray(out.image) != np.asarray(base), axis=-1)
    assert changed.sum() > 200
    assert not (changed & ~np.asarray(out.mask, bool)).any()  # ink only inside the (dilated) quad mask


def test_non_latin_text_needs_a_font_that_has_it():
    path, missing = font_for("Ελληνικά Кириллица")
    assert missing == ""  # DejaVu covers Greek and Cyrillic
    path, missing = font_for("東京 ラーメン")
    if missing:  # no CJK font on this machine: the tool says so clearly instead of dropping characters
        out = GlyphRender().run([GlyphRenderIn(image=Image.new("RGB", (128, 128)),
                                               text=GlyphText(content="東京", quad=box_to_quad([0.1, 0.1, 0.9, 0.4])))])
        assert out[0].missing == "東京"
    else:
        assert Path(path).exists()


def test_normalised_edit_distance():
    assert ned("OPEN 24 HOURS", "open 24  hours") == 0.0
    assert ned("OPEN", "0PEN") == 0.25
    assert ned("", "") == 0.0 and ned("ab", "") == 1.0


# --- the loop with a scripted OCR -------------------------------------------------------------------------------
class ScriptedOcr(Tool):
    """Reads a wrong text on the first pass (weight 1.0 glyphs) and the right one afterwards."""

    name = "ocr_read"
    version = "scripted-1"
    Input = OcrReadIn
    Output = OcrReadOut

    def __init__(self):
        self.calls = 0

    def run(self, batch, ctx=NO_CONTEXT):
        outs = []
        for b in batch:
            self.calls += 1
            text = "0PEN 2A H0URS" if self.calls == 1 else b.expected
            outs.append(OcrReadOut(text=text, confidence=0.9, score=1 - ned(b.expected, text), engine="scripted"))
        return outs


def test_verify_loop_retries_and_keeps_best(tmp_path):
    engine = Engine("preview", home=tmp_path)
    registry = Registry([engine.registry.get(n) for n in engine.registry.names()])
    registry.add(ScriptedOcr())
    graph = compile_scene_text(sign_blueprint(), registry, steps=4, threshold=0.95, max_iters=2)
    validate_graph(graph, registry)
    assert {"scene", "text.open_24_hours.glyph", "text.open_24_hours.verify", "text"} <= {n.id for n in graph.nodes}
    result = Executor(registry, Store(tmp_path)).run(graph)
    assert result.ok
    trace = result.loops["text.open_24_hours.verify"]
    assert trace[0]["score"] < 0.95 and trace[1]["score"] == 1.0 and trace[1]["kept"] and len(trace) == 2
    assert result.outputs["text.open_24_hours.verify"]["read"] == PHRASE


# --- real OCR on the preview profile -----------------------------------------------------------------------------
def test_preview_renders_quoted_phrase_and_ocr_reads_it_back(tmp_path):
    require_ocr()
    profile = Engine("preview").profile.model_copy(update={"scene_text": True})
    engine = Engine(profile, home=tmp_path)
    assert engine.registry.get("ocr_read").version.startswith("easyocr")
    bp = sign_blueprint()
    graph = engine.compile(bp)
    assert graph.output == "text.image" and any(n.id == "text.open_24_hours.verify" for n in graph.nodes)
    run = engine.start_run({"kind": "blueprint", "seed": bp.seed}, prompt=bp.prompt)
    outcome = engine.execute(graph, run, blueprint=bp)
    assert outcome.ok
    final = Image.open(outcome.image).convert("RGB")
    # read it back independently of the loop
    from tools.ocr import EasyOcrRead

    quad = box_to_quad(bp.texts[0].box)
    read = EasyOcrRead().run([OcrReadIn(image=final, quad=quad, expected=PHRASE)])[0]
    assert read.engine == "easyocr" and read.score >= 0.9, read
    assert outcome.loops["text.open_24_hours.verify"][-1]["score"] >= 0.9
    # only the text region changed relative to the composed scene
    store = Store(tmp_path)
    executor = Executor(engine.registry, store)
    composed = executor.run(graph.model_copy(update={"output": "compose.image"})).output
    before = np.asarray(executor.load_image(composed))
    after = np.asarray(final)
    x0, y0, x1, y1 = pixel_rect(region_box(quad, 512, 512), 512, 512)
    diff = np.any(before != after, axis=-1)
    assert diff.any()
    diff[y0:y1, x0:x1] = False
    assert not diff.any()


# --- tiny diffusers profile: the text pass is a real inpainting call -------------------------------------------
@pytest.fixture(scope="module")
def tiny_profile_file():
    from tests.tiny_models import write_tiny_profile

    return write_tiny_profile(Path(__file__).parent / ".cache" / "tiny-models-scene-text")


def test_tiny_profile_text_pass_changes_only_the_region(tiny_profile_file, tmp_path):
    engine = Engine("tiny", config=tiny_profile_file, home=tmp_path)
    assert engine.registry.get("text_inpaint").version.startswith("diffusers")
    bp = Blueprint.model_validate({**sign_blueprint(box=(0.05, 0.05, 0.95, 0.4)).model_dump(),
                                   "canvas": {"width": 64, "height": 64}})
    graph = compile_scene_text(bp, engine.registry, steps=2, max_iters=1)
    result = Executor(engine.registry, engine.store).run(graph)
    assert result.ok, result.failed
    scene = np.asarray(Executor(engine.registry, engine.store).load_image(result.outputs["scene"]["image"]))
    final = np.asarray(Executor(engine.registry, engine.store).load_image(result.output))
    x0, y0, x1, y1 = pixel_rect(region_box(text_regions(bp)[0]["quad"], 64, 64), 64, 64)
    diff = np.any(scene != final, axis=-1)
    assert diff[y0:y1, x0:x1].any()
    diff[y0:y1, x0:x1] = False
    assert not diff.any()
