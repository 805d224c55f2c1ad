"""The built-in profiles as a GPU user meets them: the real Hub repos' file layouts, loaded offline.

``tests/hub_fixtures.py`` writes a Hugging Face cache with every repo the ``sd15`` and ``sdxl`` profiles name
(same ids, subfolders, file names, variants, revisions; tiny random weights). These tests point ``HF_HUB_CACHE``
at it and go through the real code: the weight resolver, ``from_pretrained`` of every role, ``scenewright
models`` / ``pull`` / ``convert``, ``generate`` end to end on CPU (profiles that ``extends`` the built-in ones,
so the model ids and revisions are the shipped ones), and replay of those runs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from tests import hub_fixtures  # noqa: E402
from agent.cli import app  # noqa: E402
from agent.profiles import get_profile  # noqa: E402
from tools.weights import ModelSpec, parse_spec, plan_files, resolve  # noqa: E402

CACHE = Path(__file__).parent / ".cache" / hub_fixtures.FIXTURE_VERSION
CPU_PROFILES = """
[profiles.sd15-cpu]
extends = "sd15"
device = "cpu"
dtype = "float32"
steps = 2
width = 64
height = 64
memory_budget_gb = 2
planner = { kind = "rule" }

[profiles.sdxl-cpu]
extends = "sdxl"
device = "cpu"
dtype = "float32"
steps = 2
width = 64
height = 64
memory_budget_gb = 2
planner = { kind = "rule" }

[profiles.gligen-main]
extends = "sd15-cpu"
[profiles.gligen-main.models]
layout_to_image = "masterful/gligen-1-4-generation-text-box"
"""


@pytest.fixture(scope="session")
def hub_cache() -> Path:
    return hub_fixtures.build_hub_cache(CACHE)


@pytest.fixture
def hub(hub_cache, tmp_path, monkeypatch):
    """HF_HUB_CACHE → the fixture cache; a fresh home; a config with CPU versions of the built-in profiles."""
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SCENEWRIGHT_CONVERTED", str(tmp_path / "converted"))
    config = tmp_path / "profiles.toml"
    config.write_text(CPU_PROFILES)
    monkeypatch.setenv("SCENEWRIGHT_CONFIG", str(config))  # replay finds the recorded profile by name
    return config


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


# --- the resolver on the real repos' file lists (no weights needed) ------------------------------------------------
def _listing(names: list[str]) -> dict[str, int]:
    return {n: 1 for n in names}


INDEX = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
         "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
         "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"],
         "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
         "feature_extractor": ["transformers", "CLIPImageProcessor"]}  # fmt: skip


def test_inpainting_repo_loads_the_fp16_variant_and_never_the_pickles():
    files = _listing([
        "model_index.json", "sd-v1-5-inpainting.ckpt", "scheduler/scheduler_config.json", "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
        "unet/diffusion_pytorch_model.fp16.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.bin",
        "vae/diffusion_pytorch_model.fp16.safetensors", "text_encoder/config.json", "text_encoder/pytorch_model.bin",
        "text_encoder/model.fp16.safetensors", "safety_checker/model.fp16.safetensors",
        "feature_extractor/preprocessor_config.json",
    ])  # fmt: skip
    plan = plan_files(files, ModelSpec("stable-diffusion-v1-5/stable-diffusion-inpainting"), INDEX)
    assert plan.variant == "fp16" and not plan.pickled and not plan.problem
    assert sorted(plan.weights) == ["text_encoder/model.fp16.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
                                    "vae/diffusion_pytorch_model.fp16.safetensors"]
    assert not any(f.endswith((".bin", ".ckpt")) or f.startswith("safety_checker") for f in plan.needed)
    assert "feature_extractor/preprocessor_config.json" in plan.needed


def test_gligen_main_is_pickled_only_and_its_pr_revision_is_not():
    main = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin",
            "unet/diffusion_pytorch_model.fp16.bin", "vae/config.json", "vae/diffusion_pytorch_model.bin",
            "text_encoder/config.json", "text_encoder/pytorch_model.bin", "tokenizer/vocab.json"]
    plan = plan_files(_listing(main), ModelSpec("masterful/gligen-1-4-generation-text-box"), INDEX)
    assert sorted(plan.pickled) == ["text_encoder", "unet", "vae"]
    assert "unet/diffusion_pytorch_model.bin" in plan.needed  # what `models convert` reads
    pr = main + ["unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                 "text_encoder/model.safetensors"]
    plan = plan_files(_listing(pr), ModelSpec("masterful/gligen-1-4-generation-text-box", "refs/pr/2"), INDEX)
    assert not plan.pickled and plan.variant is None and "unet/diffusion_pytorch_model.safetensors" in plan.weights


def test_sdxl_repo_skips_onnx_openvino_flax_and_single_file_checkpoints():
    index = {"unet": ["diffusers", "U"], "vae": ["diffusers", "V"], "text_encoder": ["transformers", "T"],
             "text_encoder_2": ["transformers", "T"], "tokenizer": ["transformers", "K"],
             "tokenizer_2": ["transformers", "K"], "scheduler": ["diffusers", "S"]}
    files = _listing([
        "model_index.json", "sd_xl_base_1.0.safetensors", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors", "unet/model.onnx", "unet/model.onnx_data",
        "unet/openvino_model.bin", "unet/diffusion_flax_model.msgpack", "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors", "vae_1_0/config.json", "vae_1_0/diffusion_pytorch_model.safetensors",
        "vae_decoder/model.onnx", "text_encoder/config.json", "text_encoder/model.safetensors",
        "text_encoder/openvino_model.bin", "text_encoder_2/config.json", "text_encoder_2/model.safetensors",
        "tokenizer/vocab.json", "tokenizer_2/vocab.json", "scheduler/scheduler_config.json",
    ])  # fmt: skip
    plan = plan_files(files, ModelSpec("stabilityai/stable-diffusion-xl-base-1.0"), index)
    assert plan.variant is None and not plan.pickled
    assert sorted(plan.weights) == ["text_encoder/model.safetensors", "text_encoder_2/model.safetensors",
                                    "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"]
    assert not any(f.startswith(("vae_1_0", "vae_decoder")) or f.endswith((".onnx", ".msgpack", "openvino_model.bin"))
                   for f in plan.needed)


def test_specs_keep_revisions_and_single_files_apart():
    s = parse_spec("h94/IP-Adapter@018e402774aeeddd60609b4ecdb7e298259dc729::sdxl_models/ip-adapter_sdxl.safetensors")
    assert (s.repo, s.revision, s.file) == ("h94/IP-Adapter", "018e402774aeeddd60609b4ecdb7e298259dc729",
                                            "sdxl_models/ip-adapter_sdxl.safetensors")
    s = parse_spec("masterful/gligen-1-4-generation-text-box@refs/pr/2")
    assert (s.repo, s.revision, s.local) == ("masterful/gligen-1-4-generation-text-box", "refs/pr/2", False)
    assert parse_spec("/models/my@folder").local and parse_spec("/models/my@folder").revision is None


# --- every built-in role, from the Hub-layout cache -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["sd15", "sdxl"])
def test_every_builtin_role_resolves_to_its_pinned_revision(hub, name):
    from agent.model_roles import role_status

    rows = {r.role: r for r in role_status(get_profile(name))}
    assert rows["planner"].status == "remote"
    models = get_profile(name).models
    for role, spec in models.items():
        r = rows[role]
        assert r.status == "ok", (role, r.message)
        s = parse_spec(spec)
        assert r.identity.startswith(f"{s.repo}@{hub_fixtures.commit_of(s.repo, s.revision or 'main')}")
    if name == "sd15":
        assert rows["inpaint"].variant == "fp16" and rows["inpaint"].identity.endswith("+fp16")
        assert rows["text_to_image"].variant is None
        assert not any("safety_checker" in f or f.endswith((".bin", ".ckpt")) for r in rows.values() for f in r.files)
    else:
        assert rows["layout_to_image"].status == "stand-in" and "boxes" in rows["layout_to_image"].message


@pytest.mark.parametrize("name", ["sd15-cpu", "sdxl-cpu"])
def test_every_builtin_role_loads_through_from_pretrained_without_unpickling(hub, name, monkeypatch):
    from tools.diffusion import diffusers_tools
    from tools.models import ModelManager

    def no_unpickling(*a, **k):
        raise AssertionError("a loader called torch.load: weights must come from safetensors")

    monkeypatch.setattr(torch, "load", no_unpickling)
    profile = get_profile(name, hub)
    tools = diffusers_tools(profile, ModelManager("cpu", "float32", 4.0))
    loaded = set()
    for tool in tools:
        obj = tool.model() if hasattr(tool, "model") else tool.pipeline()
        assert obj is not None
        loaded.add(tool.name)
    assert {"text_to_image", "image_to_image", "layout_to_image", "regional_repaint", "region_check"} <= loaded
    repaint = next(t for t in tools if t.name == "regional_repaint")
    pipe = repaint.pipeline()
    assert pipe.unet.encoder_hid_proj is not None  # the IP-Adapter is in


def test_sdxl_tools_run_text_to_image_img2img_inpaint_with_a_reference(hub):
    from PIL import Image

    from tools.diffusion import diffusers_tools
    from tools.models import ModelManager
    from tools.roles import ImageToImageIn, RegionalRepaintIn, TextToImageIn

    tools = {t.name: t for t in diffusers_tools(get_profile("sdxl-cpu", hub), ModelManager("cpu", "float32", 4.0))}
    (base,) = tools["text_to_image"].run([TextToImageIn(prompt="a red cat", width=64, height=64, steps=2, seed=1)])
    assert base.image.size == (64, 64)
    (img2img,) = tools["image_to_image"].run([ImageToImageIn(image=base.image, prompt="a blue cat", steps=2, seed=1)])
    assert img2img.image.size == (64, 64) and img2img.image.tobytes() != base.image.tobytes()
    ref = Image.new("RGB", (64, 64), (20, 200, 40))
    box = [0.25, 0.25, 0.75, 0.75]
    repaint = tools["regional_repaint"]  # inputs with and without a reference never share a call (batch_key)
    (plain,) = repaint.run([RegionalRepaintIn(image=base.image, box=box, prompt="a dog", steps=2, seed=3)])
    (with_ref,) = repaint.run([RegionalRepaintIn(image=base.image, box=box, prompt="a dog", steps=2, seed=3, reference=ref)])
    assert plain.image.crop((0, 0, 64, 8)).tobytes() == base.image.crop((0, 0, 64, 8)).tobytes()  # outside the box
    assert plain.image.tobytes() != with_ref.image.tobytes()  # the reference reached the UNet through the adapter


def test_sdxl_boxes_steer_the_global_pass_by_regional_prompting(hub):
    """SDXL has no layout model: the boxes go through regional prompting on the base model (tools/regional.py);
    with no boxes it is the SDXL pipeline's own output, with a box the pixels change."""
    from tools.diffusion import RegionalLayoutToImage, diffusers_tools
    from tools.models import ModelManager
    from tools.roles import LayoutToImageIn, TextToImageIn

    tools = {t.name: t for t in diffusers_tools(get_profile("sdxl-cpu", hub), ModelManager("cpu", "float32", 4.0))}
    layout = tools["layout_to_image"]
    assert isinstance(layout, RegionalLayoutToImage)
    (base,) = tools["text_to_image"].run([TextToImageIn(prompt="a red cat", width=64, height=64, steps=2, seed=1)])
    args = {"prompt": "a red cat", "width": 64, "height": 64, "steps": 2, "seed": 1}
    (plain,) = layout.run([LayoutToImageIn(**args)])
    box = {"name": "dog", "phrase": "a blue dog", "box": [0.0, 0.0, 0.5, 1.0]}
    (steered,) = layout.run([LayoutToImageIn(**args, objects=[box])])
    a, b, c = (np.asarray(x.image).astype(int) for x in (base, plain, steered))
    assert np.abs(a - b).max() <= 1
    assert np.abs(b - c).max() > 0


# --- the commands ------------------------------------------------------------------------------------------------------
def test_models_lists_each_role_with_status_and_size(hub):
    r = cli("models", "--profile", "gligen-main", "--config", hub, "--json")
    assert r.exit_code == 0, r.output
    rows = {row["role"]: row for row in json.loads(r.stdout)["roles"]}
    assert rows["layout_to_image"]["status"] == "needs-conversion"
    assert rows["inpaint"]["status"] == "ok" and rows["inpaint"]["variant"] == "fp16" and rows["inpaint"]["size"] > 0
    assert rows["planner"]["status"] == "built-in"
    text = cli("models", "--profile", "sd15", "--config", hub)
    assert text.exit_code == 0 and "refs/pr/2" in text.stdout and "ok" in text.stdout


def test_generate_with_missing_weights_names_the_pull_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    config = tmp_path / "p.toml"
    config.write_text(CPU_PROFILES)
    r = cli("generate", "a cat and a dog", "--profile", "sd15-cpu", "--config", config)
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line and "scenewright models pull --profile sd15-cpu" in line
    assert not (tmp_path / "home" / "runs").exists() or not any((tmp_path / "home" / "runs").iterdir())


def test_pickled_only_repo_is_refused_then_converted_once(hub, tmp_path):
    r = cli("generate", "a red cat", "--profile", "gligen-main", "--config", hub)
    assert r.exit_code == 2 and "scenewright models convert masterful/gligen-1-4-generation-text-box" in r.output
    r = cli("models", "convert", "masterful/gligen-1-4-generation-text-box")
    assert r.exit_code == 0, r.output
    converted = Path(r.stdout.split("converted:", 1)[1].strip())
    assert (converted / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(converted.rglob("*.bin"))
    res = resolve("masterful/gligen-1-4-generation-text-box")
    assert res.ok and res.converted and res.identity().endswith("+converted")
    r = cli("generate", "a red cat", "--profile", "gligen-main", "--config", hub, "--json")
    assert r.exit_code == 0, r.output
    assert cli("models", "convert", "masterful/gligen-1-4-generation-text-box@refs/pr/2").exit_code == 2  # has safetensors


def test_pull_downloads_exactly_the_needed_files(hub, hub_cache, tmp_path, monkeypatch):
    """No network: the Hub listing is the fixture snapshot's, and ``snapshot_download`` copies from it; the test
    checks which files pull asks for."""
    import huggingface_hub

    from tools import weights

    empty = tmp_path / "fresh-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(empty))
    asked: dict[str, list[str]] = {}

    def listing(spec):  # what the Hub would list: the fixture repo at that revision
        folder = hub_cache / ("models--" + spec.repo.replace("/", "--"))
        rev = spec.revision or "main"
        commit = rev if len(rev) == 40 else (folder / "refs" / rev).read_text().strip()
        return commit, weights.list_files(folder / "snapshots" / commit)

    def fake_download(repo, revision, allow_patterns, cache_dir, **kw):
        asked[repo] = sorted(allow_patterns)
        src = hub_cache / ("models--" + repo.replace("/", "--")) / "snapshots" / revision
        dest = Path(cache_dir) / ("models--" + repo.replace("/", "--")) / "snapshots" / revision
        for rel in allow_patterns:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dest / rel)
        return str(dest)

    def fake_file(repo, filename, revision, cache_dir, **kw):
        return str(hub_cache / ("models--" + repo.replace("/", "--")) / "snapshots" / revision / filename)

    monkeypatch.setattr(weights, "remote_listing", listing)
    monkeypatch.setattr("agent.model_roles.remote_listing", listing)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_file)
    r = cli("models", "pull", "--profile", "sd15-cpu", "--config", hub)
    assert r.exit_code == 0, r.output
    inpaint = asked["stable-diffusion-v1-5/stable-diffusion-inpainting"]
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in inpaint
    assert not any(f.endswith((".bin", ".ckpt")) or f.startswith("safety_checker") for f in inpaint)
    assert asked["h94/IP-Adapter"] == ["models/image_encoder/config.json", "models/image_encoder/model.safetensors",
                                       "models/ip-adapter_sd15.safetensors"]
    r = cli("models", "--profile", "sd15-cpu", "--config", hub, "--json")
    statuses = {row["role"]: row["status"] for row in json.loads(r.stdout)["roles"]}
    assert statuses == {"planner": "built-in", "clip": "ok", "inpaint": "ok", "ip_adapter": "ok",
                        "layout_to_image": "ok", "text_to_image": "ok", "dino": "ok", "detector": "ok"}


# --- end to end, and replay --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sd15-cpu", "sdxl-cpu"])
def test_generate_end_to_end_on_the_builtin_layouts_and_replay_holds(hub, name):
    r = cli("generate", "a red cat left of a blue dog", "--profile", name, "--config", hub, "--seed", 3, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["ok"] and Path(out["image"]).is_file()
    env = json.loads(Path(out["run_dir"], "env.json").read_text())
    inpaint = parse_spec(get_profile(name, hub).models["inpaint"])
    assert env["models"]["inpaint"]["identity"].startswith(f"{inpaint.repo}@{hub_fixtures.commit_of(inpaint.repo)}")
    if name == "sdxl-cpu":
        assert any("layout_to_image" in n for n in out["notices"]) and env["notices"]
    rep = cli("replay", out["run_id"])
    assert rep.exit_code == 0, rep.output
    assert "PASS" in rep.stdout


def test_replay_reports_a_changed_diffusers_tool_at_its_node(hub, monkeypatch):
    from tools.base import NO_CONTEXT
    from tools.diffusion import RegionalRepaint

    r = cli("generate", "a red cat left of a blue dog", "--profile", "sd15-cpu", "--config", hub, "--json")
    out = json.loads(r.stdout)
    assert out["ok"]
    original = RegionalRepaint.run

    def run(self, batch, ctx=NO_CONTEXT):  # a behaviour change with the version unchanged: the box comes back inverted
        from PIL import ImageOps

        outs = original(self, batch, ctx)
        for o in outs:
            o.image = ImageOps.invert(o.image)
        return outs

    monkeypatch.setattr(RegionalRepaint, "run", run)
    rep = cli("replay", out["run_id"], "--json")
    assert rep.exit_code == 1, rep.output
    first = json.loads(rep.stdout)["cases"][0]["first"]
    assert first["tool"] == "regional_repaint" and ".repaint" in first["node"] and "PSNR" in first["reason"]


def test_distill_on_the_sdxl_layout_is_seeded_and_continues_from_the_profile_lora(hub, tmp_path):
    """ArtAug's distillation on SDXL (two text encoders, size conditioning): same seed → same weights; a profile
    that names the result continues from it (its update is kept, the rank grows); the LoRA fuses into SDXL."""
    from PIL import Image
    from safetensors.torch import load_file

    data = tmp_path / "pairs"
    (data / "images").mkdir(parents=True)
    Image.new("RGB", (64, 64), (200, 40, 40)).save(data / "images" / "b.png")
    Image.new("RGB", (64, 64), (230, 150, 60)).save(data / "images" / "a.png")
    (data / "pairs.jsonl").write_text(json.dumps({"before": "images/b.png", "after": "images/a.png",
                                                  "prompt": "a red cat", "suggestions": ["warmer light"]}) + "\n")
    runs = []
    for name in ("one", "two"):
        r = cli("distill", data, "--profile", "sdxl-cpu", "--config", hub, "--steps", 2, "--lr", 0.05,
                "--seed", 4, "--out", tmp_path / name, "--json")
        assert r.exit_code == 0, r.output
        runs.append(load_file(str(tmp_path / name / "pytorch_lora_weights.safetensors")))
    assert runs[0].keys() == runs[1].keys() and all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    config = Path(hub).read_text() + (
        f'\n[profiles.sdxl-lora]\nextends = "sdxl-cpu"\nlora = "{tmp_path / "one"}"\n')
    cfg = tmp_path / "lora.toml"
    cfg.write_text(config)
    r = cli("distill", data, "--profile", "sdxl-lora", "--config", cfg, "--steps", 2, "--lr", 0.05,
            "--seed", 5, "--out", tmp_path / "three", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["continued_from"] == str(tmp_path / "one")
    third = load_file(str(tmp_path / "three" / "pytorch_lora_weights.safetensors"))
    down = next(k for k in third if k.endswith("lora.down.weight"))
    assert third[down].shape[0] == 2 * runs[0][down].shape[0]  # the earlier update, then the new one
    assert torch.equal(third[down][: runs[0][down].shape[0]], runs[0][down])
    r = cli("generate", "a red cat left of a blue dog", "--profile", "sdxl-lora", "--config", cfg, "--json")
    assert r.exit_code == 0, r.output
