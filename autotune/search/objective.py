"""What "good" means for a study: the metrics Optuna optimises and the constraints that make a
trial feasible. The trial loop measures every metric it knows into one dict; an Objective picks
its values from that dict, so a new objective needs no change to the trial loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class Metric:
    name: str  # a key of the measured metrics, e.g. "latency_p50_ms"
    direction: Direction

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {self.direction!r}")


@dataclass(frozen=True)
class Constraint:
    """Feasible when ``metrics[name] <= limit``; Optuna gets ``metrics[name] - limit``."""

    name: str
    limit: float

    def violation(self, metrics: dict[str, float]) -> float:
        return float(metrics[self.name]) - self.limit


@dataclass(frozen=True)
class Objective:
    name: str
    metrics: tuple[Metric, ...]
    constraints: tuple[Constraint, ...] = ()
    # Batch sizes to search (the trial loop suggests one per trial); empty: the space's batch.
    batch_sizes: tuple[int, ...] = ()
    # What the model does: classification (integer labels, accuracy) or regression (targets, MAE).
    task: Literal["classification", "regression"] = "classification"

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {self.task!r}")
        if not self.metrics:
            raise ValueError("an objective needs at least one metric")
        if any(b < 1 for b in self.batch_sizes):
            raise ValueError(f"batch sizes must be at least 1, got {self.batch_sizes}")

    @property
    def directions(self) -> list[str]:
        return [m.direction for m in self.metrics]

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def values(self, metrics: dict[str, float]) -> list[float]:
        return [float(metrics[m.name]) for m in self.metrics]

    def feasible(self, metrics: dict[str, float]) -> bool:
        return all(c.violation(metrics) <= 0 for c in self.constraints)
