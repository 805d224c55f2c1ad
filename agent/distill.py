"""ArtAug's differential LoRA, trained on the (before, after) pairs the ``--critique`` loop logged.

For each pair (methods notes §5.1, stage 3):

1. LoRA-1 is trained on the *before* image alone (it overfits to it), then fused into a copy of the UNet;
2. LoRA-2 is trained on the *after* image on top of that fused UNet, so it learns "less like before, more like
   after" rather than the image itself; LoRA-1 is discarded;
3. the LoRA-2s of all pairs are averaged (A and B matrices separately; that is what averaging several LoRA files
   does) and saved in diffusers format as ``<out>/pytorch_lora_weights.safetensors`` (plus ``distill.json``),
   which a profile loads with ``lora = "<out>"`` (``tools/lora.py``).

Training is the plain Stable Diffusion noise-prediction loss (VAE latents, a random timestep, MSE between the
UNet's prediction and the noise) with the pair's prompt as the condition; LoRA on the attention projections
(``to_q``, ``to_k``, ``to_v``, ``to_out.0``) with diffusers + peft. It needs a diffusers profile with
``models.text_to_image`` (a Stable Diffusion 1.x/2.x-style pipeline) and ``pip install 'scenewright[train]'``.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from tools.critique_tools import open_image

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


class DistillError(ValueError):
    """One line a user can act on (bad dataset, wrong profile, peft missing)."""


def load_pairs(dataset: str | Path, max_pairs: int = 10_000) -> list[dict]:
    root = Path(dataset)
    if not root.is_dir():
        raise DistillError(f"dataset folder {root} does not exist; --critique runs write one (artaug-dataset/)")
    manifest = root / "pairs.jsonl"
    if not manifest.is_file():
        raise DistillError(f"{root} has no pairs.jsonl; give the folder that --critique runs log accepted pairs to")
    pairs = []
    for n, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            for side in ("before", "after"):
                path = (root / row[side]).resolve()
                if root.resolve() not in path.parents:
                    raise DistillError(f"{manifest} line {n}: {side} image {row[side]} is outside the dataset")
                row[f"{side}_path"] = str(path)
                open_image(path)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DistillError(f"{manifest} line {n} is not a pair record ({type(err).__name__}: {err})") from None
        except ValueError as err:
            raise DistillError(f"{manifest} line {n}: {err}") from None
        pairs.append(row)
        if len(pairs) >= max_pairs:
            break
    if not pairs:
        raise DistillError(f"{manifest} has no pairs yet; run with --critique until some edits are accepted")
    return pairs


def _components(profile):
    if profile.backend != "diffusers" or not profile.models.get("text_to_image"):
        raise DistillError(
            f"distill needs a diffusers profile with models.text_to_image (profile '{profile.name}' has none)"
        )
    try:
        import peft  # noqa: F401
    except ImportError:
        raise DistillError("distill needs peft: pip install 'scenewright[train]' (or pip install peft)") from None
    from diffusers import StableDiffusionPipeline

    from tools.models import ModelNotFound, resolved
    from tools.weights import load_kwargs

    try:
        res = resolved(profile.models["text_to_image"], "text_to_image")
        pipe = StableDiffusionPipeline.from_pretrained(
            res.source(), safety_checker=None, requires_safety_checker=False, **load_kwargs(res)
        )  # fmt: skip
    except (OSError, ValueError, ModelNotFound) as err:
        raise DistillError(f"cannot load the text_to_image model of profile '{profile.name}': {err}") from None
    return pipe.to(profile.device)


def distill(
    dataset: str | Path, out: str | Path, profile, *, steps: int = 20, rank: int = 4, lr: float = 1e-4,
    max_pairs: int = 16, resolution: int | None = None, seed: int = 0,
) -> dict:  # fmt: skip
    pairs = load_pairs(dataset, max_pairs)  # a wrong folder is said before the heavy imports (or their absence)
    import numpy as np
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict

    pipe = _components(profile)
    device = torch.device(profile.device)
    size = resolution or profile.width
    size -= size % 8
    unet, vae, te, tok, sched = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler
    for m in (unet, vae, te):
        m.requires_grad_(False)
    gen = torch.Generator("cpu").manual_seed(seed)

    def latents_of(path: str):
        im = open_image(path).resize((size, size))
        px = torch.from_numpy(np.asarray(im, np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None].to(device, vae.dtype)
        with torch.no_grad():
            return vae.encode(px).latent_dist.mean * vae.config.scaling_factor

    def embed(prompt: str):
        ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
        with torch.no_grad():
            return te(ids.input_ids.to(device))[0]

    def train(model, latents, emb) -> list[float]:
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr)
        losses = []
        model.train()
        for _ in range(steps):
            noise = torch.randn(latents.shape, generator=gen).to(device, latents.dtype)
            t = torch.randint(0, sched.config.num_train_timesteps, (latents.shape[0],), generator=gen).to(device)
            pred = model(sched.add_noise(latents, noise, t), t, encoder_hidden_states=emb).sample
            loss = F.mse_loss(pred.float(), noise.float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        model.eval()
        return losses

    def config():
        return LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TARGETS)

    t0 = time.perf_counter()
    total: dict | None = None
    first, last = [], []
    for pair in pairs:
        emb = embed(pair.get("prompt", ""))
        # 1. LoRA-1 on the before image, fused into a copy of the UNet
        l1 = get_peft_model(copy.deepcopy(unet), config())
        train(l1, latents_of(pair["before_path"]), emb)
        fused = l1.merge_and_unload()
        # 2. LoRA-2 on the after image, on top of the fused UNet; LoRA-1 is gone with `fused` after this pair
        fused.add_adapter(config())
        losses = train(fused, latents_of(pair["after_path"]), emb)
        first.append(losses[0])
        last.append(losses[-1])
        sd = {k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(fused).items()}
        total = sd if total is None else {k: total[k] + sd[k] for k in total}
        del l1, fused
    assert total is not None
    averaged = {k: (v / len(pairs)).contiguous() for k, v in total.items()}

    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        save_directory=str(out), unet_lora_layers=convert_state_dict_to_diffusers(averaged), safe_serialization=True
    )
    weights = out / "pytorch_lora_weights.safetensors"
    summary = {
        "weights": str(weights), "pairs": len(pairs), "steps": steps, "rank": rank, "lr": lr, "resolution": size,
        "base_model": profile.models["text_to_image"], "profile": profile.name, "seed": seed,
        "loss_before": round(sum(first) / len(first), 6), "loss_after": round(sum(last) / len(last), 6),
        "seconds": round(time.perf_counter() - t0, 3), "method": "ArtAug differential LoRA (LoRA-2 averaged)",
        "dataset": str(Path(dataset).resolve()),
    }  # fmt: skip
    (out / "distill.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
