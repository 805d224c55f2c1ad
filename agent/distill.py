"""ArtAug's differential LoRA, trained on the (before, after) pairs the ``--critique`` loop logged.

For each pair (methods notes §5.1, stage 3):

1. LoRA-1 is trained on the *before* image alone (it overfits to it), then fused into a copy of the UNet;
2. LoRA-2 is trained on the *after* image on top of that fused UNet, so it learns "less like before, more like
   after" rather than the image itself; LoRA-1 is discarded;
3. the LoRA-2s of all pairs are merged **in weight space**: the update is ΔW = mean_i(B_i·A_i). Averaging the A
   and B matrices separately would be wrong: each pair's A starts from its own random init, so mean(B)·mean(A)
   shrinks (two identical pairs would give half the update) or cancels. The mean is written exactly as one LoRA
   of rank n·r by stacking: A = [A_1; …; A_n], B = [B_1 … B_n] / n, so B·A = mean_i(B_i·A_i).
4. **Iterative enhancement**: when the profile already names a LoRA (an earlier ``distill``), training starts
   from the base model with that LoRA fused, and the result holds both updates (its A/B are stacked in front,
   scaled by the profile's ``lora_scale``), so interaction → distillation rounds can be repeated with
   ``lora = "<out>"`` each time.

The output is ``<out>/pytorch_lora_weights.safetensors`` in diffusers format (plus ``distill.json``), which a
profile loads with ``lora = "<out>"`` (``tools/lora.py``: fused into every diffusion pipeline). Training is the
plain noise-prediction loss (VAE latents, a random timestep, MSE between the UNet's prediction and the noise) with
the pair's prompt as the condition, encoded by the pipeline's own ``encode_prompt`` (SD 1.x/2.x, and SDXL with its
pooled embedding and size conditioning); LoRA on the attention projections (``to_q``, ``to_k``, ``to_v``,
``to_out.0``) with diffusers + peft. Every random draw (LoRA init, noise, timesteps) comes from ``seed``: the same
dataset, profile and seed give the same weights. Needs ``pip install 'scenewright[train]'``.
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
    from diffusers import AutoPipelineForText2Image

    from tools.models import ModelNotFound, resolved
    from tools.weights import load_kwargs

    try:
        res = resolved(profile.models["text_to_image"], "text_to_image")
        import torch

        pipe = AutoPipelineForText2Image.from_pretrained(  # float32: LoRA training needs full-precision grads
            res.source(), dtype=torch.float32, safety_checker=None, requires_safety_checker=False, **load_kwargs(res)
        )  # fmt: skip
    except (OSError, ValueError, ModelNotFound) as err:
        raise DistillError(f"cannot load the text_to_image model of profile '{profile.name}': {err}") from None
    return pipe.to(profile.device)


def _peft_key(key: str) -> str:
    """A saved diffusers LoRA key (``unet.X.lora.down.weight``) as peft names it (``X.lora_A.weight``)."""
    key = key[len("unet."):] if key.startswith("unet.") else key
    return key.replace(".lora.down.weight", ".lora_A.weight").replace(".lora.up.weight", ".lora_B.weight")


def previous_lora(profile) -> dict:
    """The profile's current LoRA (to continue from), peft-keyed, its up matrices scaled by ``lora_scale``."""
    if not profile.lora:
        return {}
    from safetensors.torch import load_file

    from tools.lora import lora_file
    from tools.models import ModelNotFound

    try:
        state = load_file(str(lora_file(profile.lora)))
    except ModelNotFound as err:
        raise DistillError(str(err)) from None
    out = {}
    for k, v in state.items():
        if not (k.startswith("unet.") and k.endswith((".lora.down.weight", ".lora.up.weight"))):
            raise DistillError(f"the profile's LoRA {profile.lora} is not one `distill` wrote (key {k}); "
                               "continue only from distill's own LoRAs, or unset lora")
        pk = _peft_key(k)
        out[pk] = v.float() * (profile.lora_scale if pk.endswith("lora_B.weight") else 1.0)
    return out


def merge_in_weight_space(loras: list[dict], previous: dict | None = None) -> dict:
    """One LoRA whose update is ``previous`` + mean_i(B_i·A_i), by stacking (exact; rank = sum of ranks)."""
    import torch

    n = len(loras)
    out = {}
    for key in loras[0]:
        if not key.endswith("lora_A.weight"):
            continue
        b_key = key.replace("lora_A.weight", "lora_B.weight")
        a_parts = [lo[key] for lo in loras]
        b_parts = [lo[b_key] / n for lo in loras]
        if previous and key in previous:
            a_parts.insert(0, previous[key])
            b_parts.insert(0, previous[b_key])
        out[key] = torch.cat(a_parts, dim=0).contiguous()  # (rank_total, in)
        out[b_key] = torch.cat(b_parts, dim=1).contiguous()  # (out, rank_total)
    return out


def distill(
    dataset: str | Path, out: str | Path, profile, *, steps: int = 20, rank: int = 4, lr: float = 1e-4,
    max_pairs: int = 16, resolution: int | None = None, seed: int = 0,
) -> dict:  # fmt: skip
    pairs = load_pairs(dataset, max_pairs)  # a wrong folder is said before the heavy imports (or their absence)
    import numpy as np
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pairs = load_pairs(dataset, max_pairs)
    previous = previous_lora(profile)
    pipe = _components(profile)
    if profile.lora:  # iterative enhancement: learn on top of what the last distillation already taught
        from tools.lora import LoRA

        LoRA.of(profile.lora, profile.lora_scale).fuse_into(pipe)
    device = torch.device(profile.device)
    size = resolution or profile.width
    size -= size % 8
    unet, vae, sched = pipe.unet, pipe.vae, pipe.scheduler
    for m in pipe.components.values():
        if isinstance(m, torch.nn.Module):
            m.requires_grad_(False)
    gen = torch.Generator("cpu").manual_seed(seed)
    xl = hasattr(pipe, "text_encoder_2")

    def latents_of(path: str):
        im = open_image(path).resize((size, size))
        px = torch.from_numpy(np.asarray(im, np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None].to(device, vae.dtype)
        with torch.no_grad():
            return vae.encode(px).latent_dist.mean * vae.config.scaling_factor

    def condition(prompt: str) -> dict:
        """The UNet's text conditioning for ``prompt``, as the pipeline builds it (SDXL adds pooled + sizes)."""
        with torch.no_grad():
            if not xl:
                emb, _ = pipe.encode_prompt(prompt, device, 1, False)
                return {"encoder_hidden_states": emb}
            emb, _, pooled, _ = pipe.encode_prompt(prompt, device=device, num_images_per_prompt=1,
                                                   do_classifier_free_guidance=False)
            dim = pipe.text_encoder_2.config.projection_dim
            ids = pipe._get_add_time_ids((size, size), (0, 0), (size, size), emb.dtype, text_encoder_projection_dim=dim)
            return {"encoder_hidden_states": emb,
                    "added_cond_kwargs": {"text_embeds": pooled, "time_ids": ids.to(device)}}

    def train(model, latents, cond) -> list[float]:
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr)
        losses = []
        model.train()
        for _ in range(steps):
            noise = torch.randn(latents.shape, generator=gen).to(device, latents.dtype)
            t = torch.randint(0, sched.config.num_train_timesteps, (latents.shape[0],), generator=gen).to(device)
            pred = model(sched.add_noise(latents, noise, t), t, **cond).sample
            loss = F.mse_loss(pred.float(), noise.float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        model.eval()
        return losses

    def adapter(model):
        """A fresh LoRA on ``model`` whose random init comes from ``gen`` (peft draws from the global RNG)."""
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TARGETS))
        return model

    t0 = time.perf_counter()
    loras: list[dict] = []
    first, last = [], []
    for pair in pairs:
        cond = condition(pair.get("prompt", ""))
        # 1. LoRA-1 on the before image, fused into a copy of the UNet
        l1 = adapter(copy.deepcopy(unet))
        train(l1, latents_of(pair["before_path"]), cond)
        l1.fuse_lora(adapter_names=["default"])
        l1.unload_lora()
        # 2. LoRA-2 on the after image, on top of the fused UNet; LoRA-1 is gone with `l1` after this pair
        fused = adapter(l1)
        losses = train(fused, latents_of(pair["after_path"]), cond)
        first.append(losses[0])
        last.append(losses[-1])
        loras.append({k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(fused).items()})
        del l1, fused
    merged = merge_in_weight_space(loras, previous)

    from diffusers.utils import convert_state_dict_to_diffusers

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    type(pipe).save_lora_weights(
        save_directory=str(out), unet_lora_layers=convert_state_dict_to_diffusers(merged), safe_serialization=True
    )
    weights = out / "pytorch_lora_weights.safetensors"
    summary = {
        "weights": str(weights), "pairs": len(pairs), "steps": steps, "rank": rank, "lr": lr, "resolution": size,
        "base_model": profile.models["text_to_image"], "profile": profile.name, "seed": seed,
        "loss_before": round(sum(first) / len(first), 6), "loss_after": round(sum(last) / len(last), 6),
        "seconds": round(time.perf_counter() - t0, 3),
        "method": "ArtAug differential LoRA (LoRA-2s merged in weight space)", "continued_from": profile.lora or None,
        "dataset": str(Path(dataset).resolve()),
    }  # fmt: skip
    (out / "distill.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
