"""A study of the built-in space in Optuna's in-memory storage, and trials told to it as if
measured, for the tests of the rules that queue models after a trial (``study.chains``,
``study.wider``). No TensorFlow."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from autotune.search.plugins import load_space
from autotune.storage import store

SPACE = load_space("default")
BASELINE = {"accuracy": 0.99, "latency_p50_ms": 0.1}
WITHIN = lambda loss: loss["accuracy_drop"] <= 0.01  # noqa: E731  (the limit: a drop of 0.01)
DEPLOY = {"engine": "litert", "precision": "int8", "qat": False, "threads": 2}
STUDENT = {"distill": True, "distill_width": 0.25, "temperature": 2.0, "alpha": 0.9, "channel_prune": False, "prune": False}
THINNING = ("distill", "channel-prune")


def new_study(storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """A study as ``autotune run`` holds it (``store.Study``), in ``storage`` (in memory)."""
    storage = storage or optuna.storages.InMemoryStorage()
    name = optuna.create_study(directions=["minimize", "maximize"], storage=storage).study_name
    study = store.Study(study_name=name, storage=storage)
    study.set_user_attr(store.BASELINE, BASELINE)
    return study


def measured(
    study: optuna.Study,
    params: dict[str, Any],
    accuracies: list[float],
    speedup: float,
    user_attrs: dict[str, Any] | None = None,
    thins: bool = True,
    feasible: bool | None = None,
    env: str | None = "env",
) -> optuna.trial.FrozenTrial:
    """A trial measured on the host ``env`` (None: on no host named) at ``speedup``: its lineage says what each step left
    (``accuracies``, one per step; the last is the deployment's) and, with ``thins``, that
    distillation and channel pruning left fewer parameters. Within the limit by its drop, or
    as ``feasible`` says. Empty ``params``: the base model at int8, as a reference measures it."""
    study.enqueue_trial(params, user_attrs=user_attrs or {})
    trial = study.ask()
    recipe = SPACE(trial).to_dict() if params else {"steps": [], "precision": "int8", "runtime": {"engine": "litert", "threads": 2, "batch_size": 1}}
    lineage: list[dict[str, Any]] = [{"step": "base"}]
    for s, a in zip(recipe["steps"], accuracies):
        facts = {"params_before": 1000, "params": 500} if thins and s["name"] in THINNING else {}
        lineage.append({"step": s["name"], **s["params"], "accuracy_keras": a, **facts})
    trial.set_user_attr(store.RECIPE, recipe)
    trial.set_user_attr(store.LINEAGE, lineage)
    if env is not None:
        trial.set_user_attr(store.ENV_ID, env)
    accuracy = accuracies[-1] if accuracies else BASELINE["accuracy"]
    p50 = BASELINE["latency_p50_ms"] / speedup
    drop = BASELINE["accuracy"] - accuracy
    metrics = {"latency_p50_ms": p50, "speedup": speedup, "accuracy": accuracy, "accuracy_drop": drop, "feasible": drop <= 0.01 if feasible is None else feasible}
    trial.set_user_attr(store.METRICS, metrics)
    study.tell(trial, [p50, accuracy])
    return study.trials[-1]


def queued_by(study: optuna.Study, trial: optuna.trial.FrozenTrial, callback: str, attr: str) -> list[tuple[int, str]]:
    """Run the deployer after ``trial``: what it reported through ``callback`` (``on_wider``,
    ``on_narrower``: the trial each model came from, and the recipe as users read it), each
    queued trial marked ``attr`` with the trial it came from; the queued trials are then taken
    and failed."""
    from autotune.study.deployments import Deployer

    found: list[tuple[int, str]] = []
    Deployer(SPACE, 50, "env", lambda n, k: None, within=WITHIN, **{callback: lambda n, text: found.append((n, text))})(study, trial)
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if attr in t.user_attrs:
            assert t.user_attrs[attr]["trial"] == found[-1][0]
    for _ in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study.tell(study.ask(), state=TrialState.FAIL)
    return found
