"""The Pareto front of a study and the rows users see: pure functions of stored trials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotune.errors import ConfigError
from autotune.results.pareto import minimised, non_dominated
from autotune.storage import store
from autotune.storage.record import MAE, Remeasurement, TrialRecord, remeasurements


@dataclass(frozen=True)
class FrontRow:
    """One row of the front table. Latency and speed-up are the end-of-run re-measurement
    when there is one (``remeasured``), else the search's; ``search_*`` keep the search's."""

    trial: int
    recipe: str
    params: dict[str, Any]
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    speedup: float
    speedup_low: float | None
    speedup_high: float | None
    noisy: bool
    remeasured: bool
    search_latency_p50_ms: float
    search_speedup: float
    # The quality the limit applies to: "accuracy" (higher is better) or "mae" (lower is
    # better), and how much worse than the baseline the row is (accuracy drop, MAE increase).
    quality_name: str
    quality: float
    quality_loss: float
    accuracy: float | None
    accuracy_drop: float | None
    top5_accuracy: float | None
    mae: float | None
    size_bytes: int
    gzip_bytes: int
    cold_start_ms: float | None
    throughput_sps: float | None
    batch_size: int
    macs: int | None
    floor_ratio: float | None
    feasible: bool
    reference: str | None
    on_front: bool
    env_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @property
    def higher_is_better(self) -> bool:
        return self.quality_name != MAE.name


def pareto_trials(trials: list[FrozenTrial], directions: list[str]) -> list[FrozenTrial]:
    """Complete trials no other complete trial dominates, over the objective values alone.

    Constraints are shown, not filtered: the fastest feasible trial is always on this front
    (anything dominating it is at least as accurate, hence feasible too), and the infeasible
    members show what the limit costs.
    """
    done = [
        t for t in trials if t.state == TrialState.COMPLETE and t.values is not None and TrialRecord.from_trial(t).repeat_of is None
    ]
    return non_dominated(done, lambda t: minimised(t.values, directions))


def timed(t: FrozenTrial) -> bool:
    """A complete trial with measured metrics (not one the accuracy gate stopped)."""
    return t.state == TrialState.COMPLETE and TrialRecord.from_trial(t).timed


def row(t: FrozenTrial, on_front: bool = True, final: Remeasurement | None = None) -> FrontRow:
    record = TrialRecord.from_trial(t)
    m = record.metrics
    assert m is not None, f"trial {t.number} has no metrics"
    search = m.figures
    remeasured = final is not None and final.figures is not None
    shown = final.figures if final is not None and final.figures is not None else search
    floor = m.get("compute_floor_ms")
    return FrontRow(
        trial=t.number,
        recipe=record.recipe_text or "?",
        params=dict(t.params),
        latency_p50_ms=shown.latency_p50_ms,
        latency_p90_ms=shown.latency_p90_ms,
        latency_p99_ms=shown.latency_p99_ms,
        speedup=shown.speedup,
        speedup_low=shown.speedup_low,
        speedup_high=shown.speedup_high,
        noisy=shown.noisy,
        remeasured=remeasured,
        search_latency_p50_ms=search.latency_p50_ms,
        search_speedup=search.speedup,
        quality_name=m.quality.name,
        quality=m.quality_value,
        quality_loss=m.quality_loss,
        accuracy=m.get("accuracy"),
        accuracy_drop=m.get("accuracy_drop"),
        top5_accuracy=m.get("top5_accuracy"),
        mae=m.get("mae"),
        size_bytes=m.size_bytes,
        gzip_bytes=m.gzip_bytes,
        cold_start_ms=m.get("cold_start_ms"),
        throughput_sps=shown.throughput_sps,
        batch_size=m.batch_size,
        macs=m.get("macs"),
        floor_ratio=shown.latency_p50_ms / floor if floor else None,
        feasible=m.feasible,
        reference=record.reference,
        on_front=on_front,
        env_id=record.env_id,
    )


def environments(trials: list[FrozenTrial]) -> dict[str, int]:
    """How many timed trials each environment fingerprint measured."""
    counts: dict[str, int] = {}
    for t in trials:
        if timed(t):
            env_id = TrialRecord.from_trial(t).env_id
            env = str("unknown" if env_id is None else env_id)
            counts[env] = counts.get(env, 0) + 1
    return counts


def _one_environment(trials: list[FrozenTrial], env: str | None) -> list[FrozenTrial]:
    """The trials measured on ``env`` ("all": every one). Latency from two machines is not
    comparable, so with several fingerprints and no choice this refuses rather than mixes."""
    counts = environments(trials)
    if env == "all":
        return trials
    if env is None:
        if len(counts) <= 1:
            return trials
        listed = ", ".join(f"{e} ({n} trials)" for e, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        raise ConfigError(
            f"this study's latencies were measured on {len(counts)} different environments: {listed}; "
            "choose one with --env ID, or mix them knowingly with --env all"
        )
    if env not in counts:
        raise ConfigError(f"no trial was measured on environment {env!r}; this study has {', '.join(sorted(counts))}")
    return [t for t in trials if not timed(t) or TrialRecord.from_trial(t).env_id == env]


def timed_rows(study: optuna.Study, env: str | None = None) -> list[FrontRow]:
    """Every timed trial of ``env`` as a row (``on_front`` marks the front's members): what
    export chooses from when a size or latency limit may rule out every front member."""
    trials = _one_environment(study.get_trials(deepcopy=False), env)
    directions = [d.name.lower() for d in study.directions]
    done = [t for t in trials if timed(t)]
    members = {t.number for t in pareto_trials(done, directions)}
    finals = remeasurements(study)
    return sorted((row(t, on_front=t.number in members, final=finals.get(t.number)) for t in done), key=lambda r: r.latency_p50_ms)


def front_rows(study: optuna.Study, *, with_references: bool = True, env: str | None = None) -> list[FrontRow]:
    """The front, fastest first; the reference recipes are listed even when dominated, so
    every table shows what the search bought over them (``on_front`` tells them apart).

    Membership is decided on the values the search saw; the figures shown are the end-of-run
    re-measurement where there is one.
    """
    trials = _one_environment(study.get_trials(deepcopy=False), env)
    directions = [d.name.lower() for d in study.directions]
    members = {t.number for t in pareto_trials([t for t in trials if timed(t)], directions)}
    shown = [
        t
        for t in trials
        if timed(t)
        and (t.number in members or (with_references and TrialRecord.from_trial(t).reference is not None))
    ]
    finals = remeasurements(study)
    rows = (row(t, on_front=t.number in members, final=finals.get(t.number)) for t in shown)
    return sorted(rows, key=lambda r: (r.latency_p50_ms, r.quality_loss))


def fastest_feasible(
    rows: list[FrontRow], max_accuracy_drop: float, by: str = "latency_p50_ms", *, recorded: bool = True
) -> FrontRow | None:
    """The best row within the quality limit (and, with ``recorded``, feasible as recorded: the
    study's other constraints hold): lowest p50, or with ``by="throughput_sps"`` (a throughput
    study) the most samples per second."""
    within = [r for r in rows if (r.feasible or not recorded) and r.quality_loss <= max_accuracy_drop + 1e-12]
    if by == "throughput_sps":
        return max(within, key=lambda r: r.throughput_sps or 0.0, default=None)
    return min(within, key=lambda r: r.latency_p50_ms, default=None)


def ranking_metric(study: optuna.Study) -> str:
    """What "fastest" means for a study: its throughput objective, else p50 latency."""
    names = study.metric_names or []
    return "throughput_sps" if names and names[0] == "throughput_sps" else "latency_p50_ms"


@dataclass(frozen=True)
class StudySummary:
    name: str
    complete: int
    failed: int
    pruned: int
    running: int
    budget: int | None
    best_feasible_ms: float | None
    best_recipe: str | None
    created: str


def summarize(study: optuna.Study) -> StudySummary:
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    config = study.user_attrs.get(store.CONFIG, {})
    limit = config.get("max_accuracy_drop", 0.01)
    finals = remeasurements(study)
    best = fastest_feasible([row(t, final=finals.get(t.number)) for t in trials if timed(t)], limit)
    return StudySummary(
        name=study.study_name,
        complete=count[TrialState.COMPLETE],
        failed=count[TrialState.FAIL],
        pruned=count[TrialState.PRUNED],
        running=count[TrialState.RUNNING],
        budget=config.get("budget"),
        best_feasible_ms=best.latency_p50_ms if best else None,
        best_recipe=best.recipe if best else None,
        created=study.user_attrs.get(store.CREATED, "?"),
    )
