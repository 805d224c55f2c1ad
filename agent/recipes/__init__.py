"""Recipes compile a Blueprint into a Graph. One module per published method."""

from agent.recipes.llm_blueprint import compile_llm_blueprint

RECIPES = {"llm_blueprint": compile_llm_blueprint}

__all__ = ["RECIPES", "compile_llm_blueprint"]
