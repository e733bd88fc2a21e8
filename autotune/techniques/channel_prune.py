"""Channel pruning: remove the channels with the lowest L1 norm and fine-tune the physically
thinner model on the labels (the surgery is ``autotune.techniques._surgery``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from autotune.errors import InvalidRecipe
from autotune.techniques._base import Technique, check_ratio
from autotune.techniques._surgery import surgery_problem
from autotune.techniques.training import train_thinner


@dataclass(frozen=True)
class ChannelPrune(Technique):
    """Remove the weakest channels (keep ratio ``keep``), then fine-tune on the labels."""

    name: ClassVar[str] = "channel-prune"
    order: ClassVar[int] = 1
    shape_params: ClassVar[tuple[str, ...] | None] = ("keep",)
    wider_with: ClassVar[tuple[str, ...]] = ("keep",)
    keep: float = 0.5
    epochs: int = 2
    learning_rate: float = 5e-4

    def validate(self) -> None:
        check_ratio("channel-prune keep", self.keep, 0.05, 1.0)
        if self.epochs < 0:
            raise InvalidRecipe(f"channel-prune epochs must be ≥ 0, got {self.epochs}")

    def describe(self) -> str:
        return f"channel-prune keep {self.keep:g}"

    def apply(self, model: Any, context: Any) -> Any:
        return train_thinner(model, self.keep, context, self.name, learning_rate=self.learning_rate, epochs=self.epochs)

    def probe(self, model: Any) -> str | None:
        return surgery_problem(model)
