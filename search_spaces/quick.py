"""No training: precision and runtime only (the same as ``default`` until training-based
techniques join ``default``)."""

from search_spaces.default import space

__all__ = ["space"]
