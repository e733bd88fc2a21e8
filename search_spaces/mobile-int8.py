"""For phones and microcontroller-class targets that run full-integer models: every candidate
is a full int8 LiteRT model (int8 input and output), made smaller first by an optional
distilled student and channel pruning, and quantised after training or with
quantisation-aware training. Threads 1..cores (a phone app often gets one).
"""

import optuna

from autotune.measure.stats import usable_cores
from autotune.search.capabilities import switch
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques import ChannelPrune, Distill, QuantizeAware


def space(trial: optuna.Trial) -> Recipe:
    steps: list = []
    if switch(trial, "distill", "distill"):
        steps.append(
            Distill(
                width=trial.suggest_float("distill_width", 0.25, 0.75, step=0.25),
                temperature=trial.suggest_categorical("temperature", [2.0, 4.0]),
                alpha=0.9,
                epochs=4,
            )
        )
    if switch(trial, "channel_prune", "channel-prune"):
        steps.append(ChannelPrune(keep=trial.suggest_float("keep", 0.25, 0.75, step=0.25), epochs=2))
    if switch(trial, "qat", "qat"):
        steps.append(QuantizeAware(epochs=1))
    threads = trial.suggest_int("threads", 1, usable_cores())
    return Recipe(precision="int8", runtime=Runtime(engine="litert", threads=threads), steps=tuple(steps))
