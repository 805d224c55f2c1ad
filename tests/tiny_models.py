"""Tiny random-initialised models for CPU tests: no downloads, built from configs, saved as safetensors folders.

``build_tiny_models(dir)`` writes one folder per role (``text_to_image``, ``layout_to_image``, ``inpaint``,
``clip``, ``ip_adapter``) that the real loaders read with ``from_pretrained``, exactly as they would read a hub
snapshot. ``write_tiny_profile(dir)`` writes a ``[profiles.tiny]`` TOML pointing at them.

The recipes: a byte-level CLIP tokenizer built in code, diffusers'
fast-test UNet/VAE configs (2 blocks → VAE scale factor 2, so the tiny UNet's ``sample_size=32`` latents mean a
64×64 image), a gated UNet for GLIGEN, a 9-channel UNet for inpainting, an IP-Adapter in the h94 key layout
built against the inpainting UNet, and a tiny ``CLIPModel`` + ``CLIPProcessor`` with 32 px crops.

The same module also builds *real-architecture-size* random components (``real_size=True``) for the GPU
bench: SD1.5 UNet / inpaint UNet / VAE, CLIP ViT-L/14 text tower, and a ViT-B/16 CLIP for region checks.
Weights are random, so the images are noise; only shapes, sizes and timings are meaningful.

Run ``python -m tests.tiny_models DIR`` to build the folders and the profile by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TINY_SIZE = 64  # image side the tiny pipelines produce by default (unet sample_size 32 × vae scale factor 2)
ROLES = ("text_to_image", "layout_to_image", "inpaint", "clip", "ip_adapter")
IP_ADAPTER_WEIGHTS = "models/ip-adapter_tiny.safetensors"
_DONE = ".built"  # marker written last, so an interrupted build is redone


# --- components --------------------------------------------------------------------------------------------
def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


WORDS = ("a", "the", "cat", "dog", "red", "blue", "car", "tree", "house", "sky", "on", "in", "of", "with", "and")


def build_clip_tokenizer(words=WORDS):
    """Byte-level CLIP BPE: 256 byte chars, the same with '</w>', merges for a few words, then bos/eos last."""
    from transformers import CLIPTokenizer

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges: list[str] = []
    for w in words:
        cur = w[0]
        for i, ch in enumerate(w[1:], 1):
            nxt = ch + "</w>" if i == len(w) - 1 else ch
            if f"{cur} {nxt}" not in merges:
                merges.append(f"{cur} {nxt}")
            cur = cur + nxt
            vocab.setdefault(cur, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], model_max_length=77)


def build_text_encoder(tok, real_size: bool = False):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    size = (
        dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12)  # ViT-L/14 text
        if real_size
        else dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    )
    return CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            layer_norm_eps=1e-5, vocab_size=len(tok), max_position_embeddings=77, **size,
        )
    )


def build_vae(real_size: bool = False):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    if real_size:  # SD1.5 VAE: 4 blocks, scale factor 8
        return AutoencoderKL(
            block_out_channels=[128, 256, 512, 512], in_channels=3, out_channels=3, layers_per_block=2,
            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
            latent_channels=4, sample_size=512, norm_num_groups=32, scaling_factor=0.18215,
        )
    return AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4, sample_size=64, norm_num_groups=32,
    )


def build_unet(in_channels: int = 4, attention_type: str = "default", real_size: bool = False):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    if real_size:  # SD1.5 UNet (860M; 9 input channels for inpainting)
        return UNet2DConditionModel(
            sample_size=64, in_channels=in_channels, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            attention_type=attention_type,
        )
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_type=attention_type, norm_num_groups=32,
    )


def build_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )


def build_pipeline(role: str, real_size: bool = False):
    """An in-memory pipeline for a diffusion role ("text_to_image", "layout_to_image", "inpaint")."""
    from diffusers import StableDiffusionGLIGENPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline

    cls, unet_kw = {
        "text_to_image": (StableDiffusionPipeline, {}),
        "layout_to_image": (StableDiffusionGLIGENPipeline, {"attention_type": "gated"}),
        "inpaint": (StableDiffusionInpaintPipeline, {"in_channels": 9}),
    }[role]
    tok = build_clip_tokenizer()
    unet = build_unet(real_size=real_size, **unet_kw)
    if role == "layout_to_image":
        # GLIGEN's gates start at 0 (tanh(0) = 0: boxes would do nothing); open them so layouts matter in tests
        import torch

        with torch.no_grad():
            for name, p in unet.named_parameters():
                if name.endswith(("fuser.alpha_attn", "fuser.alpha_dense")):
                    p.fill_(1.0)
    return cls(
        unet=unet, vae=build_vae(real_size), tokenizer=tok,
        text_encoder=build_text_encoder(tok, real_size), scheduler=build_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def build_sdxl_pipeline(inpaint: bool = False):
    """A tiny SDXL pipeline (two text encoders, ``text_time`` conditioning), diffusers' own fast-test config:
    ``StableDiffusionXLPipeline``, or ``StableDiffusionXLInpaintPipeline`` with a 9-channel UNet."""
    import torch
    from diffusers import StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tok = build_clip_tokenizer()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=9 if inpaint else 4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80, cross_attention_dim=64, norm_num_groups=1,
    )
    cfg = CLIPTextConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5,
        vocab_size=len(tok), hidden_act="gelu", projection_dim=32, max_position_embeddings=77,
    )
    torch.manual_seed(0)
    enc, enc2 = CLIPTextModel(cfg), CLIPTextModelWithProjection(cfg)
    cls = StableDiffusionXLInpaintPipeline if inpaint else StableDiffusionXLPipeline
    extra = {"requires_aesthetics_score": False} if inpaint else {}
    return cls(
        unet=unet, vae=build_vae(), text_encoder=enc, text_encoder_2=enc2, tokenizer=tok, tokenizer_2=tok,
        scheduler=build_scheduler(), image_encoder=None, feature_extractor=None, force_zeros_for_empty_prompt=True,
        **extra,
    )


def build_clip(real_size: bool = False):
    """(CLIPModel, CLIPProcessor): tiny (32 px crops) or ViT-B/16-sized (224 px crops, the Blueprint scorer)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    tok = build_clip_tokenizer()
    torch.manual_seed(0)
    if real_size:
        text = dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12)
        vision = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                      image_size=224, patch_size=16)
        proj, px = 512, 224
    else:
        text = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
        vision = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                      image_size=32, patch_size=8)
        proj, px = 16, 32
    cfg = CLIPConfig(
        text_config=CLIPTextConfig(
            vocab_size=len(tok), max_position_embeddings=77, bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **text,
        ).to_dict(),
        vision_config=CLIPVisionConfig(**vision).to_dict(),
        projection_dim=proj,
    )
    proc = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": px}, crop_size={"height": px, "width": px}),
        tokenizer=tok,
    )
    return CLIPModel(cfg).eval(), proc


def build_tiny_owl(root: Path) -> Path:
    """A random OWL-ViT saved and loaded like a Hub one; the box head's last layer is zeroed so the boxes are the
    patch grid (random weights otherwise give degenerate boxes)."""
    import torch
    from transformers import OwlViTConfig, OwlViTForObjectDetection, OwlViTImageProcessor, OwlViTProcessor

    tok = build_clip_tokenizer()
    torch.manual_seed(0)
    layer = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    cfg = OwlViTConfig(
        text_config=dict(vocab_size=len(tok), max_position_embeddings=16, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **layer),
        vision_config=dict(image_size=32, patch_size=8, **layer), projection_dim=32,
    )
    model = OwlViTForObjectDetection(cfg).eval()
    with torch.no_grad():
        model.box_head.dense2.weight.zero_()
        model.box_head.dense2.bias.zero_()
    model.save_pretrained(root, safe_serialization=True)
    size = {"height": 32, "width": 32}
    OwlViTProcessor(image_processor=OwlViTImageProcessor(size=size, crop_size=size), tokenizer=tok).save_pretrained(root)
    return root


def build_ip_adapter(root: Path, unet_config, image_size: int = 32) -> None:
    """IP-Adapter in the original h94 layout: root/models/{ip-adapter_tiny.safetensors, image_encoder/}.
    ``image_size=224`` matches the real repos' 224-px feature extractor (the Hub-layout fixtures use it)."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from diffusers import UNet2DConditionModel

    emb = 32  # image-encoder projection_dim
    torch.manual_seed(0)
    CLIPVisionModelWithProjection(
        CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         image_size=image_size, patch_size=8 if image_size <= 64 else 32, projection_dim=emb)
    ).save_pretrained(root / "models" / "image_encoder", safe_serialization=True)
    x = unet_config.cross_attention_dim
    sd = {
        "image_proj.proj.weight": torch.randn(x * 4, emb) * 0.02,
        "image_proj.proj.bias": torch.zeros(x * 4),
        "image_proj.norm.weight": torch.ones(x),
        "image_proj.norm.bias": torch.zeros(x),
    }
    unet = UNet2DConditionModel.from_config(unet_config)
    key_id = 1
    for name in unet.attn_processors:  # the order diffusers' converter walks
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = unet_config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet_config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet_config.block_out_channels[int(name[len("down_blocks.")])]
        for kv in ("k", "v"):
            sd[f"ip_adapter.{key_id}.to_{kv}_ip.weight"] = torch.randn(hidden, x) * 0.5
        key_id += 2
    save_file(sd, str(root / IP_ADAPTER_WEIGHTS))


# --- folders and profile -----------------------------------------------------------------------------------
def tiny_model_paths(root: str | Path) -> dict[str, str]:
    root = Path(root).resolve()
    paths = {role: str(root / role.replace("_", "-")) for role in ROLES}
    # the IP-Adapter is addressed as "<folder>::<subfolder>/<weights file>" (see tools.diffusion.parse_ip_adapter)
    paths["ip_adapter"] = f"{paths['ip_adapter']}::{IP_ADAPTER_WEIGHTS}"
    return paths


def build_tiny_models(root: str | Path) -> dict[str, str]:
    """Build (once) every tiny model folder under ``root``; return {role: model id/path as a profile names it}."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    paths = tiny_model_paths(root)
    for role in ("text_to_image", "layout_to_image", "inpaint"):
        out = Path(paths[role])
        if not (out / _DONE).exists():
            build_pipeline(role).save_pretrained(out, safe_serialization=True)
            (out / _DONE).write_text("ok\n")
    out = Path(paths["clip"])
    if not (out / _DONE).exists():
        model, proc = build_clip()
        model.save_pretrained(out, safe_serialization=True)
        proc.save_pretrained(out)
        (out / _DONE).write_text("ok\n")
    out = Path(paths["ip_adapter"].split("::")[0])
    if not (out / _DONE).exists():
        (out / "models").mkdir(parents=True, exist_ok=True)
        unet_cfg = json.loads((Path(paths["inpaint"]) / "unet" / "config.json").read_text())
        build_ip_adapter(out, _unet_config(unet_cfg))
        (out / _DONE).write_text("ok\n")
    return paths


def _unet_config(cfg: dict):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(cfg).config


def write_tiny_profile(root: str | Path, *, name: str = "tiny", ip_adapter: bool = True) -> Path:
    """Build the tiny models (if needed) and write ``root/profiles.toml`` with ``[profiles.<name>]``."""
    root = Path(root).resolve()
    paths = build_tiny_models(root)
    if not ip_adapter:
        paths.pop("ip_adapter")
    lines = [
        f"[profiles.{name}]",
        'description = "Tiny random SD/GLIGEN/inpaint/CLIP models on CPU: tests only, images are noise."',
        'backend = "diffusers"',
        'device = "cpu"',
        'dtype = "float32"',
        "memory_budget_gb = 1",
        "steps = 2",
        f"width = {TINY_SIZE}",
        f"height = {TINY_SIZE}",
        'planner = { kind = "rule" }',
        "",
        f"[profiles.{name}.models]",
        *(f"{role} = {json.dumps(path)}" for role, path in paths.items()),
        "",
    ]
    path = root / "profiles.toml"
    path.write_text("\n".join(lines))
    return path


if __name__ == "__main__":  # pragma: no cover
    print(write_tiny_profile(sys.argv[1] if len(sys.argv) > 1 else "tiny-models"))
