"""Which ways of deploying a model the study has shown never win, judged from its measured trials.

What the study has already shown never wins is left out most of the time: a way of deploying
(precision, engine, threads, XLA) that was measured on ``LOSER_AFTER`` trained models and won
on none of them, or that on every model it was measured on was at least
``FAR_SLOWER`` times slower than that model's fastest way and no more accurate (the TensorFlow
runtime against LiteRT at batch 1, typically), is left out; on every ``LOSER_EVERY``-th new
model one of them is tried again, the one measured on the fewest models. A way wins on a
model when it is the fastest there (of the ways within the accuracy limit, if any), within
``TIE`` of the fastest (a difference the search's timing does not resolve), or on the model's
own front: within the limit, more accurate than every faster way and not ``FAR_SLOWER``. On a
Zen 4 study of the demo, dynamic-int8 read ×3.78 on its first model against int8's ×5.78 (a
reading that studies of the same student put at ×6.7) and ×7.08 against ×7.45 on the second,
and was left out from then on, although on the other seeds' fronts it was the most accurate
fast student. Being more accurate keeps a slow way only when it is within the accuracy limit. A thread count that was slower than
another for the same model, precision and engine in ``LOSER_AFTER`` such comparisons and never
the fastest of one is left out with every way of that engine and batch using it (the first
model deployed every way compares thread counts once per precision).

The space is asked again with fixed parameters by ``Replay``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FixedTrial, FrozenTrial, TrialState

from autotune.errors import AutotuneError
from autotune.search.recipe import Recipe
from autotune.storage.record import TrialRecord
from autotune.techniques import TECHNIQUES

# The parameters by which the built-in spaces say how a model is deployed.
DEPLOY_PARAMS = ("engine", "precision", "threads")
# ... and those asked only for one engine (XLA for TensorFlow).
ENGINE_PARAMS = ("xla",)
DEPLOYED = (*DEPLOY_PARAMS, *ENGINE_PARAMS)
LOSER_AFTER = 2
LOSER_EVERY = 4
FAR_SLOWER = 2.0
# Speeds within this ratio are one speed to the search (its timings are trusted to about
# ``TimingPolicy.noise_limit``).
TIE = 1.10


class Replay(FixedTrial):
    """The space asked again with fixed parameters, seeing the study (its probe's findings).

    A question the trial never answered (whether to add QAT, asked only at int8) takes its
    first choice or lowest value, "off" in the built-in spaces; a value the space does not
    offer is refused. The caller keeps the replay only if it makes the same model.
    """

    def __init__(self, params: dict[str, Any], study: optuna.Study) -> None:
        super().__init__(params)
        self.study = study

    def _suggest(self, name: str, distribution: BaseDistribution) -> Any:
        if name not in self._params:
            offered = choices(distribution)
            self._params[name] = offered[0] if offered else getattr(distribution, "low")
        internal = distribution.to_internal_repr(self._params[name])  # ValueError: not a choice
        if not distribution._contains(internal):
            raise ValueError(f"{name}={self._params[name]!r} is not offered by the space")
        return super()._suggest(name, distribution)

def replayed(space: Callable[[Any], Recipe], params: dict[str, Any], study: optuna.Study) -> tuple[Replay, Recipe] | None:
    """The space asked again with ``params`` (``Replay``): what it asked and the recipe it
    made, or None where it does not take them."""
    replay = Replay(params, study)
    try:
        recipe = space(replay)
    except (AutotuneError, ValueError, KeyError, TypeError):
        return None
    return (replay, recipe) if isinstance(recipe, Recipe) else None


def made_key(recipe: dict[str, Any]) -> str:
    """What identifies how a model was made: its chain of steps (and the batch it takes)."""
    return json.dumps({"steps": recipe["steps"], "batch": recipe["runtime"].get("batch_size", 1)}, sort_keys=True)


def shape_key(recipe: dict[str, Any]) -> str:
    """What sets how fast a deployment runs: its chain with only the parameters that shape the
    model (``Technique.shape_params``; all of a technique that declares none, or unknown
    here), without the steps that leave the shape as they found it (those that declare it
    shaped by none of their parameters: magnitude pruning, QAT), and how it is deployed. Two
    deployments with one key differ in weights only: a student distilled at another
    temperature, or pruned, runs as fast as its sibling."""
    steps = []
    for step in recipe["steps"]:
        shaping = _shape_params(step)
        if shaping == ():
            continue
        params = step.get("params", {})
        steps.append({"name": step["name"], "params": params if shaping is None else {k: v for k, v in params.items() if k in shaping}})
    rest = {k: v for k, v in recipe.items() if k != "steps"}
    return json.dumps({"steps": steps, **rest}, sort_keys=True)


def _shape_params(step: dict[str, Any]) -> tuple[str, ...] | None:
    """The parameters that set the shape of the model ``step`` leaves (``Technique.shape_params``;
    None where its technique declares none, or is unknown here)."""
    return getattr(TECHNIQUES.get(step["name"]), "shape_params", None)


def leaves_shape(step: dict[str, Any]) -> bool:
    """Whether ``step`` leaves its model's shape as it found it (its technique declares no
    parameter that shapes it: magnitude pruning and QAT, whose kernels stay dense), so it
    cannot make it faster."""
    return _shape_params(step) == ()


def model_shape(recipe: dict[str, Any]) -> str:
    """``shape_key`` of the model alone, however it is deployed (and the batch it takes)."""
    return shape_key({"steps": recipe["steps"], "runtime": {"batch_size": recipe["runtime"].get("batch_size", 1)}})


def deployment_kind(recipe: dict[str, Any]) -> str:
    r = recipe["runtime"]
    xla = " · XLA" if r.get("xla") else ""
    return f"{recipe['precision']} · {r['engine']} · {r['threads']}t{xla}"


def choices(dist: Any) -> list[Any]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        n = int(round((dist.high - dist.low) / dist.step))
        return [dist.low + i * dist.step for i in range(n + 1)]
    return []

def measured_trials(trials: list[FrozenTrial]) -> list[tuple[FrozenTrial, TrialRecord]]:
    """Complete trials that measured an artifact (not gated, not repeats), with their records."""
    out = []
    for t in trials:
        r = TrialRecord.from_trial(t)
        if t.state == TrialState.COMPLETE and r.timed and r.metrics and not r.metrics.gated and r.repeat_of is None and r.recipe is not None:
            out.append((t, r))
    return out


def _by_model(trials: list[FrozenTrial]) -> dict[str, list[TrialRecord]]:
    """The measured trials' records, by the model they deploy (``made_key``)."""
    by_model: dict[str, list[TrialRecord]] = {}
    for _, r in measured_trials(trials):
        by_model.setdefault(made_key(r.recipe), []).append(r)
    return by_model


def losers(trials: list[FrozenTrial]) -> set[str]:
    """Ways of deploying measured on at least ``LOSER_AFTER`` trained models and the fastest
    (of the feasible ones, else of all) on none of them, and ways that were ``FAR_SLOWER``
    than the fastest and no more accurate on every model they were measured on."""
    by_model = _by_model(trials)
    seen: dict[str, int] = {}
    won: set[str] = set()
    close: set[str] = set()  # within FAR_SLOWER of the fastest, or more accurate, on some model
    for group in by_model.values():
        kinds = {deployment_kind(r.recipe) for r in group}
        if len(kinds) < 2:
            continue  # one way only: nothing was compared on this model
        for k in kinds:
            seen[k] = seen.get(k, 0) + 1
        pool = [r for r in group if r.metrics.feasible] or group
        best = min(pool, key=lambda r: r.metrics["latency_p50_ms"])
        won |= _wins(pool, best)
        for r in group:
            # More accurate counts only within the limit: an infeasible way is no trade-off.
            more_accurate = r.metrics.feasible and r.metrics.quality_loss < best.metrics.quality_loss
            if r.metrics["latency_p50_ms"] < FAR_SLOWER * best.metrics["latency_p50_ms"] or more_accurate:
                close.add(deployment_kind(r.recipe))
    slow = slower_thread_counts(trials)
    ways = {deployment_kind(r.recipe): thread_way(r.recipe) for group in by_model.values() for r in group}
    return {k for k, n in seen.items() if k not in won and (n >= LOSER_AFTER or k not in close)} | {
        k for k, w in ways.items() if k not in won and w in slow
    }


def _wins(pool: list[TrialRecord], best: TrialRecord) -> set[str]:
    """The ways that won on one model, of its ``pool`` of deployments (those within the
    limit, if any) whose fastest is ``best``: it, those within ``TIE`` of it, and those
    within the limit more accurate than every faster one, unless ``FAR_SLOWER``."""
    fastest = best.metrics["latency_p50_ms"]
    won = {deployment_kind(r.recipe) for r in pool if r.metrics["latency_p50_ms"] <= TIE * fastest}
    least_loss = float("inf")
    for r in sorted(pool, key=lambda r: r.metrics["latency_p50_ms"]):
        if r.metrics.feasible and r.metrics.quality_loss < least_loss:
            least_loss = r.metrics.quality_loss
            if r.metrics["latency_p50_ms"] < FAR_SLOWER * fastest:
                won.add(deployment_kind(r.recipe))
    return won


def thread_way(recipe: dict[str, Any]) -> tuple[str, int, int]:
    """(engine, batch, threads): what a thread count is judged by."""
    r = recipe["runtime"]
    return (r["engine"], r.get("batch_size", 1), r["threads"])


def slower_thread_counts(trials: list[FrozenTrial]) -> set[tuple[str, int, int]]:
    """Thread counts, as ``thread_way``s (by engine and batch), that were slower than another
    thread count for the same model, precision and engine in at least ``LOSER_AFTER`` such
    comparisons, and never the fastest of one.

    Each comparison is another artifact (another precision's kernels, another model), so the
    first model deployed every way already compares the thread counts once per precision: on a
    2-core machine at batch 1, one thread lost on every one of them, and deploying the next
    models at one thread as well spent a trial per precision on what was already shown.
    """
    lost: dict[tuple[str, int, int], int] = {}
    fastest_once: set[tuple[str, int, int]] = set()
    for group in _by_model(trials).values():
        by_way: dict[tuple[Any, ...], list[TrialRecord]] = {}
        for r in group:
            rt = r.recipe["runtime"]
            by_way.setdefault((r.recipe["precision"], rt["engine"], bool(rt.get("xla"))), []).append(r)
        for same in by_way.values():
            if len({r.recipe["runtime"]["threads"] for r in same}) < 2:
                continue
            fastest = min(r.metrics["latency_p50_ms"] for r in same)
            for r in same:
                t = thread_way(r.recipe)
                if r.metrics["latency_p50_ms"] > fastest:
                    lost[t] = lost.get(t, 0) + 1
                else:
                    fastest_once.add(t)
    return {t for t, n in lost.items() if n >= LOSER_AFTER and t not in fastest_once}

def models_measured(done: list[tuple[FrozenTrial, TrialRecord]]) -> dict[str, int]:
    """On how many trained models each way of deploying was measured."""
    seen: dict[str, set[str]] = {}
    for _, r in done:
        seen.setdefault(deployment_kind(r.recipe), set()).add(made_key(r.recipe))
    return {k: len(v) for k, v in seen.items()}
