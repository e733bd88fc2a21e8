"""Magnitude pruning with TF-MOT: unstructured (constant or polynomial-decay schedule) or 2:4
structured sparsity, fine-tuned, stripped, and the sparsity reached recorded per layer.

Sparse weights shrink the gzip size of an artifact; on this kind of CPU they do not make
TFLite/XNNPACK faster. The search measures rather than assumes either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from autotune._keras import tfmot
from autotune.errors import CandidateFailed, InvalidRecipe, first_line
from autotune.techniques._base import Technique
from autotune.techniques.training import fine_tune_watched, keras_quality, steps_per_epoch

SCHEDULES = ("constant", "polynomial")
STRUCTURES = ("unstructured", "2:4")
# Masks are updated about this many times over the fine-tuning; the polynomial schedule
# reaches its target at 70% of it and trains the rest at the final sparsity.
_UPDATES = 10
_RAMP = 0.7


def schedule_for(schedule: str, sparsity: float, total_steps: int) -> Any:
    """The TF-MOT schedule for a fine-tuning of ``total_steps`` optimizer steps."""
    s = tfmot().sparsity.keras
    frequency = max(1, total_steps // _UPDATES)
    if schedule == "constant":
        return s.ConstantSparsity(sparsity, begin_step=0, frequency=frequency)
    end = max(frequency, frequency * (int(total_steps * _RAMP) // frequency))
    return s.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end, frequency=frequency)


def sparsity_of(model: Any) -> tuple[dict[str, float], float]:
    """Fraction of exact zeros in each layer's kernel, and over all kernels together."""
    per_layer, zeros, size = {}, 0, 0
    for layer in model.layers:
        for w in layer.weights:
            if "kernel" in w.name and "depthwise" not in w.name:
                k = w.numpy()
                per_layer[layer.name] = round(float(np.mean(k == 0.0)), 4)
                zeros, size = zeros + int(np.sum(k == 0.0)), size + k.size
    return per_layer, round(zeros / max(1, size), 4)


@dataclass(frozen=True)
class MagnitudePrune(Technique):
    name: ClassVar[str] = "prune"
    order: ClassVar[int] = 2
    # Kernels stay dense (the conversion does not encode sparsity): the shape is the parent's.
    shape_params: ClassVar[tuple[str, ...] | None] = ()
    sparsity: float = 0.5
    schedule: Literal["constant", "polynomial"] = "constant"
    structure: Literal["unstructured", "2:4"] = "unstructured"
    epochs: int = 2
    learning_rate: float = 5e-4

    def validate(self) -> None:
        if self.schedule not in SCHEDULES:
            raise InvalidRecipe(f"unknown pruning schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.structure not in STRUCTURES:
            raise InvalidRecipe(f"unknown sparsity structure {self.structure!r}; choose one of {', '.join(STRUCTURES)}")
        if self.structure == "unstructured" and not 0.0 < self.sparsity < 1.0:
            raise InvalidRecipe(f"target sparsity must be between 0 and 1, got {self.sparsity}")
        if self.epochs < 1:
            raise InvalidRecipe(f"pruning needs at least one epoch of fine-tuning, got {self.epochs}")

    def describe(self) -> str:
        if self.structure == "2:4":
            return "prune 2:4"
        return f"prune {self.sparsity:g} {self.schedule}"

    def apply(self, model: Any, context: Any) -> Any:
        s = tfmot().sparsity.keras
        total = self.epochs * steps_per_epoch(context.data)
        if self.structure == "2:4":
            kwargs = {"sparsity_m_by_n": (2, 4), "pruning_schedule": schedule_for("constant", 0.5, total)}
        else:
            kwargs = {"pruning_schedule": schedule_for(self.schedule, self.sparsity, total)}
        try:
            wrapped = s.prune_low_magnitude(model, **kwargs)
        except ValueError as e:
            raise CandidateFailed(f"TF-MOT cannot prune this model: {first_line(e)}") from None
        fine_tune_watched(
            wrapped,
            context,
            self.name,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            callbacks=(s.UpdatePruningStep(),),
        )
        stripped = s.strip_pruning(wrapped)
        per_layer, overall = sparsity_of(stripped)
        context.facts.update(
            sparsity_per_layer=per_layer, sparsity=overall, **keras_quality(stripped, context.data)
        )
        return stripped

    def probe(self, model: Any) -> str | None:
        try:
            tfmot().sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule_for("constant", self.sparsity, 1))
        except (ValueError, TypeError, RuntimeError) as e:
            return f"TF-MOT cannot prune this model: {first_line(e)}"
        return None
