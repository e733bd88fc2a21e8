"""What a study's model allows: the capability probe's record, and how spaces read it.

Before the search, a probe (``autotune.study.probe``) tries every technique, precision and engine
once on the study's model, cheaply, and stores on the study which of them cannot apply and
why. A technique that cannot apply to a model is a fact about that model, not a failure of
the search: spaces ask ``can(trial, name)`` / ``choices(trial, options)`` so that the sampler
never proposes an excluded step, and a recipe that still holds one (a space of the user's own
that does not ask) is pruned before any work, with the probe's reason.

Names are flat: techniques (``distill``, ``channel-prune``, ``prune``, ``qat``, or a user's
own technique's ``name``), precisions (``fp32``, ``fp16``, ``dynamic-int8``, ``int8``) and
engines (``litert``, ``tensorflow``, and ``xla`` for the TensorFlow engine's XLA compilation).
This module imports no TensorFlow: spaces run in the process that samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from autotune.search.recipe import Recipe
from autotune.storage import store

T = TypeVar("T")


@dataclass(frozen=True)
class Capabilities:
    """The probe's findings: for each name probed, None (it applies) or why it cannot."""

    techniques: dict[str, str | None] = field(default_factory=dict)
    precisions: dict[str, str | None] = field(default_factory=dict)
    engines: dict[str, str | None] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds each check took
    kept: bool = False  # found by an earlier probe of the same model on this host, not probed again

    def reason(self, name: str) -> str | None:
        """Why ``name`` cannot apply to this model, or None if it can (or was not probed)."""
        for group in (self.techniques, self.precisions, self.engines):
            if group.get(name):
                return group[name]
        return None

    def excluded(self) -> dict[str, str]:
        """Every name left out of the search, with its reason, in probe order."""
        return {k: v for g in (self.techniques, self.precisions, self.engines) for k, v in g.items() if v}

    def blocking(self, recipe: Recipe) -> tuple[str, str] | None:
        """The first part of ``recipe`` the probe excluded, and why; None if it may be built."""
        names = [s.name for s in recipe.steps] + [recipe.precision, recipe.runtime.engine]
        if recipe.runtime.engine == "tensorflow" and recipe.runtime.xla:
            names.append("xla")
        for name in names:
            why = self.reason(name)
            if why:
                return name, why
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"techniques": self.techniques, "precisions": self.precisions, "engines": self.engines,
                "seconds": self.seconds, "timings": self.timings} | ({"kept": True} if self.kept else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Capabilities:
        data = data or {}
        return cls(
            techniques=dict(data.get("techniques", {})),
            precisions=dict(data.get("precisions", {})),
            engines=dict(data.get("engines", {})),
            seconds=float(data.get("seconds", 0.0)),
            timings=dict(data.get("timings", {})),
            kept=bool(data.get("kept", False)),
        )


def of_study(study: Any) -> Capabilities:
    """The capabilities stored on ``study`` (empty before the probe ran: everything allowed)."""
    try:
        return Capabilities.from_dict(study.user_attrs.get(store.CAPABILITIES))
    except AttributeError:  # a trial without a study (a space called by hand)
        return Capabilities()


def can(trial: Any, name: str) -> bool:
    """True unless the study's probe found that ``name`` cannot apply to its model."""
    return of_study(getattr(trial, "study", None)).reason(name) is None


def choices(trial: Any, options: Sequence[T]) -> list[T]:
    """The ``options`` (precisions, engines, ...) the study's model allows, in their order;
    never empty: if the probe excluded all of them, the first stays (its trials then say why)."""
    caps = of_study(getattr(trial, "study", None))
    kept = [o for o in options if not isinstance(o, str) or caps.reason(o) is None]
    return kept or list(options[:1])


def switch(trial: Any, param: str, technique: str) -> bool:
    """``trial.suggest_categorical(param, [False, True])`` for an optional technique, offering
    only False when the model cannot take it, so the sampler never proposes it."""
    return bool(trial.suggest_categorical(param, [False, True] if can(trial, technique) else [False]))
