"""What a technique may use besides its parent model."""

from __future__ import annotations

from dataclasses import dataclass

from autotune.cache import ContentCache
from autotune.data import Dataset


@dataclass(frozen=True)
class TechniqueContext:
    data: Dataset
    seed: int
    cache: ContentCache
    key: str  # the content key of the model this step produces
