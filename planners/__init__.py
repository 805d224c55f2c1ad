"""Planners turn a request into a Blueprint. ``build_planner`` picks one from a profile's planner config."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.profiles import PlannerConfig
    from planners.base import Planner, Recorder


def build_client(config: PlannerConfig):
    """The LLM client a planner config names (heavy libraries are imported on first use, not here)."""
    from planners import llm_client

    if config.kind == "vllm-server":
        return llm_client.OpenAIServerClient(
            config.url, config.model, api_key=config.api_key, timeout_s=config.timeout_s
        )
    if config.kind == "vllm-local":
        return llm_client.VLLMLocalClient(config.model)
    if config.kind == "transformers":
        return llm_client.TransformersClient(config.model)
    raise ValueError(f"planner kind '{config.kind}' has no LLM client")


def _stated_counts():
    """The rule-based planner's ``expected_counts`` (counts the prompt states outright), if it is available."""
    try:
        from planners.rule_based import expected_counts
    except ImportError:
        return None
    return expected_counts


def _named_objects():
    """The rule-based reader's ``named_objects`` (one name per object the prompt names), if it is available."""
    try:
        from planners.rule_based import named_objects
    except ImportError:
        return None
    return named_objects


def build_planner(config: PlannerConfig, recorder: Recorder | None = None, *, client=None) -> Planner:
    """Return the planner a profile asks for. Heavy backends are imported only when chosen. ``client``: an LLM
    client to reuse (an engine makes one and shares it); ``recorder``: the default for calls that pass none."""
    if config.kind == "rule":
        from planners.rule_based import RuleBasedPlanner

        return RuleBasedPlanner()
    if config.kind in ("vllm-server", "vllm-local", "transformers"):
        from planners.llm_planner import LLMPlanner

        return LLMPlanner(
            client if client is not None else build_client(config),
            recorder=recorder,
            kind=config.kind,
            layouts=config.layouts,
            repairs=config.repairs,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            interpolation=config.interpolation,
            expected_counts=_stated_counts(),
            expected_objects=_named_objects(),
        )
    raise ValueError(f"unknown planner kind '{config.kind}'; use rule, vllm-server, vllm-local or transformers")
