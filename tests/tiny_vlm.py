"""Tiny random models for the critique loops (ImageRepainter, ArtAug): no downloads, built from configs.

- ``build_tiny_vlm(dir)``: a ``LlavaForConditionalGeneration`` (tiny CLIP vision tower 32 px / patch 8 → 16 image
  tokens, tiny Llama text model with ``head_dim=32``) with a ``LlavaProcessor`` whose tokenizer is the tiny Llama's
  byte-level BPE (``tests/llm_fixtures.py``) plus an ``<image>`` token, and a chat template that renders image
  parts as ``<image>``. Saved with ``save_pretrained`` and loaded by ``tools.vlm.TransformersVLMClient`` through
  ``AutoModelForImageTextToText`` / ``AutoProcessor``, exactly like a hub snapshot.
- ``build_tiny_dino(dir)``: a random ``Dinov2Model`` (32 px) + image processor, for ``image_similarity``.
- ``build_tiny_aesthetic(path, clip_dir)``: a random LAION-style MLP head (``layers.{0,2,4,6,7}``) on the tiny
  CLIP's 16-d image embedding, saved as safetensors, for ``aesthetic_score``.
- ``write_tiny_critique_profile(root)``: the ``tiny`` profile of ``tests/tiny_models.py`` plus ``dino``,
  ``aesthetic`` and a transformers VLM.

Run ``python -m tests.tiny_vlm DIR`` to build the folders and the profile by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

_DONE = ".built"
VLM_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% elif part['type'] in ('image', 'image_url') %}<image>{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _atomic_dir(final: Path, build) -> Path:
    if (final / _DONE).exists():
        return final
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build(tmp)
    (tmp / _DONE).write_text("ok\n")
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / _DONE).exists():
            raise
    return final


def build_tiny_vlm(out: str | Path, llama_dir: str | Path | None = None) -> Path:
    from tests.llm_fixtures import build_tiny_llama

    llama = Path(llama_dir) if llama_dir else build_tiny_llama(Path(__file__).parent / ".cache" / "tiny-llama-v1")

    def build(tmp: Path) -> None:
        import torch
        from transformers import (
            AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
            LlavaForConditionalGeneration, LlavaProcessor,
        )

        tok = AutoTokenizer.from_pretrained(llama)
        tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<image>"]})
        tok.chat_template = VLM_CHAT_TEMPLATE
        image_id = tok.convert_tokens_to_ids("<image>")
        text_cfg = json.loads((llama / "config.json").read_text())
        text = LlamaConfig(
            vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, head_dim=32, max_position_embeddings=text_cfg.get("max_position_embeddings", 4096),
            bos_token_id=tok.bos_token_id, eos_token_id=text_cfg["eos_token_id"], pad_token_id=tok.pad_token_id,
            tie_word_embeddings=False,
        )  # fmt: skip
        vision = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                  image_size=32, patch_size=8, projection_dim=32)
        cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                          vision_feature_layer=-1, vision_feature_select_strategy="default",
                          projector_hidden_act="gelu")
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(cfg).eval()
        model.generation_config.bos_token_id = tok.bos_token_id
        model.generation_config.eos_token_id = text.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        proc = LlavaProcessor(
            image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
            tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", chat_template=VLM_CHAT_TEMPLATE,
            num_additional_image_tokens=1,
        )
        model.save_pretrained(tmp, safe_serialization=True)
        proc.save_pretrained(tmp)

    return _atomic_dir(Path(out), build)


def build_tiny_dino(out: str | Path) -> Path:
    def build(tmp: Path) -> None:
        import torch
        from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

        torch.manual_seed(0)
        Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                                 image_size=32, patch_size=8)).save_pretrained(tmp, safe_serialization=True)
        BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True,
                          image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(tmp)

    return _atomic_dir(Path(out), build)


def build_tiny_aesthetic(out: str | Path, embed_dim: int = 16) -> Path:
    """A random aesthetic head (LAION predictor layout, small hidden sizes) as ``out/aesthetic_head.safetensors``."""

    def build(tmp: Path) -> None:
        import torch
        from safetensors.torch import save_file

        torch.manual_seed(0)
        dims = [embed_dim, 32, 16, 8, 4, 1]
        sd = {}
        for key, (a, b) in zip((0, 2, 4, 6, 7), zip(dims, dims[1:])):
            sd[f"layers.{key}.weight"] = torch.randn(b, a) / a**0.5
            sd[f"layers.{key}.bias"] = torch.zeros(b) + (5.0 if key == 7 else 0.0)
        save_file(sd, str(tmp / "aesthetic_head.safetensors"))

    return _atomic_dir(Path(out), build) / "aesthetic_head.safetensors"


def write_tiny_critique_profile(root: str | Path, *, name: str = "tiny") -> Path:
    """``tests.tiny_models.write_tiny_profile`` + dino, aesthetic and a transformers VLM in ``root/profiles.toml``."""
    from tests.tiny_models import write_tiny_profile

    root = Path(root).resolve()
    path = write_tiny_profile(root, name=name)
    dino = build_tiny_dino(root / "dino")
    head = build_tiny_aesthetic(root / "aesthetic")
    vlm = build_tiny_vlm(root / "vlm")
    text = path.read_text().rstrip("\n") + "\n"
    text += f"dino = {json.dumps(str(dino))}\naesthetic = {json.dumps(str(head))}\n\n"
    text += f'[profiles.{name}.vlm]\nkind = "transformers"\nmodel = {json.dumps(str(vlm))}\n'
    # a random model fills every leaf to its bound: small bounds keep each answer to a few hundred tokens
    text += "max_tokens = 768\ntext_chars = 12\nsummary_chars = 24\nmax_objects = 2\nmax_edits = 1\nrepairs = 1\n"
    path.write_text(text)
    return path


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).parent))
    print(write_tiny_critique_profile(sys.argv[1] if len(sys.argv) > 1 else "tiny-models"))


def cached_tiny_critique_profile() -> Path:
    """The tiny critique profile, built once into tests/.cache (gitignored) and shared by the test modules."""
    return write_tiny_critique_profile(Path(__file__).parent / ".cache" / "tiny-critique")
