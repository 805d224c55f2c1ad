"""A Hugging Face cache that holds every built-in profile's repos, in their real Hub layout, with tiny weights.

``build_hub_cache(dir)`` writes ``dir/models--org--name/{blobs,snapshots/<commit>,refs}`` exactly as
huggingface_hub lays out a download: content-addressed blobs, snapshot files as relative symlinks to them,
``refs/main`` (and ``refs/refs/pr/N`` for PR revisions) holding the commit. Each repo reproduces the file names,
variants and revisions its real repo ships (see ``LAYOUTS``, checked against the Hub's file lists): e.g.
``stable-diffusion-inpainting`` has only ``*.fp16.safetensors`` besides pickles, GLIGEN's ``main`` only pickled
``.bin`` files and its ``refs/pr/2`` safetensors, ``clip-vit-base-patch16``'s ``main`` only
``pytorch_model.bin``. The weights are tiny random models (``tests/tiny_models.py``); pickled ``.bin`` files are
real ``torch.save`` state dicts, so ``scenewright models convert`` has something real to convert. Files a
loader must never read (single-file ``.ckpt``, ONNX, OpenVINO, Flax, TF) are short placeholder bytes: if
anything loaded them, the load would fail loudly.

Commits are the real ones where the profile pins them; revisions the profiles name by ref (``main``,
``refs/pr/N``) get a stand-in commit derived from the repo and ref.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

FIXTURE_VERSION = "hub-v3"
PLACEHOLDER = b"placeholder: scenewright must never load this file\n"

# component formats: "st" plain safetensors, "fp16.st" the fp16 variant's safetensors, "bin" / "fp16.bin" pickles
SD_PICKLES = ["bin", "fp16.bin"]
SD_ALL = ["st", "fp16.st", "bin", "fp16.bin"]


def _commit(repo: str, ref: str) -> str:
    return hashlib.sha1(f"scenewright-fixture:{repo}@{ref}".encode()).hexdigest()


# repo → {ref: (commit or None, kind, layout)}; layout: {component: formats} + "extra" placeholder files
LAYOUTS: dict[str, dict[str, tuple]] = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": {
        "main": ("f03de327dd89b501a01da37fc5240cf4fdba85a1", "sd15", {
            "unet": SD_ALL + ["non_ema.st", "non_ema.bin"], "vae": SD_ALL, "text_encoder": SD_ALL,
            "safety_checker": SD_ALL,
            "extra": ["v1-5-pruned-emaonly.safetensors", "v1-5-pruned.ckpt", "v1-5-pruned-emaonly.ckpt"],
        }),
    },
    "masterful/gligen-1-4-generation-text-box": {
        "main": ("d2820dc1e9ba6ca082051ce79cfd3eb468ae2c83", "gligen", {
            "unet": SD_PICKLES, "vae": SD_PICKLES, "text_encoder": SD_PICKLES, "safety_checker": SD_PICKLES,
        }),
        "refs/pr/2": (None, "gligen", {
            "unet": SD_ALL, "vae": SD_ALL, "text_encoder": SD_ALL, "safety_checker": SD_ALL,
        }),
    },
    "stable-diffusion-v1-5/stable-diffusion-inpainting": {
        "main": ("8a4288a76071f7280aedbdb3253bdb9e9d5d84bb", "inpaint", {
            "unet": ["fp16.st", "bin", "fp16.bin"], "vae": ["fp16.st", "bin", "fp16.bin"],
            "text_encoder": ["fp16.st", "bin", "fp16.bin"], "safety_checker": ["fp16.st", "bin", "fp16.bin"],
            "extra": ["sd-v1-5-inpainting.ckpt"],
        }),
    },
    "openai/clip-vit-base-patch16": {
        "main": ("57c216476eefef5ab752ec549e440a49ae4ae5f3", "clip", {
            "(root)": ["bin"], "extra": ["flax_model.msgpack", "tf_model.h5"]}),
        "refs/pr/4": (None, "clip", {"(root)": ["st", "bin"], "extra": ["flax_model.msgpack", "tf_model.h5"]}),
    },
    "openai/clip-vit-large-patch14": {
        "main": ("32bd64288804d66eefd0ccbe215aa642df71cc41", "clip", {
            "(root)": ["st", "bin"], "extra": ["flax_model.msgpack", "tf_model.h5"]}),
    },
    "stabilityai/stable-diffusion-xl-base-1.0": {
        "main": ("462165984030d82259a11f4367a4eed129e94a7b", "sdxl", {
            "unet": ["st", "fp16.st"], "vae": ["st", "fp16.st"], "vae_1_0": ["st", "fp16.st"],
            "text_encoder": ["st", "fp16.st"], "text_encoder_2": ["st", "fp16.st"],
            "extra": ["sd_xl_base_1.0.safetensors", "sd_xl_offset_example-lora_1.0.safetensors",
                      "unet/model.onnx", "unet/openvino_model.bin", "unet/diffusion_flax_model.msgpack",
                      "vae_decoder/model.onnx", "vae_decoder/config.json", "text_encoder/openvino_model.bin"],
        }),
    },
    "diffusers/stable-diffusion-xl-1.0-inpainting-0.1": {
        "main": ("115134f363124c53c7d878647567d04daf26e41e", "sdxl-inpaint", {
            "unet": ["st", "fp16.st"], "vae": ["st", "fp16.st"], "text_encoder": ["st", "fp16.st"],
            "text_encoder_2": ["st", "fp16.st"],
        }),
    },
    "google/owlv2-base-patch16-ensemble": {
        "main": (None, "owl", {"(root)": ["st", "bin"]}),
    },
    "facebook/dinov2-base": {
        "main": ("f9e44c814b77203eaa57a6bdbbd535f21ede1415", "dino", {"(root)": ["st", "bin"]}),
    },
    "h94/IP-Adapter": {
        "main": ("018e402774aeeddd60609b4ecdb7e298259dc729", "ip-adapter", {}),
    },
}


# --- writing one snapshot --------------------------------------------------------------------------------------------
def _save_module(module, folder: Path, fmt: str) -> None:
    """Write ``module``'s weights into ``folder`` under the file name its library uses for ``fmt``."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    transformers_model = not hasattr(module, "register_to_config")  # diffusers ModelMixin has register_to_config
    variant = "fp16" if fmt.startswith("fp16") else "non_ema" if fmt.startswith("non_ema") else None
    if fmt.endswith("st"):
        with tempfile.TemporaryDirectory() as tmp:
            m = module.to(torch.float16) if variant == "fp16" else module
            m.save_pretrained(tmp, variant=variant)
            module.to(torch.float32)
            for f in Path(tmp).iterdir():
                if f.name == "config.json" and (folder / f.name).exists():
                    continue  # the plain save's config (dtype float32) stays, as in the real repos
                shutil.copyfile(f, folder / f.name)
    else:
        stem = "pytorch_model" if transformers_model else "diffusion_pytorch_model"
        name = f"{stem}.{variant}.bin" if variant else f"{stem}.bin"
        state = {k: (v.half() if variant == "fp16" else v).clone() for k, v in module.state_dict().items()}
        torch.save(state, folder / name)
        if not (folder / "config.json").exists():
            module.save_pretrained(folder)  # for the config; its weights file is removed below
            for f in folder.iterdir():
                if f.suffix == ".safetensors":
                    f.unlink()


def _pipeline(kind: str):
    import tests.tiny_models as tm

    if kind in ("sd15", "gligen", "inpaint"):
        return tm.build_pipeline({"sd15": "text_to_image", "gligen": "layout_to_image", "inpaint": "inpaint"}[kind])
    return tm.build_sdxl_pipeline(inpaint=kind == "sdxl-inpaint")


def _write_pipeline(tmp: Path, kind: str, layout: dict) -> None:
    import torch

    pipe = _pipeline(kind)
    pipe.save_pretrained(tmp)  # configs, tokenizers, scheduler, model_index.json (+ plain safetensors, redone below)
    index = json.loads((tmp / "model_index.json").read_text())
    if kind in ("sd15", "gligen", "inpaint"):  # the real repos list these; we never load them (safety_checker=None)
        index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
        index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
        index["requires_safety_checker"] = True
        (tmp / "feature_extractor").mkdir(exist_ok=True)
        (tmp / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps(
            {"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
             "image_processor_type": "CLIPImageProcessor", "size": 224}))
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    for comp, formats in layout.items():
        if comp == "extra":
            continue
        folder = tmp / comp
        if comp in ("safety_checker",):  # never loaded: a config and a small tensor per format
            from safetensors.torch import save_file

            folder.mkdir(exist_ok=True)
            (folder / "config.json").write_text('{"_name_or_path": "fixture", "architectures": ["StableDiffusionSafetyChecker"]}')
            for fmt in formats:
                v = ".fp16" if fmt.startswith("fp16") else ""
                if fmt.endswith("st"):
                    save_file({"w": torch.zeros(2)}, str(folder / f"model{v}.safetensors"))
                else:
                    torch.save({"w": torch.zeros(2)}, folder / f"pytorch_model{v}.bin")
            continue
        module = getattr(pipe, comp if comp != "vae_1_0" else "vae")
        for f in folder.glob("*.safetensors") if folder.exists() else []:
            f.unlink()
        for fmt in formats:
            _save_module(module, folder, fmt)
        if comp == "vae_1_0":
            shutil.copyfile(tmp / "vae" / "config.json", folder / "config.json")


def _write_clip(tmp: Path, layout: dict) -> None:
    import tests.tiny_models as tm

    model, proc = tm.build_clip()
    proc.save_pretrained(tmp)
    for fmt in layout["(root)"]:
        _save_module(model, tmp, fmt)


def _write_dino(tmp: Path, layout: dict) -> None:
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    model = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=37, image_size=32, patch_size=8)).eval()
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(tmp)
    for fmt in layout["(root)"]:
        _save_module(model, tmp, fmt)


def _write_owl(tmp: Path, layout: dict) -> None:
    """A tiny OWLv2 (the eval detector) with its processor, as google/owlv2-base-patch16-ensemble ships it."""
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    import tests.tiny_models as tm

    tok = tm.build_clip_tokenizer()
    torch.manual_seed(0)
    layer = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    model = Owlv2ForObjectDetection(Owlv2Config(
        text_config=dict(vocab_size=len(tok), max_position_embeddings=16, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **layer),
        vision_config=dict(image_size=32, patch_size=8, **layer), projection_dim=32)).eval()
    size = {"height": 32, "width": 32}
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size=size), tokenizer=tok).save_pretrained(tmp)
    for fmt in layout["(root)"]:
        _save_module(model, tmp, fmt)


def _write_ip_adapter(tmp: Path) -> None:
    """models/ (SD1.5, against the tiny SD UNet) and sdxl_models/ (against the tiny SDXL UNet), each with its own
    image_encoder/, .safetensors + .bin for every adapter, as h94/IP-Adapter ships them."""
    import torch
    from safetensors.torch import load_file

    import tests.tiny_models as tm

    for sub, pipe_kind, name in (("models", "inpaint", "ip-adapter_sd15"), ("sdxl_models", "sdxl", "ip-adapter_sdxl")):
        root = tmp / "_build" / sub
        (root / "models").mkdir(parents=True)
        unet_config = _pipeline(pipe_kind).unet.config
        tm.build_ip_adapter(root, unet_config, image_size=224)
        dest = tmp / sub
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root / "models" / "image_encoder", dest / "image_encoder")
        weights = load_file(str(root / tm.IP_ADAPTER_WEIGHTS))
        shutil.copyfile(root / tm.IP_ADAPTER_WEIGHTS, dest / f"{name}.safetensors")
        # the .bin form nests the two parts, as the original checkpoints do
        torch.save({"image_proj": {k[len("image_proj."):]: v for k, v in weights.items() if k.startswith("image_proj.")},
                    "ip_adapter": {k[len("ip_adapter."):]: v for k, v in weights.items() if k.startswith("ip_adapter.")}},
                   dest / f"{name}.bin")
        enc = dest / "image_encoder"
        from transformers import CLIPVisionModelWithProjection

        torch.save(CLIPVisionModelWithProjection.from_pretrained(enc).state_dict(), enc / "pytorch_model.bin")
    shutil.rmtree(tmp / "_build")


def _write_snapshot(tmp: Path, kind: str, layout: dict) -> None:
    if kind == "clip":
        _write_clip(tmp, layout)
    elif kind == "dino":
        _write_dino(tmp, layout)
    elif kind == "owl":
        _write_owl(tmp, layout)
    elif kind == "ip-adapter":
        _write_ip_adapter(tmp)
    else:
        _write_pipeline(tmp, kind, layout)
    for rel in layout.get("extra", []):
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists():
            p.write_bytes(PLACEHOLDER)
    (tmp / "README.md").write_text("---\nlicense: fixture\n---\nA tiny random stand-in for the Hub repo.\n")


def _install(cache: Path, repo: str, ref: str, commit: str, tmp: Path) -> None:
    """Move ``tmp``'s files into the cache as huggingface_hub does: blobs by content hash, relative symlinks."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    snap = folder / "snapshots" / commit
    for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
        rel = f.relative_to(tmp)
        blob = folder / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            shutil.copyfile(f, blob)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    ref_file = folder / "refs" / ref
    ref_file.parent.mkdir(parents=True, exist_ok=True)
    ref_file.write_text(commit)


def build_hub_cache(root: str | Path, repos: list[str] | None = None) -> Path:
    """Build (once) the cache under ``root``; returns the folder to use as ``HF_HUB_CACHE``."""
    cache = Path(root).resolve()
    done = cache / f".{FIXTURE_VERSION}.built"
    if done.exists():
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    for repo in repos or LAYOUTS:
        shutil.rmtree(cache / ("models--" + repo.replace("/", "--")), ignore_errors=True)
        for ref, (commit, kind, layout) in LAYOUTS[repo].items():
            with tempfile.TemporaryDirectory() as t:
                _write_snapshot(Path(t), kind, layout)
                _install(cache, repo, ref, commit or _commit(repo, ref), Path(t))
    done.write_text("ok\n")
    return cache


def commit_of(repo: str, ref: str = "main") -> str:
    """The commit ``repo@ref`` has in the fixture cache (a pinned commit is itself)."""
    if len(ref) == 40 and all(c in "0123456789abcdef" for c in ref):
        return ref
    commit = LAYOUTS[repo][ref][0]
    return commit or _commit(repo, ref)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(build_hub_cache(sys.argv[1] if len(sys.argv) > 1 else "hub-cache"))
