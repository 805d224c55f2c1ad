"""Planners turn a request into a Blueprint. ``build_planner`` picks one from a profile's planner config."""

from __future__ import annotations


def build_planner(config, recorder=None):
    """Return the planner a profile asks for. Heavy backends are imported only when chosen."""
    if config.kind == "rule":
        from planners.rule_based import RuleBasedPlanner

        return RuleBasedPlanner()
    raise NotImplementedError(f"planner kind '{config.kind}' is not available yet")
