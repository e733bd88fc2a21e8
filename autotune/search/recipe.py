"""What to build and how to run it: a Recipe is an ordered chain of techniques, a precision
and a Runtime. Recipes are plain values: hashable, comparable, serialisable to JSON.

Training-based techniques (pruning, distillation, QAT) are Technique subclasses
(``autotune.techniques``) placed in ``Recipe.steps``; the final conversion to a deployable artifact is decided by ``precision``
and ``runtime``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from autotune.errors import InvalidRecipe
from autotune.techniques import Technique, technique_from_dict

Precision = Literal["fp32", "fp16", "dynamic-int8", "int8"]
Engine = Literal["litert", "tensorflow"]

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "dynamic-int8", "int8")
ENGINES: tuple[str, ...] = ("litert", "tensorflow")
# TensorFlow runs the SavedModel in float32; the quantised precisions exist only as TFLite.
_TENSORFLOW_PRECISIONS = ("fp32",)
MAX_THREADS = 256
# The reference recipe every speed-up is measured against (see ``reference_recipes``).
BASELINE_REF = "fp32-baseline"


@dataclass(frozen=True)
class Runtime:
    """How the deployed artifact is executed and timed."""

    engine: Engine = "litert"
    threads: int = 1
    batch_size: int = 1
    xla: bool = False

    def describe(self) -> str:
        if self.engine == "litert":
            parts = ["litert", f"{self.threads} thread{'s' if self.threads != 1 else ''}"]
        else:
            parts = ["tensorflow" + (" xla" if self.xla else "")]
        if self.batch_size != 1:
            parts.append(f"batch {self.batch_size}")
        return " · ".join(parts)


@dataclass(frozen=True)
class Recipe:
    """An ordered chain of techniques, then conversion to ``precision`` run by ``runtime``."""

    precision: Precision = "fp32"
    runtime: Runtime = field(default_factory=Runtime)
    steps: tuple[Technique, ...] = ()

    def validate(self) -> Recipe:
        """Raise InvalidRecipe for a combination that cannot be built; return self otherwise."""
        rt = self.runtime
        if self.precision not in PRECISIONS:
            raise InvalidRecipe(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if rt.engine not in ENGINES:
            raise InvalidRecipe(f"unknown engine {rt.engine!r}; choose one of {', '.join(ENGINES)}")
        if rt.engine == "tensorflow" and self.precision not in _TENSORFLOW_PRECISIONS:
            raise InvalidRecipe(f"precision {self.precision} exists only as TFLite; the tensorflow engine runs fp32")
        if rt.engine == "litert" and rt.xla:
            raise InvalidRecipe("XLA jit_compile applies to the tensorflow engine, not litert")
        if not 1 <= rt.threads <= MAX_THREADS:
            raise InvalidRecipe(f"threads must be between 1 and {MAX_THREADS}, got {rt.threads}")
        if rt.batch_size < 1:
            raise InvalidRecipe(f"batch size must be at least 1, got {rt.batch_size}")
        for before, after in zip(self.steps, self.steps[1:]):
            if after.order <= before.order:
                raise InvalidRecipe(
                    f"{after.name} cannot follow {before.name}: a chain runs distill → channel-prune → prune → qat, "
                    "each at most once"
                )
        for step in self.steps:
            step.validate()
            if step.requires_precision and self.precision != step.requires_precision:
                raise InvalidRecipe(f"{step.name} must be converted at {step.requires_precision}, not {self.precision}")
        return self

    @property
    def artifact_format(self) -> str:
        return "tflite" if self.runtime.engine == "litert" else "saved_model"

    def describe(self) -> str:
        """A readable one-liner such as ``int8 · litert · 2 threads``."""
        chain = "".join(f"{step.describe()} → " for step in self.steps)
        return f"{chain}{self.precision} · {self.runtime.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [{"name": s.name, "params": s.params()} for s in self.steps],
            "precision": self.precision,
            "runtime": {
                "engine": self.runtime.engine,
                "threads": self.runtime.threads,
                "batch_size": self.runtime.batch_size,
                "xla": self.runtime.xla,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        return cls(
            precision=data["precision"],
            runtime=Runtime(**data["runtime"]),
            steps=tuple(technique_from_dict(s) for s in data.get("steps", ())),
        )


def reference_recipes(cores: int) -> dict[str, Recipe]:
    """The recipes every study starts with, so the front always holds them.

    ``fp32-baseline`` is what deploying by hand gives (TFLite fp32); every speed-up is over it.
    ``seeds-int8`` is the recipe the usual advice gives: full-integer post-training int8
    with a representative data set.
    """
    runtime = Runtime(engine="litert", threads=cores)
    return {
        BASELINE_REF: Recipe(precision="fp32", runtime=runtime),
        "seeds-int8": Recipe(precision="int8", runtime=runtime),
    }
