"""Recipes compile a Blueprint into a Graph. One module per published method."""

from agent.recipes.llm_blueprint import compile_llm_blueprint
from agent.recipes.realrag import compile_realrag
from agent.recipes.scene_text import compile_scene_text

RECIPES = {"llm_blueprint": compile_llm_blueprint}
RECIPES.update(scene_text=compile_scene_text, realrag=compile_realrag)

__all__ = ["RECIPES", "compile_llm_blueprint"]
