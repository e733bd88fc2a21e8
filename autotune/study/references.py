"""What every study holds besides its searched trials: the fp32 baseline (measured first,
as a trial of its own), the capability probe's findings, the reference recipes, and the
front re-timed at the end of a run."""

from __future__ import annotations

import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from autotune.errors import CandidateFailed, SearchStopped
from autotune.results.front import environments, front_rows
from autotune.search import capabilities
from autotune.search.recipe import BASELINE_REF
from autotune.storage import store
from autotune.storage.record import Remeasurement, TrialRecord, queued, write_remeasurement
from autotune.study.evaluator import Evaluator
from autotune.study.settings import Reporter, Settings
from autotune.study.workers import fail_zombies
from autotune.study.workspace import Plan


def ensure_references(study: optuna.Study, plan: Plan) -> None:
    """Queue the reference recipes (other than the baseline) that no trial holds yet."""
    have = {
        TrialRecord.from_trial(t).reference
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING))
    }
    caps = capabilities.of_study(study)
    for name in plan.references:
        if name != BASELINE_REF and name not in have and caps.blocking(plan.references[name]) is None:
            study.enqueue_trial({}, user_attrs=queued(reference=name), skip_if_exists=False)


def _wait_for_baseline_trial(study: optuna.Study, settings: Settings) -> None:
    """Another worker (or a killed run) holds a running baseline trial: wait until it ends or
    its heartbeat goes stale (then it is failed and queued again)."""
    while not study.user_attrs.get(store.BASELINE) and any(
        TrialRecord.from_trial(t).reference == BASELINE_REF for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ):
        time.sleep(settings.poll_s)
        fail_zombies(study, settings)


def ensure_baseline(
    study: optuna.Study, run_trial: Callable[[optuna.Trial], list[float]], after_trial: Callable[..., None], settings: Settings
) -> None:
    """Measure the fp32 baseline as a trial of its own before any other, unless the study has
    one: every speed-up and accuracy drop is relative to it. It runs through ``optimize``
    like every trial, so a heartbeat watches it too."""
    fail_zombies(study, settings)
    _wait_for_baseline_trial(study, settings)
    if store.BASELINE in study.user_attrs:
        return
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if not any(TrialRecord.from_trial(t).reference == BASELINE_REF for t in waiting):
        study.enqueue_trial({}, user_attrs=queued(reference=BASELINE_REF))
    study.optimize(run_trial, n_trials=1, catch=(CandidateFailed,), callbacks=[after_trial], gc_after_trial=False)
    if store.BASELINE not in study.user_attrs:
        last = [t for t in study.get_trials(deepcopy=False) if TrialRecord.from_trial(t).reference == BASELINE_REF][-1]
        reason = TrialRecord.from_trial(last).fail_reason or "unknown"
        raise SearchStopped(f"the fp32 baseline (trial {last.number}) failed, so nothing can be compared: {reason}")


def ensure_probe(study: optuna.Study, evaluator: Evaluator, reporter: Reporter) -> None:
    """Find once, before the search, which techniques, precisions and engines this study's
    model allows, and keep it on the study: spaces read it, `show` and `run` tell it."""
    if store.CAPABILITIES in study.user_attrs:
        return
    if any(t.params for t in study.get_trials(deepcopy=False)):
        # A study searched before probes existed: its spaces' choices are fixed by its first
        # trials (Optuna refuses a categorical whose choices change), so it keeps them all.
        study.set_user_attr(store.CAPABILITIES, capabilities.Capabilities().to_dict() | {"failed": "the study was searched before any probe"})
        return
    reporter.probe_started()
    try:
        found = evaluator.probe()
    except CandidateFailed as e:  # the probe's process died: allow everything, trials will tell
        found = capabilities.Capabilities().to_dict() | {"failed": str(e)}
    study.set_user_attr(store.CAPABILITIES, found)
    reporter.probed(found)


def best_feasible_ms(study: optuna.Study) -> float | None:
    best = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        m = TrialRecord.from_trial(t).metrics
        if m and m.feasible and (best is None or m.figures.latency_p50_ms < best):
            best = m.figures.latency_p50_ms
    return best


def remeasure_front(study: optuna.Study, evaluator: Evaluator, reporter: Reporter) -> int:
    """Time every row of the front table again (members and references), against the baseline
    as in a trial, and keep the result beside the search's figures. Returns the rows timed."""
    env = str(evaluator.env["id"])
    if env not in environments(study.get_trials(deepcopy=False)):
        return 0
    rows = front_rows(study, env=env)
    for r in rows:
        record = TrialRecord.from_trial(study.trials[r.trial])
        assert record.recipe is not None and record.metrics is not None  # a front row is timed
        reporter.trial_started(r.trial, f"re-measuring {r.recipe}")
        reporter.stage("latency")
        try:
            final = Remeasurement(evaluator.remeasure(record.recipe))
        except CandidateFailed as e:
            final = Remeasurement({"failed": str(e)})
        write_remeasurement(study, r.trial, final)
        reporter.front_remeasured(r.trial, r.recipe, record.metrics.values, final.values)
    return len(rows)
