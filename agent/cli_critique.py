"""CLI commands of the critique loops: ``repaint`` (ImageRepainter) and ``distill`` (ArtAug's differential LoRA).
``--critique`` on ``generate``/``run`` (ArtAug's online loop) lives in ``agent/cli.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from agent.cli import (
    ConfigOpt, JsonOpt, OutOpt, ProfileOpt, SeedOpt, app, err, fail, out_target, progress_events, save_copy, user_errors,
)


@app.command(epilog="Example: scenewright repaint photo.png --rounds 3 --variants 3 --out again.png")
def repaint(
    image: Path = typer.Argument(..., help="The reference image to regenerate (PNG, JPEG, ...)."),
    rounds: int = typer.Option(3, "--rounds", min=1, max=8, help="Most generate→compare→revise rounds."),
    variants: int = typer.Option(3, "--variants", min=1, max=8, help="Images per round (different seeds)."),
    threshold: float = typer.Option(0.95, "--threshold", min=0.0, max=1.0, help="Stop once similarity reaches this."),
    clip_weight: float = typer.Option(0.5, "--clip-weight", min=0.0, max=1.0, help="CLIP-I weight; DINOv2 gets the rest."),
    seed: int = SeedOpt, profile: str = ProfileOpt, out: Optional[str] = OutOpt, as_json: bool = JsonOpt,
    config: Optional[Path] = ConfigOpt,
):
    """ImageRepainter: describe a reference image with the VLM, regenerate it, and revise until it looks alike."""
    from agent.api import Engine
    from agent.recipes.image_repainter import RepaintError, repaint as run_repaint

    with user_errors(as_json), progress_events(not as_json) as on_event:
        target = out_target(out)
        engine = Engine(profile, config=config, on_event=on_event)
        try:
            summary = run_repaint(engine, image, rounds=rounds, variants=variants, threshold=threshold,
                                  clip_weight=clip_weight, seed=seed)
        except RepaintError as e:
            fail(str(e), 1)
    saved = save_copy(summary["image"], summary["run_id"], target) if target else None
    if as_json:
        print(json.dumps({**summary, "saved": str(saved) if saved else None}, indent=2))
        return
    scores = " → ".join(f"{s:.3f}" for s in summary["score_trace"])
    err.print(f"[green]done[/] run {summary['run_id']}: {summary['rounds']} round(s), stopped on {summary['stopped']};"
              f" best round {summary['best_round']} ({summary['best_score']:.3f})", highlight=False)
    err.print(f"  similarity per round: {scores}", highlight=False)
    print(f"image: {summary['image']}")
    if saved:
        print(f"saved: {saved}")
    print(f"run:   {summary['run_dir']}")


@app.command(epilog="Example: scenewright distill scenewright-runs/artaug-dataset --profile tiny --steps 4 --out lora/")
def distill(
    dataset: Path = typer.Argument(..., help="An ArtAug dataset folder (pairs.jsonl + images/), from --critique runs."),
    out: Path = typer.Option(Path("artaug-lora"), "--out", "-o", help="Folder for pytorch_lora_weights.safetensors."),
    steps: int = typer.Option(20, "--steps", min=1, max=100_000, help="Training steps per image (LoRA-1 and LoRA-2)."),
    rank: int = typer.Option(4, "--rank", min=1, max=256, help="LoRA rank."),
    lr: float = typer.Option(1e-4, "--lr", min=0.0, help="Learning rate."),
    max_pairs: int = typer.Option(16, "--max-pairs", min=1, max=10_000, help="Use at most this many pairs."),
    resolution: int = typer.Option(0, "--resolution", min=0, max=2048, help="Training size (0: the profile's width)."),
    seed: int = SeedOpt, profile: str = ProfileOpt, config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt,
):
    """ArtAug differential LoRA: for each accepted (before, after) pair, train LoRA-1 on before, fuse it, train
    LoRA-2 on after; average the LoRA-2s and save them as safetensors (load with a profile's ``lora = "..."``)."""
    from agent.api import UserError
    from agent.distill import DistillError, distill as run_distill
    from agent.profiles import get_profile

    with user_errors():
        prof = get_profile(profile, config)
        try:
            summary = run_distill(dataset, out, prof, steps=steps, rank=rank, lr=lr, max_pairs=max_pairs,
                                  resolution=resolution or None, seed=seed)
        except DistillError as e:
            raise UserError(str(e)) from None
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    err.print(f"[green]done[/] {summary['pairs']} pair(s), {summary['steps']} steps each side,"
              f" loss {summary['loss_before']:.4f} → {summary['loss_after']:.4f}", highlight=False)
    print(f"lora: {summary['weights']}")
