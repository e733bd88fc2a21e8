"""One trial, top to bottom: ask → recipe → build → gate → convert → measure → record.

``run_trial`` is what Optuna calls for each trial, in the process that holds the study. It
asks the space for a recipe (or takes a reference recipe), checks it against the budget, the
capability probe and the recipe's own rules, hands it to the evaluator and records what came
back. The evaluator runs ``evaluate`` (below) where the model lives, usually a child process
(``autotune.study.child``): build (train, or take from the cache), gate on the trained
accuracy, convert, then measure accuracy and latency of the deployed artifact. The two halves
meet at ``Evaluator.evaluate``: a recipe and the known baseline go in, an ``Outcome`` comes out.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import optuna

from autotune.errors import CandidateFailed, ConfigError, InvalidRecipe, TrainingStopped
from autotune.measure.artifact import open_executor
from autotune.measure.stats import artifact_size, quality
from autotune.search import capabilities
from autotune.search.recipe import BASELINE_REF, Recipe
from autotune.storage import store
from autotune.storage.record import Metrics, Quality, RecordWriter, TrialRecord
from autotune.study.faults import fault_point
from autotune.study.settings import Reporter, Settings
from autotune.study.ways import shape_key
from autotune.study.workers import surplus
from autotune.study.workspace import Plan, Workspace
from autotune.techniques.training import FIRST_EPOCH, FirstEpochRule

if TYPE_CHECKING:
    from autotune.study.evaluator import Evaluator

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


# A measured trial that held every constraint: (quality loss, speed-up, batch size, the
# shape it ran: ``study.ways.shape_key``).
Rival = tuple[float, float, int, str]


def run_trial(trial: optuna.Trial, plan: Plan, evaluator: Evaluator, reporter: Reporter) -> list[float]:
    """Run one trial and return its objective values.

    Raises CandidateFailed (a FAIL trial, its reason recorded) when the candidate cannot be
    built or measured or the budget is already filled; ``optuna.TrialPruned`` when the probe
    excluded a part of the recipe or the recipe is invalid; ConfigError when the space
    returns something that is not a Recipe.
    """
    # Ask: a reference recipe queued for this trial, or the space's proposal.
    record = RecordWriter(trial)
    reference = TrialRecord.from_trial(trial).reference
    if reference != BASELINE_REF and surplus(trial.study, trial.number, plan.config.budget):
        record.surplus("not run: other workers' trials already fill the budget")
        raise CandidateFailed("not run: the budget is already taken by earlier trials")
    recipe = plan.references[reference] if reference else plan.space(trial)

    # Recipe: what the model allows, the searched batch, the recipe's own rules.
    if not isinstance(recipe, Recipe):
        raise ConfigError(f"space {plan.config.space!r} returned {type(recipe).__name__}, not a Recipe")
    blocked = None if reference == BASELINE_REF else capabilities.of_study(trial.study).blocking(recipe)
    if blocked is not None:
        # A space that does not ask the probe proposed what this model cannot take.
        record.recipe(recipe.describe())
        record.failed(f"{blocked[0]} does not apply to this model: {blocked[1]}")
        raise optuna.TrialPruned(f"{blocked[0]} excluded by the capability probe")
    if plan.objective.batch_sizes and not reference:
        # Throughput objectives search the batch: it belongs to the runtime, not to the space.
        batch = trial.suggest_categorical("batch_size", list(plan.objective.batch_sizes))
        recipe = dataclasses.replace(recipe, runtime=dataclasses.replace(recipe.runtime, batch_size=batch))
    record.recipe(recipe.describe())
    reporter.trial_started(trial.number, recipe.describe())
    try:
        recipe.validate()
    except InvalidRecipe as e:
        record.failed(f"invalid recipe: {e}")
        raise optuna.TrialPruned(str(e)) from None
    record.write(TrialRecord(recipe=recipe.to_dict(), env_id=evaluator.env["id"]))

    # No repeats: a configuration this study already measured here is answered from its record.
    trials = trial.study.get_trials(deepcopy=False)
    if reference != BASELINE_REF:
        prior = store.measured_before(trials, recipe.to_dict(), evaluator.env["id"], trial.number)
        if prior is not None:
            return _repeat(trial, prior, plan)

    # Build, gate, convert, measure: ``evaluate`` below, in the evaluator's process.
    known_baseline = None if reference == BASELINE_REF else trial.study.user_attrs[store.BASELINE]
    gains = None if known_baseline is None else first_epoch_gains(trials, plan.objective.task)
    rivals = None if known_baseline is None else feasible_rivals(trials, evaluator.env["id"])
    outcome = evaluator.evaluate(trial.number, recipe, known_baseline, reporter.stage, gains, rivals)

    # Record: what the evaluation recorded, the metrics against the baseline, the constraints.
    evaluated = TrialRecord.from_attrs(outcome.attrs)
    record.write(evaluated)
    process = (evaluated.process or {}).get("pid", os.getpid())
    record.worker(f"{WORKER_ID}/{process}")
    if outcome.failed is not None:
        record.failed(outcome.failed)
        raise CandidateFailed(outcome.failed)
    assert outcome.metrics is not None
    if known_baseline is None:
        baseline = {"trial": trial.number, **outcome.metrics}
        trial.study.set_user_attr(store.BASELINE, baseline)
    else:
        baseline = known_baseline
    # The speed-up is the interleaved ratio the measurement took (for the baseline trial,
    # the baseline against itself: how close to 1 the method gets).
    metrics = Metrics(outcome.metrics).judged(Quality.for_task(plan.objective.task), baseline, plan.objective.feasible)
    record.metrics(metrics)
    fault_point("write", trial.number)
    for c in plan.objective.constraints:
        trial.set_constraint(c.name, c.violation(metrics.values))
    return plan.objective.values(metrics.values)


def _repeat(trial: optuna.Trial, prior: optuna.trial.FrozenTrial, plan: Plan) -> list[float]:
    """Record ``trial`` as a repeat of ``prior``: its figures, constraints and values, nothing
    trained or timed (the sampler sees the result again; the budget and the front do not).
    A repeat of a failed candidate fails the same way (CandidateFailed), without running."""
    first = TrialRecord.from_trial(prior)
    if prior.state == optuna.trial.TrialState.FAIL:
        reason = f"repeat of #{prior.number}, which failed: {first.fail_reason}"
        RecordWriter(trial).write(TrialRecord(repeat_of=prior.number, fail_reason=reason, lineage=first.lineage))
        raise CandidateFailed(reason)
    assert first.metrics is not None
    RecordWriter(trial).repeat(first, prior.number)
    for c in plan.objective.constraints:
        trial.set_constraint(c.name, c.violation(first.metrics.values))
    return plan.objective.values(first.metrics.values)


class Attrs:
    """What a trial records while it is evaluated (in this process or a child), applied to
    the Optuna trial by the process that holds it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.user_attrs: dict[str, Any] = {}

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


def evaluate(
    ws: Workspace,
    trial: Attrs,
    recipe: Recipe,
    settings: Settings,
    stage: Callable[[str], None],
    baseline: dict[str, Any] | None,
    gains: dict[str, float] | None = None,
    rivals: list[Rival] | None = None,
) -> dict[str, Any]:
    """Train (or take from the cache), gate, convert, then measure accuracy and latency of the
    deployed artifact; return all metrics. With ``gains`` (and a baseline), a fine-tuning run
    hopeless after its first epoch stops there and the trial comes back gated. With
    ``rivals`` (``feasible_rivals``), a noisy search timing is taken again only if it could
    beat every rival at least as accurate, and one far slower than a rival of its shape read
    is taken again (``Timer.time``'s ``expect``)."""
    record = RecordWriter(trial)
    timings: dict[str, float] = {}
    try:
        with ws.lock.shared() as waited:
            timings["work_lock_wait_s"] = waited
            t0 = time.perf_counter()
            stage("train" if recipe.steps else "build")
            fault_point("train", trial.number)
            rule = None if baseline is None or gains is None else first_epoch_rule(ws, settings, baseline, gains)
            try:
                built = ws.builder.build_model(recipe, rule)
            except TrainingStopped as e:
                assert baseline is not None  # no rule without one
                record.lineage(e.lineage)
                record.gated(str(e))
                (value,) = e.quality.values()
                gated = Metrics.gated_at(Quality.for_task(ws.data.task), value, baseline).values
                return gated | {"stopped_after_epoch": 1}
            finally:
                timings["train_s"] = time.perf_counter() - t0
            record.lineage(built.lineage)
            if baseline is not None and recipe.steps:
                gated = _gate(ws, trial, built.facts, baseline, settings)
                if gated is not None:
                    return gated

            t0 = time.perf_counter()
            stage("convert")
            fault_point("convert", trial.number)
            try:
                candidate = ws.builder.convert(built, recipe)
            finally:
                timings["convert_s"] = time.perf_counter() - t0
            record.lineage(candidate.lineage)
            assert candidate.path is not None

            t0 = time.perf_counter()
            stage("accuracy")
            fault_point("accuracy", trial.number)
            executor, _ = open_executor(candidate.path, recipe.runtime)
            scores = quality(executor.predict, ws.data.x_val, ws.data.y_val, ws.data.task)
            del executor
            timings["accuracy_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        stage("latency")
        fault_point("latency", trial.number)
        beat, expect = 1.0, None
        if baseline is not None and rivals:
            loss = Quality.for_task(ws.data.task).loss(scores, baseline)["quality_loss"]
            beat = to_beat(rivals, loss, recipe.runtime.batch_size)
            expect = shape_reading(rivals, shape_key(recipe.to_dict()))
        timed = ws.timer().time(candidate.path, recipe, ws.data.x_val, beat=beat, expect=expect)
        timings["latency_s"] = time.perf_counter() - t0
        timings["measure_lock_wait_s"] = timed.lock_wait_s
        record.measurement(timed.record())
    finally:
        record.cache(ws.cache.take_counts().as_dict())
        record.timings(timings)

    size, gz = artifact_size(candidate.path)
    return Metrics.measured(scores, size, gz, timed.metrics()).values


def feasible_rivals(trials: list[optuna.trial.FrozenTrial], env_id: str) -> list[Rival]:
    """The study's ``trials`` measured on this environment within every constraint, as rivals."""
    rivals = []
    for t in trials:
        r = TrialRecord.from_trial(t)
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        m = r.metrics
        if r.env_id == env_id and m is not None and m.feasible and not m.gated and m.get("speedup") is not None:
            rivals.append((m.quality_loss, float(m["speedup"]), int(m.get("batch_size", 1)), shape_key(r.recipe) if r.recipe else ""))
    return rivals


def to_beat(rivals: list[Rival], loss: float, batch_size: int) -> float:
    """The fastest speed-up among ``rivals`` at ``batch_size`` that lose no more quality than
    ``loss``: a trial slower than that, and no more accurate, is dominated (1.0 when none)."""
    return max((s for rl, s, b, _ in rivals if b == batch_size and rl <= loss + 1e-12), default=1.0)


def shape_reading(rivals: list[Rival], shape: str) -> float | None:
    """The fastest speed-up among ``rivals`` that ran ``shape`` (``study.ways.shape_key``: the
    same computation, weights aside), None when none did."""
    return max((s for _, s, _, k in rivals if k == shape), default=None)


def _gate(
    ws: Workspace, trial: Attrs, facts: dict[str, Any], baseline: dict[str, Any], settings: Settings
) -> dict[str, Any] | None:
    """Metrics of a trial stopped by the accuracy gate, or None if it may go on.

    A gated trial is complete, so the sampler learns from it: its accuracy (or MAE) is the
    trained model's, its constraint is violated by that much, and its latency and size are the
    baseline's (not measured: the sampler sees no gain there). It never shows on the front.
    """
    q = Quality.for_task(ws.data.task)
    value = facts.get(f"{q.name}_keras")
    if value is None:
        return None
    loss = q.loss({q.name: value}, baseline)["quality_loss"]
    limit = gate_loss(ws.config.max_accuracy_drop, settings.gate_margin, q, baseline)
    if loss <= limit:
        return None
    worse = "a drop" if q.higher_is_better else "an MAE increase"
    reason = f"{q.name} {value:.4f} after training, {worse} of {loss:.4f}, is past the gate at {limit:.4f}: not converted or timed"
    RecordWriter(trial).gated(reason)
    return Metrics.gated_at(q, value, baseline).values


def first_epoch_rule(ws: Workspace, settings: Settings, baseline: dict[str, Any], gains: dict[str, float]) -> FirstEpochRule:
    """The gate's rule, applied after the first epoch of a fine-tuning run (early stop by fidelity)."""
    q = Quality.for_task(ws.data.task)
    return FirstEpochRule(ws.data.task, baseline[q.name], gate_loss(ws.config.max_accuracy_drop, settings.gate_margin, q, baseline), gains)


def first_epoch_gains(trials: list[optuna.trial.FrozenTrial], task: str) -> dict[str, float]:
    """By technique, the most a fine-tuning run of the study gained from its first epoch to its
    last (accuracy points, or MAE), read from the finished ``trials``' lineage."""
    q = Quality.for_task(task)
    first, last = f"{q.name}_keras{FIRST_EPOCH}", f"{q.name}_keras"
    gains: dict[str, float] = {}
    for t in trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        for step in TrialRecord.from_trial(t).lineage or ():
            if first in step and last in step and "stopped_after_epoch" not in step:
                gain = q.sign * (step[first] - step[last])  # how much the loss fell
                gains[step["step"]] = max(gains.get(step["step"], gain), gain)
    return gains


def gate_loss(max_accuracy_drop: float, gate_margin: float, q: Quality, baseline: Mapping[str, Any]) -> float:
    """The loss (accuracy drop, or MAE increase) past which a trained model is gated: the
    margin is in accuracy points, for a regressor the same share of its baseline MAE."""
    return gate_limit(max_accuracy_drop, gate_margin * (1.0 if q.higher_is_better else baseline[q.name]))


def gate_limit(max_accuracy_drop: float, margin: float) -> float:
    """The Keras-accuracy drop past which a trained candidate is not converted or timed: far
    enough past the limit that conversion (which rarely gains accuracy) cannot save it."""
    return max(2 * max_accuracy_drop, max_accuracy_drop + margin)
