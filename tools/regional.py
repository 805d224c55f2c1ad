"""Boxes without a layout model: regional prompting on a text-to-image UNet (SD 1.x/2.x and SDXL).

SDXL has no GLIGEN, so before this a profile without a ``layout_to_image`` model painted the scene prompt alone and
the blueprint's boxes steered nothing. :func:`regional_batch` is MultiDiffusion's region-based generation (Bar-Tal
et al., ICML 2023, "MultiDiffusion: Fusing Diffusion Paths for Controlled Image Generation", §3.2): at every
denoising step the UNet predicts the noise of the shared latents once under the scene prompt (its region is the
whole canvas) and once under each object's phrase, and the predictions are fused per latent pixel as the mean of
those whose region covers it. Choices, written down:

- The fusion is of noise predictions, not of the per-region denoised latents MultiDiffusion averages. For a
  scheduler step that is linear in the prediction (DDIM, Euler, DPM-Solver's first order) the two are the same;
  for schedulers that keep a history of predictions (PNDM, multistep DPM-Solver) stepping once per region would
  corrupt that history, so fusing predictions and stepping once is the only form that works with every scheduler.
- Equal weights (the scene prompt counts as one region): inside a box the object's phrase has as much say as the
  scene, and the scene prompt keeps the picture one picture. MultiDiffusion's bootstrapping (the first 20 % of
  steps with a flat colour outside each region) is not done: it needs a second noise draw per region.
- At most ``MAX_REGIONS`` boxes (the largest) get a region: each costs one more UNet evaluation per step. Their
  phrases are also in the scene prompt the recipe builds, so a box past the cap is still asked for, unsteered.
- Everything else is the pipeline's own: ``encode_prompt``, ``prepare_latents`` with one CPU generator per sample
  (a sample's pixels depend on its own seed only, batched or alone), SDXL's size conditioning and pooled text
  embeddings, the VAE upcast for float16 SDXL. With no boxes the loop is the pipeline's (tested: same pixels).
"""

from __future__ import annotations

from tools.base import NO_CONTEXT, Cancelled, ToolContext
from tools.model_utils import generators

MAX_REGIONS = 8


def _encode(pipe, prompts: list[str], negatives: list[str], device, cfg: bool, width: int, height: int) -> dict:
    """UNet conditioning for each prompt row, the unconditional rows first when ``cfg``."""
    import torch

    if not hasattr(pipe, "_get_add_time_ids"):  # SD 1.x/2.x: text embeddings only
        pe, npe = pipe.encode_prompt(prompts, device, 1, cfg, negatives)
        return {"encoder_hidden_states": torch.cat([npe, pe]) if cfg else pe}
    pe, npe, pooled, npooled = pipe.encode_prompt(
        prompt=prompts, device=device, num_images_per_prompt=1, do_classifier_free_guidance=cfg,
        negative_prompt=negatives,
    )
    proj = pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None else int(pooled.shape[-1])
    time_ids = pipe._get_add_time_ids((height, width), (0, 0), (height, width), dtype=pe.dtype,
                                      text_encoder_projection_dim=proj).to(device)
    rows = 2 * len(prompts) if cfg else len(prompts)
    return {
        "encoder_hidden_states": torch.cat([npe, pe]) if cfg else pe,
        "added_cond_kwargs": {
            "text_embeds": torch.cat([npooled, pooled]) if cfg else pooled,
            "time_ids": time_ids.repeat(rows, 1),
        },
    }


def _region_masks(layouts, n: int, lh: int, lw: int, device, dtype):
    """Row -> sample index, and one latent-sized mask per prompt row (all ones for a sample's scene prompt)."""
    import torch

    owner, masks = list(range(n)), [torch.ones(lh, lw) for _ in range(n)]
    for s, (_, boxes) in enumerate(layouts):
        for x0, y0, x1, y1 in boxes:
            m = torch.zeros(lh, lw)
            c0, c1 = int(x0 * lw), max(int(x0 * lw) + 1, round(x1 * lw))
            r0, r1 = int(y0 * lh), max(int(y0 * lh) + 1, round(y1 * lh))
            m[r0:r1, c0:c1] = 1.0  # at least one latent pixel, so a thin box still has a say
            owner.append(s)
            masks.append(m)
    return owner, torch.stack(masks)[:, None].to(device=device, dtype=dtype)


def regional_batch(pipe, prompts, negatives, layouts, *, width, height, steps, guidance, seeds,
                   ctx: ToolContext = NO_CONTEXT):  # fmt: skip
    """One image per scene prompt; ``layouts[i]`` is ``(phrases, boxes)`` (normalised xyxy) for sample ``i``.
    All rows of all samples go through one UNet call per step."""
    import torch

    with torch.no_grad():
        device = pipe._execution_device
        n, cfg = len(prompts), guidance > 1.0
        layouts = [(ph[:MAX_REGIONS], bx[:MAX_REGIONS]) for ph, bx in layouts]
        rows = list(prompts) + [p for ph, _ in layouts for p in ph]
        row_negatives = list(negatives) + [negatives[s] for s, (ph, _) in enumerate(layouts) for _ in ph]
        cond = _encode(pipe, rows, row_negatives, device, cfg, width, height)
        dtype = cond["encoder_hidden_states"].dtype

        pipe.scheduler.set_timesteps(steps, device=device)
        timesteps = pipe.scheduler.timesteps
        if hasattr(pipe.scheduler, "set_begin_index"):
            pipe.scheduler.set_begin_index(0)
        gens = generators(seeds)
        latents = pipe.prepare_latents(n, pipe.unet.config.in_channels, height, width, dtype, device, gens)
        owner, masks = _region_masks(layouts, n, latents.shape[2], latents.shape[3], device, latents.dtype)
        index = torch.tensor(owner, device=device)
        coverage = torch.zeros(n, *masks.shape[1:], device=device, dtype=masks.dtype).index_add_(0, index, masks)
        extra = pipe.prepare_extra_step_kwargs(gens, 0.0)
        for i, t in enumerate(timesteps):
            if ctx.cancelled():
                raise Cancelled(f"layout_to_image stopped after step {i}")
            x = latents[index]
            x = torch.cat([x, x]) if cfg else x
            x = pipe.scheduler.scale_model_input(x, t)
            noise = pipe.unet(x, t, **cond, return_dict=False)[0]
            if cfg:
                uncond, text = noise.chunk(2)
                noise = uncond + guidance * (text - uncond)
            fused = torch.zeros_like(latents).index_add_(0, index, noise * masks) / coverage
            latents = pipe.scheduler.step(fused, t, latents, **extra, return_dict=False)[0]
            ctx.progress(i + 1, len(timesteps))
        images = _decode(pipe, latents)
        pipe.maybe_free_model_hooks()
    return images


def _decode(pipe, latents):
    """The pipeline's decode: SDXL's float16 VAE runs in float32 (``force_upcast``), latent mean/std when set."""
    import torch

    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:
        vae.to(dtype=torch.float32)
    latents = latents.to(next(iter(vae.post_quant_conv.parameters())).dtype)
    mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
    if mean is not None and std is not None:
        mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std = torch.tensor(std).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        latents = latents * std / vae.config.scaling_factor + mean
    else:
        latents = latents / vae.config.scaling_factor
    image = vae.decode(latents, return_dict=False)[0]
    if upcast:
        vae.to(dtype=torch.float16)
    return pipe.image_processor.postprocess(image, output_type="pil")
