"""A trial's record: what autotune keeps about one trial, typed, and the one place that turns it
into Optuna user attributes and back.

The attributes keep the keys (``store.METRICS``, ``store.LINEAGE``, ...) and the JSON shape
studies have always stored, so a study written by an earlier autotune reads back unchanged.
``TrialRecord.from_trial`` reads a trial; ``RecordWriter`` writes one part at a time while the
trial runs (a trial killed half-way keeps the parts it had). The metrics and the end-of-run
re-measurement keep their stored dicts whole, in their stored order (an objective may pick any
key of the metrics, and ``show`` lists them as stored); their typed views are properties.

The rule from a task to the quality its limit applies to (``Quality``) lives here, the lowest
layer that needs it: the record reads the quality of a stored trial, and ``measure``, ``study``
and ``results`` above all take it from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial

from autotune.storage import store


@dataclass(frozen=True)
class Quality:
    """The one number a study's quality limit applies to, whatever the task, and how much worse
    than the fp32 baseline a candidate is on it (accuracy points lost, or MAE gained)."""

    name: str  # the metric: "accuracy" or "mae"
    loss_name: str  # the loss's own metric: "accuracy_drop" or "mae_increase"
    sign: float  # loss = sign * (value - baseline value)

    @property
    def higher_is_better(self) -> bool:
        return self.sign < 0

    @staticmethod
    def for_task(task: str) -> Quality:
        """Classification: accuracy (higher is better); regression: MAE (lower is better)."""
        return MAE if task == "regression" else ACCURACY

    @staticmethod
    def of(metrics: Mapping[str, Any]) -> Quality:
        """The quality a stored metrics dict was judged on (a regressor's metrics have ``mae``)."""
        return MAE if "mae" in metrics else ACCURACY

    def loss(self, metrics: Mapping[str, float], baseline: Mapping[str, float]) -> dict[str, float]:
        """``accuracy_drop`` (baseline − accuracy) or ``mae_increase`` (mae − baseline), and the
        same number as ``quality_loss``."""
        loss = self.sign * (metrics[self.name] - baseline[self.name])
        return {self.loss_name: loss, "quality_loss": loss}


ACCURACY = Quality("accuracy", "accuracy_drop", -1.0)
MAE = Quality("mae", "mae_increase", 1.0)


@dataclass(frozen=True)
class Figures:
    """The latency figures of one measurement: the search's, or the end-of-run re-measurement's.
    Values are as stored (an int stays an int in the JSON a user is shown)."""

    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    speedup: float
    speedup_low: float | None = None
    speedup_high: float | None = None
    noisy: bool = False
    throughput_sps: float | None = None

    @staticmethod
    def of(values: Mapping[str, Any]) -> Figures:
        return Figures(
            latency_p50_ms=values["latency_p50_ms"],
            latency_p90_ms=values["latency_p90_ms"],
            latency_p99_ms=values["latency_p99_ms"],
            speedup=values["speedup"],
            speedup_low=values.get("speedup_low"),
            speedup_high=values.get("speedup_high"),
            noisy=bool(values.get("noisy", False)),
            throughput_sps=values.get("throughput_sps"),
        )


@dataclass(frozen=True)
class Metrics:
    """What a trial measured, judged against the baseline: the dict every objective picks its
    values from (``values``, as stored). A gated trial's metrics are its trained quality and the
    baseline's figures (``gated``); it never shows on the front."""

    values: dict[str, Any]

    @staticmethod
    def measured(scores: Mapping[str, float], size_bytes: int, gzip_bytes: int, timing: Mapping[str, Any]) -> Metrics:
        """A converted and timed candidate's metrics: its quality scores, size and timing."""
        return Metrics({**scores, "size_bytes": size_bytes, "gzip_bytes": gzip_bytes, **timing})

    @staticmethod
    def gated_at(quality: Quality, value: float, baseline: Mapping[str, Any]) -> Metrics:
        """The metrics of a trial the accuracy gate stopped: its trained quality, the rest the
        baseline's (not measured: the sampler sees no gain there)."""
        keep = {k: v for k, v in baseline.items() if k != "trial"}
        return Metrics({**keep, quality.name: value, "gated": True})

    def judged(self, quality: Quality, baseline: Mapping[str, Any], feasible: Callable[[dict[str, Any]], bool]) -> Metrics:
        """These metrics with their loss against ``baseline`` and whether the objective's
        constraints hold (``feasible``: ``Objective.feasible``)."""
        values = self.values | quality.loss(self.values, baseline)
        return Metrics(values | {"feasible": feasible(values)})

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def figures(self) -> Figures:
        return Figures.of(self.values)

    @property
    def quality(self) -> Quality:
        return Quality.of(self.values)

    @property
    def quality_value(self) -> float:
        return self.values[self.quality.name]

    @property
    def quality_loss(self) -> float:
        """How much worse than the baseline (studies from before ``quality_loss``: the drop)."""
        return self.values.get("quality_loss", self.values.get("accuracy_drop", 0.0))

    @property
    def feasible(self) -> bool:
        return bool(self.values.get("feasible", False))

    @property
    def gated(self) -> bool:
        return bool(self.values.get("gated", False))

    @property
    def size_bytes(self) -> int:
        return int(self.values["size_bytes"])

    @property
    def gzip_bytes(self) -> int:
        return int(self.values["gzip_bytes"])

    @property
    def batch_size(self) -> int:
        return int(self.values.get("batch_size", 1))


@dataclass(frozen=True)
class Remeasurement:
    """A front row timed again at the end of a run: its latency figures with the environment and
    time of the measurement, or why the artifact no longer ran (``failed``). Kept on the study
    (a finished trial cannot change), under ``store.final_key(number)``."""

    values: dict[str, Any]

    @property
    def failed(self) -> str | None:
        return self.values.get("failed")

    @property
    def figures(self) -> Figures | None:
        return None if not self.values or self.failed is not None else Figures.of(self.values)


def remeasurements(study: optuna.Study) -> dict[int, Remeasurement]:
    """The study's end-of-run re-measurements, by trial number."""
    return {number: Remeasurement(values) for number, values in store.finals(study).items()}


def write_remeasurement(study: optuna.Study, number: int, final: Remeasurement) -> None:
    study.set_user_attr(store.final_key(number), final.values)


# Each field of a TrialRecord and the user attribute it is stored under.
_KEYS = {
    "recipe_text": store.RECIPE_TEXT,
    "recipe": store.RECIPE,
    "reference": store.REFERENCE,
    "warm_start": store.WARM_START,
    "env_id": store.ENV_ID,
    "metrics": store.METRICS,
    "gated": store.GATED,
    "fail_reason": store.FAIL_REASON,
    "lineage": store.LINEAGE,
    "timings": store.TIMINGS,
    "cache": store.CACHE,
    "measurement": store.MEASUREMENT,
    "worker": store.WORKER,
    "process": store.PROCESS,
    "surplus": store.SURPLUS,
    "repeat_of": store.REPEAT_OF,
    "deployment_of": store.DEPLOYMENT_OF,
    "prefix_of": store.PREFIX_OF,
    "extension_of": store.EXTENSION_OF,
    "sibling_of": store.SIBLING_OF,
    "wider_of": store.WIDER_OF,
    "narrower_of": store.NARROWER_OF,
}


@dataclass(frozen=True)
class TrialRecord:
    """Everything autotune stores on one trial; None (or ``surplus`` False) where nothing is.

    Attributes:
        recipe_text: The recipe as users read it (``Recipe.describe``).
        recipe: The recipe's spec (``Recipe.to_dict``), what export rebuilds.
        reference: The reference recipe the trial ran (``fp32-baseline``, ...), None if searched.
        warm_start: ``STUDY#N``: the earlier trial whose parameters this one repeats.
        env_id: The fingerprint of the environment that measured it.
        metrics: What it measured, judged against the baseline.
        gated: Why the accuracy gate stopped it before conversion and timing.
        fail_reason: Why it failed or was pruned.
        lineage: The steps that made its model, each with its parameters and facts.
        timings: Seconds per stage (train, convert, accuracy, latency) and lock waits.
        cache: The build cache's hits and misses for it.
        measurement: How the latency was taken: cores, lock wait, attempts, calls.
        worker: ``host:pid/pid``: the worker that held it and the process that ran it.
        process: That process: pid, resident memory after the trial, restarts so far.
        surplus: Not run: other workers' trials had already filled the budget.
        repeat_of: The earlier trial that measured the same configuration; this one took its
            figures and was not run (it fills no budget and shows on no front).
        deployment_of: Queued to deploy an already measured model another way:
            ``{"trial": its first measured trial, "made": how the model was made}``.
        prefix_of: Queued to measure the model made on the way by an earlier trial's chain,
            which ended past the accuracy limit: ``{"trial": that trial, "made": ...}``.
        extension_of: Queued to measure an earlier trial's model (among the study's fastest)
            taken one step further: ``{"trial": it, "from": how its model was made, "made": ...}``.
        sibling_of: Queued to train the model of an earlier trial (among the study's fastest)
            another way, its shape unchanged: ``{"trial": it, "shape": ..., "made": ...}``.
        wider_of: Queued to measure the model of an earlier trial (the one whose accuracy
            counts most on the study's front) one value wider: ``{"trial": it, "from": ..., "made": ...}``.
        narrower_of: Queued to measure the model of an earlier trial (among the study's
            fastest) one value thinner: ``{"trial": it, "from": ..., "made": ...}``.
    """

    recipe_text: str | None = None
    recipe: dict[str, Any] | None = None
    reference: str | None = None
    warm_start: str | None = None
    env_id: str | None = None
    metrics: Metrics | None = None
    gated: str | None = None
    fail_reason: str | None = None
    lineage: tuple[dict[str, Any], ...] | None = None
    timings: dict[str, float] | None = None
    cache: dict[str, Any] | None = None
    measurement: dict[str, Any] | None = None
    worker: str | None = None
    process: dict[str, Any] | None = None
    surplus: bool = False
    repeat_of: int | None = None
    deployment_of: dict[str, Any] | None = None
    prefix_of: dict[str, Any] | None = None
    extension_of: dict[str, Any] | None = None
    sibling_of: dict[str, Any] | None = None
    wider_of: dict[str, Any] | None = None
    narrower_of: dict[str, Any] | None = None

    @staticmethod
    def from_trial(trial: FrozenTrial | optuna.Trial) -> TrialRecord:
        return TrialRecord.from_attrs(trial.user_attrs)

    @staticmethod
    def from_attrs(attrs: Mapping[str, Any]) -> TrialRecord:
        """The record in a trial's user attributes; attributes that are not autotune's are left."""
        found = {name: attrs[key] for name, key in _KEYS.items() if key in attrs}
        if "metrics" in found:
            found["metrics"] = Metrics(found["metrics"])
        if "lineage" in found:
            found["lineage"] = tuple(found["lineage"])
        found["surplus"] = bool(found.get("surplus", False))
        return TrialRecord(**found)

    def to_attrs(self) -> dict[str, Any]:
        """The user attributes this record is stored as: the parts that are set, as JSON."""
        attrs: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name == "surplus" and not value):
                continue
            attrs[_KEYS[f.name]] = _stored(value)
        return attrs

    @property
    def timed(self) -> bool:
        """Measured metrics: converted and timed by this trial, not stopped by the accuracy
        gate and not a repeat answered from an earlier trial's record."""
        return self.metrics is not None and self.gated is None and self.repeat_of is None


def _stored(value: Any) -> Any:
    if isinstance(value, (Metrics, Remeasurement)):
        return value.values
    if isinstance(value, tuple):
        return list(value)
    return value


class SupportsUserAttrs(Protocol):
    def set_user_attr(self, key: str, value: Any) -> None: ...


class RecordWriter:
    """Writes a trial's record part by part as the trial goes, onto an ``optuna.Trial`` or onto
    what an evaluation collects in its own process (``study.trial.Attrs``). Each method stores
    one part of ``TrialRecord`` under its attribute, and nothing else writes them."""

    def __init__(self, trial: SupportsUserAttrs) -> None:
        self._trial = trial

    def write(self, record: TrialRecord) -> None:
        """Store every part ``record`` has (another process's collected parts, say)."""
        for key, value in record.to_attrs().items():
            self._trial.set_user_attr(key, value)

    def recipe(self, text: str, spec: dict[str, Any] | None = None) -> None:
        self.write(TrialRecord(recipe_text=text, recipe=spec))

    def failed(self, reason: str) -> None:
        self.write(TrialRecord(fail_reason=reason))

    def surplus(self, reason: str) -> None:
        self.write(TrialRecord(surplus=True, fail_reason=reason))

    def worker(self, worker: str) -> None:
        self.write(TrialRecord(worker=worker))

    def lineage(self, steps: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> None:
        self.write(TrialRecord(lineage=tuple(steps)))

    def repeat(self, of: TrialRecord, number: int) -> None:
        """This trial repeats trial ``number`` (record ``of``): what it measured and how the
        model was made, nothing of its own run."""
        self.write(TrialRecord(metrics=of.metrics, measurement=of.measurement, lineage=of.lineage, gated=of.gated, repeat_of=number))

    def gated(self, reason: str) -> None:
        self.write(TrialRecord(gated=reason))

    def measurement(self, how: dict[str, Any]) -> None:
        self.write(TrialRecord(measurement=how))

    def cache(self, counts: dict[str, Any]) -> None:
        self.write(TrialRecord(cache=counts))

    def timings(self, seconds: dict[str, float]) -> None:
        self.write(TrialRecord(timings=seconds))

    def metrics(self, metrics: Metrics) -> None:
        self.write(TrialRecord(metrics=metrics))


def queued(
    *,
    reference: str | None = None,
    warm_start: str | None = None,
    deployment_of: dict[str, Any] | None = None,
    prefix_of: dict[str, Any] | None = None,
    extension_of: dict[str, Any] | None = None,
    sibling_of: dict[str, Any] | None = None,
    wider_of: dict[str, Any] | None = None,
    narrower_of: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The user attributes of a trial queued to run a reference recipe, repeat an earlier one,
    deploy a measured model another way, measure a model an earlier chain made on its way, or
    take an earlier trial's model a step further, train its shape another way, or make it one
    value wider or thinner."""
    return TrialRecord(
        reference=reference,
        warm_start=warm_start,
        deployment_of=deployment_of,
        prefix_of=prefix_of,
        extension_of=extension_of,
        sibling_of=sibling_of,
        wider_of=wider_of,
        narrower_of=narrower_of,
    ).to_attrs()
