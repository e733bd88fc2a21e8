"""What a technique may use besides its parent model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autotune.build.cache import ContentCache
from autotune.inputs.data import Dataset


@dataclass(frozen=True)
class TechniqueContext:
    data: Dataset
    seed: int
    cache: ContentCache
    key: str  # the content key of the model this step produces
    # What the technique found out (sparsity reached, parameters, accuracy): stored with the
    # cached model and shown in the trial's lineage.
    facts: dict[str, Any] = field(default_factory=dict)
    # When a fine-tuning run may stop after its first epoch (``techniques.training.FirstEpochRule``),
    # or None: every run trains all its epochs.
    first_epoch_rule: Any = None
