"""The Pareto front over real Optuna trials (in-memory storage, no TensorFlow)."""

import optuna
from optuna.trial import TrialState, create_trial

from autotune import store
from autotune.front import fastest_feasible, front_rows, pareto_trials


def _trial(number_hint, p50, acc, baseline_acc=0.99, baseline_p50=1.0, reference=None):
    drop = baseline_acc - acc
    metrics = {
        "latency_p50_ms": p50,
        "latency_p90_ms": p50 * 1.1,
        "latency_p99_ms": p50 * 1.2,
        "accuracy": acc,
        "accuracy_drop": drop,
        "speedup": baseline_p50 / p50,
        "size_bytes": 1000,
        "gzip_bytes": 900,
        "feasible": drop <= 0.01,
    }
    attrs = {store.METRICS: metrics, store.RECIPE_TEXT: f"recipe {number_hint}"}
    if reference:
        attrs[store.REFERENCE] = reference
    return create_trial(state=TrialState.COMPLETE, values=[p50, acc], user_attrs=attrs)


def _study(trials):
    study = optuna.create_study(directions=["minimize", "maximize"])
    for t in trials:
        study.add_trial(t)
    return study


def test_front_keeps_exactly_the_non_dominated_trials_fastest_first():
    study = _study(
        [
            _trial(0, 1.0, 0.99, reference="fp32-baseline"),
            _trial(1, 0.3, 0.985),
            _trial(2, 0.5, 0.98),  # dominated by 1
            _trial(3, 0.1, 0.90),
            _trial(4, 0.9, 0.995),
        ]
    )
    rows = front_rows(study, with_references=False)
    assert [r.trial for r in rows] == [3, 1, 4]
    with_refs = front_rows(study)
    assert [(r.trial, r.on_front) for r in with_refs] == [(3, True), (1, True), (4, True), (0, False)]


def test_fastest_feasible_respects_the_accuracy_limit():
    study = _study([_trial(0, 1.0, 0.99), _trial(1, 0.3, 0.985), _trial(2, 0.1, 0.90)])
    rows = front_rows(study)
    assert fastest_feasible(rows, 0.01).trial == 1
    assert fastest_feasible(rows, 0.10).trial == 2
    assert fastest_feasible(rows, 0.0).trial == 0


def test_failed_and_pruned_trials_are_never_on_the_front():
    study = _study([_trial(0, 1.0, 0.99)])
    study.add_trial(create_trial(state=TrialState.FAIL))
    study.add_trial(create_trial(state=TrialState.PRUNED))
    assert [t.number for t in pareto_trials(study.get_trials(), ["minimize", "maximize"])] == [0]
