"""Everything autotune can do to a model, searched jointly: a chain of

    distill → channel-prune → prune → QAT

(each step optional, in that order), then a precision and a runtime as in ``quick``.

Parameters take a few discrete values each, so that trials share trained intermediates
through the cache: a distilled student costs its training once and then serves every trial
that builds on it. FINE_TUNE_EPOCHS sets the per-step fine-tuning budget; copy this file to
your project's ``search_spaces/`` folder and change it for a larger model or data set.
"""

import optuna

from autotune.measure.stats import usable_cores
from autotune.search.capabilities import can, choices, switch
from autotune.search.recipe import PRECISIONS, Recipe, Runtime
from autotune.techniques import ChannelPrune, Distill, MagnitudePrune, QuantizeAware

FINE_TUNE_EPOCHS = 2
DISTILL_EPOCHS = 4
# Magnitude pruning reaches its target sparsity within one epoch; on CPUs it buys size, not speed.
PRUNE_EPOCHS = 1
QAT_EPOCHS = 1


def space(trial: optuna.Trial) -> Recipe:
    steps: list = []
    # Only what the study's capability probe found this model can take is ever proposed.
    if switch(trial, "distill", "distill"):
        steps.append(
            Distill(
                width=trial.suggest_float("distill_width", 0.25, 0.75, step=0.25),
                temperature=trial.suggest_categorical("temperature", [2.0, 4.0]),
                alpha=trial.suggest_categorical("alpha", [0.5, 0.9]),
                epochs=DISTILL_EPOCHS,
            )
        )
    if switch(trial, "channel_prune", "channel-prune"):
        steps.append(ChannelPrune(keep=trial.suggest_float("keep", 0.25, 0.75, step=0.25), epochs=FINE_TUNE_EPOCHS))
    pruned = switch(trial, "prune", "prune")
    if pruned:
        structure = trial.suggest_categorical("structure", ["unstructured", "2:4"])
        if structure == "2:4":
            steps.append(MagnitudePrune(sparsity=0.5, structure="2:4", epochs=PRUNE_EPOCHS))
        else:
            steps.append(
                MagnitudePrune(
                    sparsity=trial.suggest_float("sparsity", 0.3, 0.9, step=0.3),
                    schedule=trial.suggest_categorical("schedule", ["constant", "polynomial"]),
                    epochs=PRUNE_EPOCHS,
                )
            )

    cores = usable_cores()
    engine = trial.suggest_categorical("engine", choices(trial, ["litert", "tensorflow"]))
    if engine == "tensorflow":
        xla = trial.suggest_categorical("xla", [False, True] if can(trial, "xla") else [False])
        return Recipe(precision="fp32", runtime=Runtime(engine="tensorflow", threads=cores, xla=xla), steps=tuple(steps))
    precision = trial.suggest_categorical("precision", choices(trial, list(PRECISIONS)))
    if precision == "int8" and switch(trial, "qat", "qat"):
        preserve = pruned and trial.suggest_categorical("qat_preserve_sparsity", [False, True])
        steps.append(QuantizeAware(preserve_sparsity=preserve, epochs=QAT_EPOCHS))
    threads = trial.suggest_int("threads", 1, cores)
    return Recipe(precision=precision, runtime=Runtime(engine="litert", threads=threads), steps=tuple(steps))
