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
from autotune.study.evaluator import Evaluator
from autotune.study.settings import Reporter, Settings
from autotune.study.workers import fail_zombies
from autotune.study.workspace import Plan


def ensure_references(study: optuna.Study, plan: Plan) -> None:
    """Queue the reference recipes (other than the baseline) that no trial holds yet."""
    have = {
        t.user_attrs.get(store.REFERENCE)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING))
    }
    caps = capabilities.of_study(study)
    for name in plan.references:
        if name != BASELINE_REF and name not in have and caps.blocking(plan.references[name]) is None:
            study.enqueue_trial({}, user_attrs={store.REFERENCE: name}, skip_if_exists=False)


def _wait_for_baseline_trial(study: optuna.Study, settings: Settings) -> None:
    """Another worker (or a killed run) holds a running baseline trial: wait until it ends or
    its heartbeat goes stale (then it is failed and queued again)."""
    while not study.user_attrs.get(store.BASELINE) and any(
        t.user_attrs.get(store.REFERENCE) == BASELINE_REF for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
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
    queued = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if not any(t.user_attrs.get(store.REFERENCE) == BASELINE_REF for t in queued):
        study.enqueue_trial({}, user_attrs={store.REFERENCE: BASELINE_REF})
    study.optimize(run_trial, n_trials=1, catch=(CandidateFailed,), callbacks=[after_trial], gc_after_trial=False)
    if store.BASELINE not in study.user_attrs:
        last = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(store.REFERENCE) == BASELINE_REF][-1]
        reason = last.user_attrs.get(store.FAIL_REASON, "unknown")
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
        m = t.user_attrs.get(store.METRICS)
        if m and m["feasible"] and (best is None or m["latency_p50_ms"] < best):
            best = m["latency_p50_ms"]
    return best


def remeasure_front(study: optuna.Study, evaluator: Evaluator, reporter: Reporter) -> int:
    """Time every row of the front table again (members and references), against the baseline
    as in a trial, and keep the result beside the search's figures. Returns the rows timed."""
    env = str(evaluator.env["id"])
    if env not in environments(study.get_trials(deepcopy=False)):
        return 0
    rows = front_rows(study, env=env)
    for r in rows:
        t = study.trials[r.trial]
        reporter.trial_started(r.trial, f"re-measuring {r.recipe}")
        reporter.stage("latency")
        try:
            final = evaluator.remeasure(t.user_attrs[store.RECIPE])
        except CandidateFailed as e:
            final = {"failed": str(e)}
        study.set_user_attr(store.final_key(r.trial), final)
        reporter.front_remeasured(r.trial, r.recipe, t.user_attrs[store.METRICS], final)
    return len(rows)
