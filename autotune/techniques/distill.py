"""Distillation: a student of the parent's architecture at a narrower width, initialised from
the parent's strongest channels (``autotune.techniques._surgery``) and trained against the
parent's softened outputs and the labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from autotune.errors import InvalidRecipe
from autotune.techniques._base import Technique, check_ratio
from autotune.techniques._surgery import surgery_problem
from autotune.techniques.training import predict_logits, train_thinner


@dataclass(frozen=True)
class Distill(Technique):
    """A student of the parent's architecture at width ``width`` (the output layer unchanged),
    initialised from the parent's strongest channels and trained against the parent's
    temperature-softened outputs (weight ``alpha``) plus the labels (weight ``1 - alpha``)."""

    name: ClassVar[str] = "distill"
    order: ClassVar[int] = 0
    shape_params: ClassVar[tuple[str, ...] | None] = ("width",)
    wider_with: ClassVar[tuple[str, ...]] = ("width",)
    width: float = 0.5
    temperature: float = 4.0
    alpha: float = 0.7
    epochs: int = 4
    learning_rate: float = 3e-3

    def validate(self) -> None:
        check_ratio("distill width", self.width, 0.05, 1.0)
        check_ratio("distill alpha", self.alpha, 0.0, 1.0)
        if self.temperature <= 0:
            raise InvalidRecipe(f"distill temperature must be positive, got {self.temperature}")
        if self.epochs < 1:
            raise InvalidRecipe(f"distill epochs must be ≥ 1, got {self.epochs}")

    def describe(self) -> str:
        return f"distill w{self.width:g} T{self.temperature:g} α{self.alpha:g}"

    def apply(self, model: Any, context: Any) -> Any:
        return train_thinner(
            model,
            self.width,
            context,
            self.name,
            learning_rate=self.learning_rate,
            epochs=self.epochs,
            teacher_logits=predict_logits(model, context.data.x_train, context.data.task),
            temperature=self.temperature,
            alpha=self.alpha,
        )

    def probe(self, model: Any) -> str | None:
        return surgery_problem(model)
