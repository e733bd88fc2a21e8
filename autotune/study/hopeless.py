"""Steps the study has shown to break a model: a proposal that takes one is drawn again.

A step (``channel-prune keep 0.25``, ``prune 0.9 polynomial``: a technique with its
parameters) breaks a model when the model it was given was within the accuracy gate and the
model it left, as training evaluated it, was past the gate. A step is hopeless once it broke
the base model itself, or ``BROKE_AFTER`` different models given to it, and never left a model
within the gate. The base model is the teacher: every student and pruned model is smaller
than it, so a step that breaks the base model leaves no smaller one within the gate either.
On a seed of the demo's benchmark TPE proposed ``channel-prune keep 0.25`` four times and ``prune 0.9`` four
times, in different chains, and every one of them was gated: 8 of 50 trials.

The gate (``trial.gate_loss``) is far enough past the accuracy limit that conversion cannot
bring a model back; a step judged on it is judged on the trained model, not on one deployment.
A run stopped after its first epoch counts with the accuracy it had then: the stop rule has
judged that it could not reach the gate. Applied to the base model, a step is the same
training run every time (the study's seed, the content cache), so once it broke the base
model, proposing it there again would repeat that run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from autotune.storage.record import Quality, TrialRecord

BROKE_AFTER = 2
# The steps of a lineage that made nothing (where the model came from, how it was converted).
_NOT_TRAINING = ("base", "convert")


def hopeless_steps(trials: list[FrozenTrial], baseline: Mapping[str, Any], gate: Callable[[Quality, Mapping[str, Any]], float]) -> list[dict[str, Any]]:
    """The steps (``{"name", "params"}`` as a recipe holds them) that broke the base model or
    ``BROKE_AFTER`` models and left none within the gate; ``gate(quality, baseline)`` is the
    loss past which a trained model is gated."""
    broke: dict[str, set[str]] = {}
    base_broke: set[str] = set()
    fine: set[str] = set()
    for t in trials:
        r = TrialRecord.from_trial(t)
        if t.state != TrialState.COMPLETE or r.recipe is None or not r.lineage or r.metrics is None or r.repeat_of is not None:
            continue
        q = r.metrics.quality
        if q.name not in baseline:
            continue
        limit = gate(q, baseline)
        trained = [step for step in r.lineage if step.get("step") not in _NOT_TRAINING]
        steps = r.recipe["steps"][: len(trained)]  # a run stopped early recorded the steps it ran
        if [s["name"] for s in steps] != [s.get("step") for s in trained]:
            continue  # a lineage that does not say what each step did
        loss_before = 0.0  # the base model: the baseline itself
        for i, (spec, facts) in enumerate(zip(steps, trained)):
            after = facts.get(f"{q.name}_keras")
            if after is None:
                break
            loss = q.loss({q.name: after}, baseline)["quality_loss"]
            key = json.dumps(spec, sort_keys=True)
            if loss <= limit:
                fine.add(key)
            elif loss_before <= limit:
                # Counted by the model it was given (the chain before it): the same step on the
                # same model, in a longer chain or at another batch, is one break, not two.
                broke.setdefault(key, set()).add(json.dumps(steps[:i], sort_keys=True))
                if i == 0:
                    base_broke.add(key)
            loss_before = loss
    return [json.loads(k) for k, models in broke.items() if k not in fine and (k in base_broke or len(models) >= BROKE_AFTER)]


def takes_one(steps: list[dict[str, Any]], hopeless: list[dict[str, Any]]) -> bool:
    """Whether a recipe's steps take one of the hopeless ones."""
    keys = {json.dumps(s, sort_keys=True) for s in hopeless}
    return any(json.dumps(s, sort_keys=True) in keys for s in steps)
