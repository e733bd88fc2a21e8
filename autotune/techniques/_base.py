"""The base of every technique, and the registry that turns a stored step back into one.

A technique is a frozen dataclass subclassing ``Technique``. Every subclass that names
itself is registered when its class is defined, in ``TECHNIQUES`` (stored name → class), so
that a recipe read from the database can be rebuilt (end-of-run re-measurement, export,
resume): the built-ins when ``autotune.techniques`` is imported, a technique of the user's
own when the space file that defines it is imported (the trial process imports it too, and
export imports it when a stored recipe names a technique it does not know). A user's class
may not take a built-in's name; of two user classes with one name, the later definition wins
(a space file read afresh). This module imports only the errors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from autotune.errors import InvalidRecipe

TECHNIQUES: dict[str, type[Technique]] = {}


class Technique(ABC):
    """One step that turns a Keras model into another Keras model (prune, distill, QAT, ...).

    Subclasses are frozen dataclasses whose fields are the technique's parameters. ``apply``
    must be deterministic given its parameters, the parent model and the study seed, because
    its output is cached under a content key derived from exactly those.
    """

    name: ClassVar[str]
    # Position in a chain: distill (0) → channel-prune (1) → prune (2) → QAT (3). A chain
    # runs in increasing order, each technique at most once.
    order: ClassVar[int]
    # The only precision the technique's result survives conversion at, if any.
    requires_precision: ClassVar[str | None] = None
    # The parameters that set the shape of the model the step leaves (its layers' sizes), and
    # so how fast it runs; the others (how it is trained) change its weights only. None: not
    # declared, every parameter may change the shape. The search trains the shape of its
    # fastest model again with the others changed (``study.chains.sibling_plan``).
    shape_params: ClassVar[tuple[str, ...] | None] = None
    # Of those, the ones whose larger value leaves a larger model (slower, and as a rule more
    # accurate): the search widens the model whose accuracy counts most on its front by one
    # value of one of them (``study.chains.wider_plan``).
    wider_with: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _register(cls)

    def validate(self) -> None:
        """Raise InvalidRecipe for parameters out of range."""

    def params(self) -> dict[str, Any]:
        return dict(sorted(vars(self).items()))

    @abstractmethod
    def apply(self, model: Any, context: Any) -> Any:
        """Return a new Keras model; raise CandidateFailed if this candidate cannot be made."""

    def describe(self) -> str:
        return self.name

    def probe(self, model: Any) -> str | None:
        """Why this technique cannot apply to ``model`` at all, found cheaply (no training),
        or None if it can. Runs once per study, before the search, on a copy of the model;
        the default claims nothing, so a trial of the technique is what finds out."""
        return None


def check_ratio(name: str, value: float, low: float, high: float) -> None:
    """Raise InvalidRecipe unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise InvalidRecipe(f"{name} must be between {low} and {high}, got {value}")




def _register(cls: type[Technique]) -> None:
    """Make ``cls`` rebuildable from a stored recipe. ``TECHNIQUES`` stays in chain order (the
    probe tries them, and reports them, that way)."""
    taken = TECHNIQUES.get(cls.name)
    if taken is not None and taken.__module__.startswith("autotune.") and taken.__qualname__ != cls.__qualname__:
        raise InvalidRecipe(f"technique {cls.__qualname__} is named {cls.name!r}, which autotune's {taken.__qualname__} already is; choose another name")
    ordered = sorted({**TECHNIQUES, cls.name: cls}.items(), key=lambda item: getattr(item[1], "order", len(TECHNIQUES)))
    TECHNIQUES.clear()
    TECHNIQUES.update(ordered)


def technique_from_dict(data: dict[str, Any]) -> Technique:
    try:
        cls = TECHNIQUES[data["name"]]
    except KeyError:
        raise InvalidRecipe(f"unknown technique {data.get('name')!r} in a stored recipe") from None
    try:
        return cls(**data["params"])
    except TypeError as e:
        raise InvalidRecipe(f"stored {data['name']} step has parameters this version does not know: {e}") from None
