"""The import path of space and objective files written before the layout by layer; it
re-exports ``autotune.search.objective``, which new files import instead."""

from autotune.search.objective import Constraint, Metric, Objective

__all__ = ["Constraint", "Metric", "Objective"]
