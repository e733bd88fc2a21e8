"""Every precision and runtime the machine offers for the model as it is, no training.

LiteRT at fp32 / fp16 / dynamic-range int8 / full int8 with 1..cores threads, or the
TensorFlow SavedModel with and without XLA. A trial costs a conversion (cached) and a
measurement, about 1.5 s for a small CNN.
"""

import optuna

from autotune.measure.stats import usable_cores
from autotune.search.capabilities import can, choices
from autotune.search.recipe import PRECISIONS, Recipe, Runtime


def space(trial: optuna.Trial) -> Recipe:
    cores = usable_cores()
    engine = trial.suggest_categorical("engine", choices(trial, ["litert", "tensorflow"]))
    if engine == "litert":
        precision = trial.suggest_categorical("precision", choices(trial, list(PRECISIONS)))
        threads = trial.suggest_int("threads", 1, cores)
        return Recipe(precision=precision, runtime=Runtime(engine="litert", threads=threads))
    xla = trial.suggest_categorical("xla", [False, True] if can(trial, "xla") else [False])
    # TensorFlow's thread pools are per process: it always runs on every usable core.
    return Recipe(precision="fp32", runtime=Runtime(engine="tensorflow", threads=cores, xla=xla))
