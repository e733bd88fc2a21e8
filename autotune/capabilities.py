"""The import path of space and objective files written before the layout by layer; it
re-exports ``autotune.search.capabilities``, which new files import instead."""

from autotune.search.capabilities import Capabilities, can, choices, switch

__all__ = ["Capabilities", "can", "choices", "switch"]
