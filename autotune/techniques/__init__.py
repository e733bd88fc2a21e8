"""Techniques that turn one Keras model into another, and the conversion to an artifact.

A technique is a frozen dataclass subclassing ``autotune.recipe.Technique``. ``TECHNIQUES``
maps the stored name back to its class so that a recipe read from the database can be
rebuilt (export, resume); it is a lookup for deserialisation, not an extension point.
"""

from __future__ import annotations

from typing import Any

from autotune.errors import InvalidRecipe
from autotune.recipe import Technique

TECHNIQUES: dict[str, type[Technique]] = {}


def technique_from_dict(data: dict[str, Any]) -> Technique:
    try:
        cls = TECHNIQUES[data["name"]]
    except KeyError:
        raise InvalidRecipe(f"unknown technique {data.get('name')!r} in a stored recipe") from None
    return cls(**data["params"])


__all__ = ["TECHNIQUES", "technique_from_dict"]
