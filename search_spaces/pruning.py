"""Pruning only, searched in depth: TF-MOT magnitude pruning (sparsity, constant or polynomial
schedule, 2:4 structure, fine-tuning length) and channel pruning (which removes whole filters,
so the dense kernels really get smaller), each optional, then LiteRT at fp32 or
dynamic-range int8 with 1..cores threads.

What to expect on CPUs: unstructured sparsity shrinks the gzip size of the artifact, not its
latency (XNNPACK runs the zeros); channel pruning is what buys time. This space measures that
on your model instead of assuming it.
"""

import optuna

from autotune.measure.stats import usable_cores
from autotune.search.capabilities import can, choices, switch
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques import ChannelPrune, MagnitudePrune


def space(trial: optuna.Trial) -> Recipe:
    steps: list = []
    if switch(trial, "channel_prune", "channel-prune"):
        steps.append(ChannelPrune(keep=trial.suggest_float("keep", 0.25, 0.75, step=0.25), epochs=2))
    if trial.suggest_categorical("prune", [True, False] if can(trial, "prune") else [False]):
        epochs = trial.suggest_categorical("prune_epochs", [1, 2])
        if trial.suggest_categorical("structure", ["unstructured", "2:4"]) == "2:4":
            steps.append(MagnitudePrune(sparsity=0.5, structure="2:4", epochs=epochs))
        else:
            steps.append(
                MagnitudePrune(
                    sparsity=trial.suggest_float("sparsity", 0.3, 0.9, step=0.15),
                    schedule=trial.suggest_categorical("schedule", ["constant", "polynomial"]),
                    epochs=epochs,
                )
            )
    precision = trial.suggest_categorical("precision", choices(trial, ["fp32", "dynamic-int8"]))
    threads = trial.suggest_int("threads", 1, usable_cores())
    return Recipe(precision=precision, runtime=Runtime(engine="litert", threads=threads), steps=tuple(steps))
