"""Profiles: which planner and which tool backends fill each role, with which model ids.

Built-in profiles live in ``agent/profiles.toml``. Users add or override profiles in
``$SCENEWRIGHT_HOME/profiles.toml`` or a file named by ``--config`` / ``SCENEWRIGHT_CONFIG``; a user profile
with a built-in name replaces it. Relative model paths in a profile file are resolved against that file's
folder, so a repository can ship a profile next to its local weights.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ProfileError(ValueError):
    pass


# diffusers schedulers the SD1.x/SDXL/GLIGEN pipelines accept by ``from_config`` (KarrasDiffusionSchedulers, less
# the ones needing extra packages); a profile's ``scheduler`` names one, "" keeps the model folder's own
SCHEDULERS = (
    "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler", "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
    "DEISMultistepScheduler", "UniPCMultistepScheduler",
)  # fmt: skip


class PlannerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["rule", "vllm-server", "vllm-local", "transformers"] = "rule"
    model: str = ""
    url: str = "http://127.0.0.1:8000/v1"
    api_key: str = "EMPTY"
    timeout_s: float = Field(120.0, gt=0)
    max_tokens: int = Field(2048, ge=16, le=32768)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    layouts: int = Field(3, ge=1, le=8)
    repairs: int = Field(2, ge=0, le=5)
    # how the k layouts combine: "mean" (equal weights) or "sequential" (LLM Blueprint's code: b ← b + ½(bᵢ − b))
    interpolation: Literal["mean", "sequential"] = "mean"


class VLMConfig(BaseModel):
    """The VLM critic of the critique loops (ImageRepainter, ArtAug); "preview" uses deterministic stand-ins."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["preview", "vllm-server", "vllm-local", "transformers"] = "preview"
    model: str = ""
    url: str = "http://127.0.0.1:8000/v1"
    api_key: str = "EMPTY"
    timeout_s: float = Field(120.0, gt=0)
    max_tokens: int = Field(1024, ge=16, le=32768)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    repairs: int = Field(2, ge=0, le=5)
    text_chars: int = Field(80, ge=4, le=400)
    summary_chars: int = Field(240, ge=8, le=400)
    max_objects: int = Field(5, ge=0, le=12)
    max_edits: int = Field(3, ge=0, le=8)


class RayConfig(BaseModel):
    """How ``executor = "ray"`` lays tools out on a Ray cluster (agent/ray_backend.py): actor pools, their
    resources, and the artifact store every worker reads and writes."""

    model_config = ConfigDict(extra="forbid")

    address: str = ""  # "" starts (or reuses) a local Ray; "auto" or "ray://head:10001" joins a cluster
    actors: int = Field(1, ge=1, le=4096)  # actors per model-backed pool (one per GPU is the usual shape)
    cpu_actors: int = Field(1, ge=0, le=4096)  # actors for the CPU tools; 0 runs them in the driver
    num_gpus: float | None = Field(None, ge=0)  # per model actor; default 1 on a CUDA device, 0 on the CPU
    num_cpus: float = Field(1.0, ge=0)  # per model actor (logical, Ray's admission control)
    cpu_actor_cpus: float = Field(0.5, ge=0)  # per CPU-tool actor
    # tool name -> pool name: a tool family of its own (e.g. the VLM); default "gpu" for model tools, "cpu" else
    pools: dict[str, str] = {}
    # where actors read and write artifacts: "" = this machine's store (one machine only); a shared path; or an
    # fsspec URL (s3://bucket/prefix, gs://…, file:///mnt/shared/…)
    store: str = ""
    threads: int = Field(0, ge=0, le=1024)  # torch threads per actor; 0: as many as the driver uses
    start_timeout_s: float = Field(300.0, gt=0)  # an actor Ray cannot place within this is one clear error
    actor_retries: int = Field(2, ge=0, le=16)  # a batch whose actor died goes to another actor this many times
    max_inflight: int = Field(0, ge=0)  # batch items admitted at once (back-pressure); 0: 2 x actors


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str = ""
    backend: Literal["preview", "diffusers"] = "preview"
    planner: PlannerConfig = PlannerConfig()
    models: dict[str, str] = {}
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    cpu_offload: bool = False
    memory_budget_gb: Annotated[float, Field(gt=0)] = 16.0
    steps: int = Field(20, ge=1, le=200)
    guidance: float = Field(7.5, ge=0.0, le=30.0)
    width: int = Field(512, ge=64, le=2048, multiple_of=8)
    height: int = Field(512, ge=64, le=2048, multiple_of=8)
    delay_ms: int = Field(0, ge=0, le=60_000)
    refine_threshold: float = Field(0.25, ge=0.0, le=1.0)
    refine_iters: int = Field(2, ge=0, le=8)
    vlm: VLMConfig = VLMConfig()
    # SceneVTG: the final text node becomes glyph → text pass → OCR-verified loop per region (agent/recipes/scene_text.py)
    scene_text: bool = False
    text_threshold: float = Field(0.9, ge=0.0, le=1.0)  # 1 - normalised edit distance needed to accept a region
    text_iters: int = Field(2, ge=0, le=8)
    # where scene-text quads come from: the blueprint's boxes, or the LLM two-turn planner (planners/text_regions.py)
    text_planner: Literal["boxes", "llm"] = "boxes"
    lora: str = ""  # a LoRA safetensors file or folder (e.g. from `scenewright distill`) loaded into the SD pipelines
    lora_scale: float = Field(1.0, ge=0.0, le=4.0)
    # a diffusers scheduler class for every diffusion pipeline ("DPMSolverMultistepScheduler" is LLM Blueprint's);
    # "" keeps each model folder's own. Part of every diffusion tool's identity, so it is in the cache keys.
    scheduler: str = ""
    # where nodes run: "local" (this process's scheduler) or "ray" (actor pools on a Ray cluster, see [ray])
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = RayConfig()

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: str) -> str:
        if v and v not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {v!r}; use one of {', '.join(SCHEDULERS)} (or \"\" for the model's own)")
        return v


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(f"cannot read profile file {path}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"profile file {path} is not valid TOML: {err}") from None


def _user_files(config: str | Path | None) -> list[Path]:
    files = []
    home = Path(os.environ.get("SCENEWRIGHT_HOME", "scenewright-runs")) / "profiles.toml"
    if home.exists():
        files.append(home)
    explicit = config or os.environ.get("SCENEWRIGHT_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise ProfileError(f"config file {path} does not exist")
        files.append(path)
    return files


def load_profiles(config: str | Path | None = None) -> dict[str, Profile]:
    raw: dict[str, tuple[dict, Path | None]] = {}
    builtin = tomllib.loads(resources.files("agent").joinpath("profiles.toml").read_text())
    for name, body in builtin.get("profiles", {}).items():
        raw[name] = (body, None)
    for path in _user_files(config):
        for name, body in _read(path).get("profiles", {}).items():
            raw[name] = (body, path.resolve().parent)
    profiles = {}
    for name, (body, base) in raw.items():
        body = _extended(name, raw)
        try:
            profile = Profile.model_validate({**body, "name": name})
        except ValidationError as err:
            e = err.errors()[0]
            raise ProfileError(f"profile '{name}': {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
        if profile.device == "cpu" and profile.dtype == "float16":
            raise ProfileError(f"profile '{name}': float16 does not run on the CPU; use dtype = \"float32\" or a GPU device")
        if base is not None:
            profile.models = {
                role: str((base / m).resolve()) if m.startswith(("./", "../")) else m for role, m in profile.models.items()
            }
        if base is not None and profile.lora.startswith(("./", "../")):
            profile.lora = str((base / profile.lora).resolve())
        if base is not None and profile.vlm.model.startswith(("./", "../")):
            profile.vlm.model = str((base / profile.vlm.model).resolve())
        profiles[name] = profile
    return profiles


MERGED_TABLES = ("models", "planner", "vlm", "ray")


def _extended(name: str, raw: dict[str, tuple[dict, Path | None]], seen: tuple[str, ...] = ()) -> dict:
    """A profile's body with ``extends = "other"`` applied: the other profile's keys, then this one's; the
    ``models``, ``planner`` and ``vlm`` tables merge key by key, so ``[profiles.mine] extends = "sd15"`` with
    ``steps = 30`` keeps every model id (and revision pin) of ``sd15``."""
    body = dict(raw[name][0])
    parent = body.pop("extends", None)
    if parent is None:
        return body
    if not isinstance(parent, str) or parent not in raw:
        raise ProfileError(f"profile '{name}': extends = {parent!r} is not a profile; available: {', '.join(sorted(raw))}")
    if parent in seen or parent == name:
        raise ProfileError(f"profile '{name}': extends forms a cycle ({' → '.join(seen + (name, parent))})")
    merged = _extended(parent, raw, seen + (name,))
    for key, value in body.items():
        if key in MERGED_TABLES and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    merged.pop("description", None) if "description" not in body else None
    return merged


def get_profile(name: str, config: str | Path | None = None) -> Profile:
    profiles = load_profiles(config)
    if name not in profiles:
        raise ProfileError(f"unknown profile '{name}'; available: {', '.join(sorted(profiles))}")
    return profiles[name]
