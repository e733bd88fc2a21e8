"""Techniques that turn one Keras model into another, and the conversion to an artifact.

A technique is a frozen dataclass subclassing ``autotune.search.recipe.Technique``. ``TECHNIQUES``
maps the stored name back to its class so that a recipe read from the database can be
rebuilt (export, resume); it is a lookup for deserialisation, not an extension point.
"""

from __future__ import annotations

from typing import Any

from autotune.errors import InvalidRecipe
from autotune.search.recipe import Technique

from autotune.techniques.channels import ChannelPrune, Distill
from autotune.techniques.prune import MagnitudePrune
from autotune.techniques.qat import QuantizeAware

TECHNIQUES: dict[str, type[Technique]] = {t.name: t for t in (Distill, ChannelPrune, MagnitudePrune, QuantizeAware)}


def technique_from_dict(data: dict[str, Any]) -> Technique:
    try:
        cls = TECHNIQUES[data["name"]]
    except KeyError:
        raise InvalidRecipe(f"unknown technique {data.get('name')!r} in a stored recipe") from None
    try:
        return cls(**data["params"])
    except TypeError as e:
        raise InvalidRecipe(f"stored {data['name']} step has parameters this version does not know: {e}") from None


__all__ = ["TECHNIQUES", "ChannelPrune", "Distill", "MagnitudePrune", "QuantizeAware", "technique_from_dict"]
