"""The import path of space and objective files written before the layout by layer; it
re-exports ``autotune.search.recipe``, which new files import instead."""

from autotune.search.recipe import PRECISIONS, Recipe, Runtime, Technique

__all__ = ["PRECISIONS", "Recipe", "Runtime", "Technique"]
