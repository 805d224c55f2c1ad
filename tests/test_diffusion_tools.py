"""The diffusers / CLIP tools on tiny random models (CPU, no network).

Models are built once per session by ``tests.tiny_models`` and loaded back through the same ``from_pretrained``
paths a real profile uses. Images are noise; the tests check contracts: batching does not change a node's
pixels, a repaint changes only its box, GLIGEN matches diffusers' own pipeline, CLIP scores all crops in one
forward pass, and the model manager loads once, shares, evicts and explains missing weights.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")
np = pytest.importorskip("numpy")

from agent.profiles import get_profile  # noqa: E402
from tests.tiny_models import TINY_SIZE, write_tiny_profile  # noqa: E402
from tools.model_utils import box_pixels  # noqa: E402
from tools.models import ModelManager, ModelNotFound, model_identity, shared_manager  # noqa: E402
from tools.roles import (  # noqa: E402
    ImageToImageIn,
    LayoutToImageIn,
    RegionalRepaintIn,
    RegionCheckIn,
    TextToImageIn,
)

S = TINY_SIZE
STEPS = 2
# The suite runs on CPU float32; on a GPU machine run it again with SCENEWRIGHT_TEST_DEVICE=cuda (and
# SCENEWRIGHT_TEST_DTYPE=float16, SCENEWRIGHT_TEST_OFFLOAD=1) to check the same contracts there.
DEVICE = os.environ.get("SCENEWRIGHT_TEST_DEVICE", "cpu")
DTYPE = os.environ.get("SCENEWRIGHT_TEST_DTYPE", "float32")
OFFLOAD = os.environ.get("SCENEWRIGHT_TEST_OFFLOAD", "") == "1"
# batched vs alone: float round-off of batched kernels, in uint8 levels
MAX_PIXEL_DIFF = 2 if DTYPE == "float32" else 6


@pytest.fixture(scope="session")
def tiny_profile_path(tmp_path_factory) -> Path:
    return write_tiny_profile(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def profile(tiny_profile_path):
    return get_profile("tiny", tiny_profile_path)


@pytest.fixture(scope="session")
def manager(profile):
    return ModelManager(DEVICE, DTYPE, 16.0, OFFLOAD)


@pytest.fixture(scope="session")
def tools(profile, manager):
    from tools.diffusion import diffusers_tools

    return {t.name: t for t in diffusers_tools(profile, manager)}


def _arr(im):
    return np.asarray(im).astype(np.int16)


def _maxdiff(a, b) -> int:
    return int(np.abs(_arr(a) - _arr(b)).max())


@pytest.fixture(scope="session")
def scene(tools):
    inp = TextToImageIn(prompt="a house", width=S, height=S, steps=STEPS, seed=7)
    return tools["text_to_image"].run([inp])[0].image


# --- factory and profile -----------------------------------------------------------------------------------
def test_profile_and_factory(profile, tools):
    assert profile.backend == "diffusers" and profile.width == profile.height == S and profile.steps == STEPS
    assert sorted(tools) == ["image_to_image", "layout_to_image", "region_check", "regional_repaint", "text_to_image"]
    for t in tools.values():
        assert t.resource == "gpu" and t.max_batch >= 8
        ident = t.identity()
        assert ident["model"].startswith("local:") and ident == t.identity()  # stable
    assert tools["text_to_image"].identity()["scheduler"] == "DDIMScheduler"
    assert "ip_adapter" in tools["regional_repaint"].identity()


def test_factory_leaves_out_missing_roles_and_falls_back_for_layout(profile, manager, scene):
    from tools.diffusion import RegionalLayoutToImage, diffusers_tools

    p = profile.model_copy(update={"models": {"text_to_image": profile.models["text_to_image"]}})
    tools = {t.name: t for t in diffusers_tools(p, manager)}
    assert sorted(tools) == ["image_to_image", "layout_to_image", "text_to_image"]
    layout = tools["layout_to_image"]
    assert isinstance(layout, RegionalLayoutToImage) and layout.version != "diffusers-gligen-1"
    out = layout.run([LayoutToImageIn(prompt="a cat", objects=[{"name": "cat", "phrase": "a cat", "box": [0, 0, 1, 1]}],
                                      width=S, height=S, steps=STEPS)])
    assert out[0].image.size == (S, S)


def _regional(tools, manager, profile, objects, steps=STEPS, seeds=(7,)):
    from tools.diffusion import RegionalLayoutToImage

    tool = RegionalLayoutToImage(manager, profile.models["text_to_image"])
    return tool.run([LayoutToImageIn(prompt="a house", objects=objects, width=S, height=S, steps=steps, seed=s)
                     for s in seeds])


def test_regional_prompting_without_boxes_is_the_text_to_image_pipeline(tools, manager, profile, scene):
    """The loop is the pipeline's own: with no boxes the same seed gives the text-to-image pipeline's pixels."""
    alone = _regional(tools, manager, profile, [])[0].image
    assert _maxdiff(alone, scene) <= 1


def test_regional_prompting_steers_inside_the_box(tools, manager, profile):
    """One step, so the UNet's receptive field has not spread the fused prediction yet: the box's phrase changes the
    pixels inside the box far more than outside it."""
    box = [0.0, 0.0, 0.5, 1.0]
    plain = _regional(tools, manager, profile, [], steps=1)[0].image
    steered = _regional(tools, manager, profile, [{"name": "cat", "phrase": "a red cat", "box": box}], steps=1)[0].image
    d = np.abs(_arr(plain) - _arr(steered)).mean(axis=2)
    inside, outside = d[:, : S // 2 - 8].mean(), d[:, S // 2 + 8 :].mean()
    assert inside > 0 and inside > 3 * outside, (inside, outside)


def test_regional_prompting_batched_equals_alone(tools, manager, profile):
    objs = [{"name": "cat", "phrase": "a cat", "box": [0.1, 0.2, 0.5, 0.9]}]
    both = _regional(tools, manager, profile, objs, seeds=(3, 4))
    alone = _regional(tools, manager, profile, objs, seeds=(4,))
    assert _maxdiff(both[1].image, alone[0].image) <= 1
    assert _maxdiff(both[0].image, both[1].image) > 10


# --- text_to_image -----------------------------------------------------------------------------------------
def test_text_to_image_batched_equals_one_by_one(tools):
    t2i = tools["text_to_image"]
    inputs = [
        TextToImageIn(prompt="a red cat", width=S, height=S, steps=STEPS, seed=1),
        TextToImageIn(prompt="a blue dog on the house", negative_prompt="blurry", width=S, height=S, steps=STEPS,
                      seed=2),
        TextToImageIn(prompt="a red cat", width=S, height=S, steps=STEPS, seed=3),
    ]
    batched = t2i.run(inputs)
    alone = [t2i.run([x])[0] for x in inputs]
    assert [o.image.size for o in batched] == [(S, S)] * 3
    for b, a in zip(batched, alone):
        assert _maxdiff(b.image, a.image) <= MAX_PIXEL_DIFF
    assert _maxdiff(batched[0].image, batched[2].image) > 10  # the seed matters


def test_batch_key_reads_encoded_inputs(tools):
    t2i, rp = tools["text_to_image"], tools["regional_repaint"]
    assert t2i.batch_key({"prompt": "a"}) == t2i.batch_key({"prompt": "b", "steps": 20, "seed": 4})
    assert t2i.batch_key({"prompt": "a", "steps": 4}) != t2i.batch_key({"prompt": "a"})
    img = {"$artifact": "ab" * 32, "kind": "image", "size": [64, 64]}
    big = {"$artifact": "cd" * 32, "kind": "image", "size": [128, 64]}
    base = {"image": img, "box": [0, 0, 1, 1], "prompt": "x"}
    assert rp.batch_key(base) == rp.batch_key({**base, "prompt": "y", "box": [0.1, 0.1, 0.2, 0.2], "seed": 3})
    assert rp.batch_key(base) != rp.batch_key({**base, "image": big})
    assert rp.batch_key(base) != rp.batch_key({**base, "strength": 0.5})
    assert rp.batch_key(base) != rp.batch_key({**base, "reference": img})  # IP-Adapter on: refs run apart


# --- layout_to_image (GLIGEN) ------------------------------------------------------------------------------
LAYOUT_A = [{"name": "cat", "phrase": "a cat", "box": [0.1, 0.1, 0.5, 0.5]},
            {"name": "tree", "phrase": "a tree", "box": [0.5, 0.4, 0.9, 0.9]}]
LAYOUT_B = [{"name": "car", "phrase": "a red car", "box": [0.0, 0.5, 1.0, 1.0]}]


def test_gligen_size_batching_and_parity_with_pipeline(tools):
    l2i = tools["layout_to_image"]
    n = 4  # int(0.3 · 4) = 1 grounded step in diffusers' pipeline too
    inputs = [
        LayoutToImageIn(prompt="a cat and a tree", objects=LAYOUT_A, width=S, height=S, steps=n, seed=1),
        LayoutToImageIn(prompt="a red car", background="a street", objects=LAYOUT_B, width=S, height=S, steps=n,
                        seed=2),
        LayoutToImageIn(prompt="nothing in particular", objects=[], width=S, height=S, steps=n, seed=3),
    ]
    batched = l2i.run(inputs)
    assert [o.image.size for o in batched] == [(S, S)] * 3
    for b, x in zip(batched, inputs):
        assert _maxdiff(b.image, l2i.run([x])[0].image) <= MAX_PIXEL_DIFF
    # the per-sample denoising loop gives what diffusers' own GLIGEN pipeline gives for that layout
    ref = l2i.pipeline()(
        prompt="a cat and a tree", negative_prompt="", gligen_phrases=["a cat", "a tree"],
        gligen_boxes=[o["box"] for o in LAYOUT_A], gligen_scheduled_sampling_beta=0.3, height=S, width=S,
        num_inference_steps=n, guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(1),
    ).images[0]
    assert _maxdiff(batched[0].image, ref) <= MAX_PIXEL_DIFF


def test_gligen_boxes_matter(tools):
    l2i = tools["layout_to_image"]
    a = l2i.run([LayoutToImageIn(prompt="a cat", objects=LAYOUT_A, width=S, height=S, steps=STEPS, seed=1)])[0]
    moved = [{**o, "box": [1 - o["box"][2], o["box"][1], 1 - o["box"][0], o["box"][3]]} for o in LAYOUT_A]
    b = l2i.run([LayoutToImageIn(prompt="a cat", objects=moved, width=S, height=S, steps=STEPS, seed=1)])[0]
    c = l2i.run([LayoutToImageIn(prompt="a cat", objects=[], width=S, height=S, steps=STEPS, seed=1)])[0]
    assert _maxdiff(a.image, b.image) > 0 and _maxdiff(a.image, c.image) > 0


# --- regional_repaint --------------------------------------------------------------------------------------
def _inside(box, size):
    w, h = size
    x0, y0, x1, y1 = box_pixels(box, w, h)
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def test_regional_repaint_changes_only_the_box(tools, scene):
    rp = tools["regional_repaint"]
    boxes = [[0.25, 0.25, 0.75, 0.75], [0.1, 0.05, 0.2, 0.2], [0.6, 0.0, 1.0, 0.37]]  # the 2nd is padded (< 10 %)
    inputs = [RegionalRepaintIn(image=scene, box=b, prompt="a dog", steps=STEPS, strength=1.0, seed=i)
              for i, b in enumerate(boxes)]
    outs = rp.run(inputs)
    orig = np.asarray(scene)
    for o, b in zip(outs, boxes):
        got = np.asarray(o.image)
        assert o.image.size == scene.size and o.image.mode == scene.mode
        m = _inside(b, scene.size)
        assert np.array_equal(got[~m], orig[~m])  # byte-identical outside the box
        assert np.abs(got[m].astype(int) - orig[m]).mean() > 1.0  # and repainted inside
    for o, x in zip(outs, inputs):
        assert _maxdiff(o.image, rp.run([x])[0].image) <= MAX_PIXEL_DIFF


def test_repaint_mask_padding():
    from tools.diffusion import repaint_mask

    mask, px = repaint_mask([0.4, 0.4, 0.5, 0.5], 512, 512)  # 1 % of the image: padded by 20 px
    assert px == (204, 204, 256, 256)
    assert np.asarray(mask).astype(bool).sum() == (52 + 40) ** 2
    mask, px = repaint_mask([0.0, 0.0, 0.5, 0.5], 512, 512)  # 25 %: not padded
    assert np.asarray(mask).astype(bool).sum() == 256 * 256


def test_regional_repaint_reference_through_ip_adapter(tools, scene):
    rp = tools["regional_repaint"]
    from PIL import Image

    box = [0.2, 0.2, 0.8, 0.8]
    kw = dict(image=scene, box=box, prompt="a cat", steps=STEPS, strength=1.0, seed=5)
    plain = rp.run([RegionalRepaintIn(**kw)])[0].image
    red = rp.run([RegionalRepaintIn(**kw, reference=Image.new("RGB", (48, 48), (220, 20, 20)))])[0].image
    m = _inside(box, scene.size)
    assert np.array_equal(np.asarray(red)[~m], np.asarray(scene)[~m])
    assert _maxdiff(plain, red) > 0  # the reference reaches the UNet


def test_image_to_image_shares_text_to_image_weights(tools, manager, scene):
    i2i, t2i = tools["image_to_image"], tools["text_to_image"]
    out = i2i.run([ImageToImageIn(image=scene, prompt="a house at night", steps=STEPS, strength=0.6, seed=1)])
    assert out[0].image.size == scene.size
    assert i2i.pipeline().unet is t2i.pipeline().unet


# --- region_check (CLIP) -----------------------------------------------------------------------------------
def test_region_check_scores_all_crops_in_one_forward(tools, scene):
    rc = tools["region_check"]
    model, _ = rc.model()
    calls = {"model": 0, "vision": 0}
    hooks = [
        model.register_forward_hook(lambda *a: calls.__setitem__("model", calls["model"] + 1)),
        model.vision_model.register_forward_hook(lambda *a: calls.__setitem__("vision", calls["vision"] + 1)),
    ]
    try:
        inputs = [RegionCheckIn(image=scene, box=[0.1 * i, 0.1 * i, 0.5 + 0.1 * i, 0.5 + 0.1 * i], text=t)
                  for i, t in enumerate(["a red cat", "a tree", "a red cat", "a blue car " * 40, "sky"])]
        outs = rc.run(inputs)
    finally:
        for h in hooks:
            h.remove()
    assert calls == {"model": 1, "vision": 1}
    assert len(outs) == 5 and all(0.0 <= o.score <= 1.0 for o in outs)
    alone = rc.run([inputs[1]])[0].score
    assert abs(alone - outs[1].score) < (1e-4 if DTYPE == "float32" else 1e-2)


def test_region_check_score_is_clamped_cosine(tools, scene):
    rc = tools["region_check"]
    model, proc = rc.model()
    crop = scene.crop(box_pixels([0, 0, 0.5, 0.5], *scene.size))
    enc = proc(text=["a red cat"], images=[crop], return_tensors="pt", padding=True)
    dev = next(model.parameters()).device
    enc = {k: v.to(dev) for k, v in enc.items()}
    enc["pixel_values"] = enc["pixel_values"].to(model.dtype)
    with torch.no_grad():
        o = model(**enc)
    cos = float(torch.nn.functional.cosine_similarity(o.image_embeds.float(), o.text_embeds.float()).item())
    got = rc.run([RegionCheckIn(image=scene, box=[0, 0, 0.5, 0.5], text="a red cat")])[0].score
    assert abs(got - min(max(cos, 0.0), 1.0)) < 1e-5


# --- the model manager -------------------------------------------------------------------------------------
def test_manager_loads_once_and_tools_share(profile, tools, manager):
    from tools.diffusion import RegionalLayoutToImage, TextToImage

    t2i = tools["text_to_image"]
    other = RegionalLayoutToImage(manager, profile.models["text_to_image"])
    assert other.pipeline() is t2i.pipeline() is TextToImage(manager, profile.models["text_to_image"]).pipeline()
    key = manager.key("text_to_image", profile.models["text_to_image"])
    assert manager.loads.count(key) == 1
    # every profile with the same device/dtype/offload gets the same process-wide manager
    assert shared_manager("cpu", "float32", 1.0) is shared_manager("cpu", "float32", 2.0)


def test_manager_evicts_least_recently_used_under_budget(profile):
    from tools.diffusion import ImageToImage, RegionalRepaint, TextToImage

    mgr = ModelManager("cpu", "float32", memory_budget_gb=0.005)  # 5 MB: less than one tiny pipeline (~6.6 MB)
    t2i = TextToImage(mgr, profile.models["text_to_image"])
    i2i = ImageToImage(mgr, profile.models["text_to_image"])
    rp = RegionalRepaint(mgr, profile.models["inpaint"])
    t2i.pipeline()
    i2i.pipeline()  # shares every tensor with t2i: nothing is evicted, the size counts once
    assert len(mgr.loaded()) == 2 and mgr.evictions == []
    assert mgr.total_bytes() < 8e6
    rp.pipeline()  # over budget: t2i and the img2img view of it go together, the new model stays
    assert [k[0] for k in mgr.loaded()] == ["inpaint"]
    assert {k[0] for k in mgr.evictions} == {"text_to_image", "image_to_image"}
    t2i.pipeline()  # comes back (reloaded), inpaint goes
    assert [k[0] for k in mgr.loaded()] == ["text_to_image"]
    assert [k[0] for k in mgr.loads].count("text_to_image") == 2
    mgr.memory_budget_gb = 1.0
    rp.pipeline()
    i2i.pipeline()
    i2i.free_memory()  # out of memory in image_to_image: its weights (shared with text_to_image) stay
    assert sorted(k[0] for k in mgr.loaded()) == ["image_to_image", "text_to_image"]
    mgr.free_memory()
    assert mgr.loaded() == []


def test_missing_weights_error_names_the_model(tmp_path):
    from tools.clip_check import ClipRegionCheck
    from tools.diffusion import RegionalRepaint, TextToImage

    mgr = ModelManager("cpu", "float32", 1.0)
    with pytest.raises(ModelNotFound) as err:
        TextToImage(mgr, "nobody-here/no-such-model").pipeline()
    msg = str(err.value)
    assert "'nobody-here/no-such-model'" in msg and "'text_to_image'" in msg
    assert "scenewright models pull" in msg
    assert "\n" not in msg
    with pytest.raises(ModelNotFound, match="clip"):
        ClipRegionCheck(mgr, "nobody-here/no-clip").model()
    missing = str(tmp_path / "nowhere" / "sd")
    with pytest.raises(ModelNotFound) as err:
        RegionalRepaint(mgr, missing).pipeline()
    assert missing in str(err.value) and "'inpaint'" in str(err.value)


def test_missing_ip_adapter_is_named(profile, tmp_path):
    from tools.diffusion import RegionalRepaint

    mgr = ModelManager("cpu", "float32", 1.0)
    rp = RegionalRepaint(mgr, profile.models["inpaint"], ip_adapter=f"{tmp_path}/no-adapter::models/x.safetensors")
    with pytest.raises(ModelNotFound, match="ip_adapter"):
        rp.pipeline()


def test_identity_tracks_config_and_weights(profile, tmp_path):
    src = Path(profile.models["text_to_image"])
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    assert model_identity(str(copy)) == model_identity(str(src))  # content, not path or mtime
    cfg = copy / "scheduler" / "scheduler_config.json"
    cfg.write_text(cfg.read_text().replace('"steps_offset": 1', '"steps_offset": 0'))
    assert model_identity(str(copy)) != model_identity(str(src))
    assert model_identity("someone/some-model") == "someone/some-model@main"  # not cached locally
    # a fine-tune saved over a folder with the same shapes (same file sizes) gets a new identity too
    from safetensors.torch import load_file, save_file

    tuned = tmp_path / "tuned"
    shutil.copytree(src, tuned)
    weights = tuned / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    name = next(iter(state))
    state[name] = state[name] + 1.0
    save_file(state, str(weights), metadata={"format": "pt"})
    assert weights.stat().st_size == (src / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert model_identity(str(tuned)) != model_identity(str(src))


def test_importing_the_tools_does_not_import_torch():
    code = ("import sys, tools.diffusion, tools.clip_check, tools.models; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; print(bad); assert not bad")
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": path})
    assert res.returncode == 0, res.stdout + res.stderr


# --- through the executor ----------------------------------------------------------------------------------
def test_executor_batches_repaints_and_checks(tools, tmp_path):
    """A small graph through the real executor: encoded inputs reach batch_key, repaints share one call."""
    from agent.executor import Executor
    from agent.graph import Graph, ToolNode
    from agent.store import Store
    from tools.base import Registry

    reg = Registry(list(tools.values()))
    boxes = [[0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 0.5], [0.0, 0.5, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0]]
    nodes = [ToolNode(id="scene", tool="layout_to_image", version=tools["layout_to_image"].version,
                      inputs={"prompt": "a cat and a tree", "objects": LAYOUT_A, "width": S, "height": S,
                              "steps": STEPS})]
    for i, b in enumerate(boxes):
        nodes.append(ToolNode(id=f"fix{i}", tool="regional_repaint", version=tools["regional_repaint"].version,
                              inputs={"image": {"ref": "scene.image"}, "box": b, "prompt": "a dog", "steps": STEPS}))
        nodes.append(ToolNode(id=f"check{i}", tool="region_check", version=tools["region_check"].version,
                              inputs={"image": {"ref": f"fix{i}.image"}, "box": b, "text": "a dog"}))
    events = []
    ex = Executor(reg, Store(tmp_path / "home"), on_event=events.append)
    res = ex.run(Graph(seed=3, nodes=nodes, output="fix0.image"))
    assert res.ok, res.failed
    batches = {e["node"]: e.get("batch") for e in events if e["event"] == "started"}
    assert all(batches[f"fix{i}"] == 4 for i in range(4))
    assert all(batches[f"check{i}"] == 4 for i in range(4))
    again = Executor(reg, Store(tmp_path / "home")).run(Graph(seed=3, nodes=nodes, output="fix0.image"))
    assert again.cached_nodes == again.total_nodes


def test_tiny_profile_runs_the_llm_blueprint_recipe(tiny_profile_path, tmp_path):
    """The whole engine on the tiny profile: diffusers tools fill their roles, repaints and checks batch."""
    api = pytest.importorskip("agent.api")
    from agent.blueprint import Blueprint

    events: list[dict] = []
    engine = api.Engine("tiny", config=tiny_profile_path, home=tmp_path / "home", on_event=events.append)
    assert type(engine.registry.get("regional_repaint")).__module__ == "tools.diffusion"
    bp = Blueprint.model_validate({
        "prompt": "a red cat next to a blue car", "canvas": {"width": S, "height": S}, "background": "a street",
        "objects": [{"name": "cat", "description": "a red cat", "box": [0.05, 0.3, 0.45, 0.9]},
                    {"name": "car", "description": "a blue car", "box": [0.5, 0.4, 0.95, 0.9]},
                    {"name": "sky", "description": "a blue sky", "box": [0.0, 0.0, 1.0, 0.25]}],
        "seed": 3,
    })
    out = engine.run_blueprint(bp)
    assert out.ok, out.failed
    repaints = [e for e in events if e["event"] == "started" and e["tool"] == "regional_repaint"]
    assert repaints and all(e["batch"] == 3 for e in repaints)  # every failing box of an iteration in one call
    again = engine.run_blueprint(bp)
    assert again.ok and again.cached_nodes == again.total_nodes


def test_scheduler_override_is_a_view_on_the_same_weights(profile, tools, manager):
    from tools.diffusion import TextToImage

    base = tools["text_to_image"]
    dpm = TextToImage(manager, profile.models["text_to_image"], scheduler="DPMSolverMultistepScheduler")
    assert dpm.identity()["scheduler"] == "DPMSolverMultistepScheduler" != base.identity()["scheduler"]
    out = dpm.run([TextToImageIn(prompt="a cat", width=S, height=S, steps=STEPS, seed=1)])
    assert out[0].image.size == (S, S)
    assert dpm.pipeline().unet is base.pipeline().unet
    assert type(base.pipeline().scheduler).__name__ == "DDIMScheduler"


# --- the tool context: per-step progress and cancellation ----------------------------------------------------------
def test_progress_is_reported_per_denoising_step(tools):
    from tools.base import ToolContext

    seen = []
    ctx = ToolContext(progress=lambda step, total: seen.append((step, total)))
    tools["text_to_image"].run([TextToImageIn(prompt="a cat", width=S, height=S, steps=3, seed=1)], ctx)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    seen.clear()
    tools["layout_to_image"].run([LayoutToImageIn(prompt="a cat", objects=LAYOUT_A, width=S, height=S, steps=2,
                                                  seed=1)], ctx)  # fmt: skip
    assert seen == [(1, 2), (2, 2)]


@pytest.mark.parametrize("name", ["text_to_image", "layout_to_image"])
def test_a_cancelled_call_stops_at_the_next_step_and_returns_nothing(tools, name):
    from tools.base import Cancelled, ToolContext

    seen = []
    ctx = ToolContext(progress=lambda step, total: seen.append(step), cancelled=lambda: len(seen) >= 1)
    inp = (TextToImageIn(prompt="a cat", width=S, height=S, steps=4, seed=1) if name == "text_to_image" else
           LayoutToImageIn(prompt="a cat", objects=LAYOUT_A, width=S, height=S, steps=4, seed=1))  # fmt: skip
    with pytest.raises(Cancelled, match="stopped after step 1"):
        tools[name].run([inp], ctx)
    assert seen == [1]  # steps 2..4 never ran


def test_the_profile_scheduler_reaches_every_diffusion_tool(profile, manager, tiny_profile_path, tmp_path):
    import diffusers

    from agent.profiles import SCHEDULERS, ProfileError
    from tools.diffusion import diffusers_tools

    assert all(hasattr(diffusers, name) for name in SCHEDULERS)  # every name a profile may use is a real class
    dpm = {t.name: t for t in diffusers_tools(profile.model_copy(update={"scheduler": "DPMSolverMultistepScheduler"}),
                                              manager)}
    for name in ("text_to_image", "image_to_image", "layout_to_image", "regional_repaint"):
        assert dpm[name].identity()["scheduler"] == "DPMSolverMultistepScheduler", name  # so in the cache keys
    assert type(dpm["text_to_image"].pipeline().scheduler).__name__ == "DPMSolverMultistepScheduler"
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'[profiles.dpm]\nextends = "tiny"\nscheduler = "DPMSolverMultistepScheduler"\n'
                   f'[profiles.bad]\nextends = "tiny"\nscheduler = "FastScheduler"\n')
    text = tiny_profile_path.read_text() + "\n" + cfg.read_text()
    cfg.write_text(text)
    with pytest.raises(ProfileError) as err:
        get_profile("dpm", cfg)
    msg = str(err.value)
    assert "'FastScheduler'" in msg and "DPMSolverMultistepScheduler" in msg and "\n" not in msg
