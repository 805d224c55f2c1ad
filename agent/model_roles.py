"""Which model fills each role of a profile, and whether its weights are on this machine.

``role_status(profile)`` answers ``scenewright models`` and the check every run makes before it starts
(``Engine.require_models``): a run on a profile whose weights are missing stops before planning with one line
that names the ``models pull`` to run, instead of failing node by node after the planner has been paid for.
``pull_role`` is the only code path that downloads weights (``scenewright models pull``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from agent.profiles import Profile
from tools.weights import ModelSpec, Resolution, is_local, parse_spec, plan_files, remote_listing, resolve

LOCAL_LLM_KINDS = ("vllm-local", "transformers")


@dataclass
class RoleStatus:
    role: str
    model: str  # as the profile names it
    status: str  # ok | missing | needs-conversion | unusable | remote | built-in
    identity: str = ""  # id@commit(+variant) when resolved
    variant: str | None = None
    size: int = 0
    files: list[str] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def profile_roles(profile: Profile) -> list[tuple[str, str]]:
    """(role, model spec) for every model the profile loads on this machine, in a stable order."""
    roles: list[tuple[str, str]] = []
    if profile.planner.kind in LOCAL_LLM_KINDS and profile.planner.model:
        roles.append(("planner", profile.planner.model))
    if profile.vlm.kind in LOCAL_LLM_KINDS and profile.vlm.model:
        roles.append(("vlm", profile.vlm.model))
    if profile.backend == "diffusers":
        roles += sorted(profile.models.items())
        if profile.lora:
            roles.append(("lora", profile.lora))
    return roles


def _status(role: str, spec: str, res: Resolution) -> RoleStatus:
    return RoleStatus(
        role=role, model=spec, status=res.status, identity=res.identity() if res.folder else "",
        variant=res.variant, size=res.size, files=list(res.plan.needed), message="" if res.ok else res.message(role),
    )


def _spec(role: str, spec: str) -> str:
    if role == "lora" and "::" not in spec:
        from pathlib import Path

        from tools.lora import WEIGHT_NAME

        return f"{spec}::{WEIGHT_NAME}" if Path(spec).expanduser().is_dir() else spec
    if role == "ip_adapter" and "::" not in spec:
        from tools.diffusion import DEFAULT_IP_WEIGHTS

        return f"{spec}::{DEFAULT_IP_WEIGHTS}"
    return spec


def role_status(profile: Profile) -> list[RoleStatus]:
    """One row per role: the planner and VLM servers (not checked here), then each model the profile loads."""
    rows: list[RoleStatus] = []
    p = profile.planner
    if p.kind == "rule":
        rows.append(RoleStatus("planner", "rule-based", "built-in"))
    elif p.kind == "vllm-server":
        rows.append(RoleStatus("planner", p.model or "(the server's model)", "remote", message=f"served at {p.url}"))
    if profile.vlm.kind == "vllm-server":
        rows.append(RoleStatus("vlm", profile.vlm.model or "(the server's model)", "remote",
                               message=f"served at {profile.vlm.url}"))
    for role, spec in profile_roles(profile):
        spec = _spec(role, spec)
        rows.append(_status(role, spec, resolve(spec)))
    rows += [RoleStatus(role, "(none)", "stand-in", message=what) for role, what in stand_ins(profile)]
    return rows


# what fills a recipe role when a diffusers profile names no model for it (tools/diffusion.py, tools/preview.py)
STAND_INS = {
    "layout_to_image": "no layout model: the boxes steer text_to_image by regional prompting (MultiDiffusion), not GLIGEN",
    "inpaint": "box repaints use the preview storyboard tool, not a diffusion model",
    "clip": "region checks use the preview colour statistics, not CLIP",
    "ip_adapter": "reference images (RealRAG) are not given to the box repaint",
}


def critique_stand_ins(profile: Profile) -> list[tuple[str, str]]:
    """What stands in for the critic and the scorer of the critique loops (ArtAug --critique, repaint)."""
    out = []
    if profile.vlm.kind == "preview":
        out.append(("critique", "the preview critic (image statistics) stands in for a VLM"))
    if profile.backend != "diffusers" or "aesthetic" not in profile.models:
        out.append(("aesthetic_score", "image statistics stand in for an aesthetic model"
                    + (" (the critic's own statistics: accepting its edits is circular)"
                       if profile.vlm.kind == "preview" else "")))
    return out


def stand_ins(profile: Profile) -> list[tuple[str, str]]:
    """(role, what happens instead) for each recipe role a diffusers profile leaves without a model: a run says
    so in its output and ``env.json`` (no silent stand-ins)."""
    if profile.backend != "diffusers":
        return []
    out = []
    for role, what in STAND_INS.items():
        if role not in profile.models and not (role == "layout_to_image" and "text_to_image" not in profile.models):
            out.append((role, what))
    if "layout_to_image" not in profile.models and "text_to_image" not in profile.models:
        out.append(("layout_to_image", "the global pass uses the preview storyboard tool, not a diffusion model"))
    return out


# not checked before a run: the detector is `scenewright eval`'s; in-process LLMs (vllm-local, transformers) load
# through their own engines, which accept more than a Hub id or a folder, and say themselves what is missing
NOT_PREFLIGHTED = ("detector", "planner", "vlm")


def missing_models(profile: Profile, skip: tuple[str, ...] = NOT_PREFLIGHTED) -> str | None:
    """One line naming what is missing and the command that fixes it, or None when every model is here."""
    bad = [r for r in role_status(profile) if r.status not in ("ok", "remote", "built-in", "stand-in")
           and r.role not in skip]
    if not bad:
        return None
    if len(bad) == 1 or any(r.status != "missing" for r in bad):
        first = next((r for r in bad if r.status != "missing"), bad[0])
        more = f" (+{len(bad) - 1} more; `scenewright models --profile {profile.name}` lists them)" if len(bad) > 1 else ""
        return first.message + more
    roles = ", ".join(r.role for r in bad)
    return (f"profile '{profile.name}' needs {len(bad)} models that are not on this machine ({roles}); "
            f"download them once with `scenewright models pull --profile {profile.name}`")


# --- downloading ------------------------------------------------------------------------------------------------
@dataclass
class PullPlan:
    role: str
    spec: ModelSpec
    commit: str
    files: list[str]
    size: int
    pickled: list[str]


def plan_pull(role: str, spec_text: str) -> PullPlan:
    """Ask the Hub which files ``spec`` needs at its revision (network). Raises ``WeightsError`` for local specs."""
    from tools.weights import WeightsError

    spec = parse_spec(_spec(role, spec_text))
    if is_local(spec.repo):
        raise WeightsError(f"{role}: {spec.repo} is a local path; there is nothing to download")
    commit, listing = remote_listing(spec)
    index = None
    if "model_index.json" in listing and not spec.file:
        import json

        from huggingface_hub import hf_hub_download

        from tools.weights import hub_cache

        path = hf_hub_download(spec.repo, "model_index.json", revision=commit, cache_dir=str(hub_cache()))
        index = json.loads(open(path, encoding="utf-8").read())
    plan = plan_files(listing, spec, index)
    if plan.problem:
        raise WeightsError(f"{role}: {spec} cannot be loaded: {plan.problem}")
    return PullPlan(role, spec, commit, plan.needed, sum(listing.get(f, 0) for f in plan.needed), plan.pickled)
