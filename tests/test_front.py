"""The Pareto front over real Optuna trials (in-memory storage, no TensorFlow)."""

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from autotune.errors import ConfigError
from autotune.results.front import FrontRow, fastest_feasible, front_rows, pareto_trials, row
from autotune.storage import store


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
    assert fastest_feasible(rows, 0.10).trial == 1  # trial 2 is past the study's own limit
    assert fastest_feasible(rows, 0.10, recorded=False).trial == 2
    assert fastest_feasible(rows, 0.0).trial == 0


def test_failed_and_pruned_trials_are_never_on_the_front():
    study = _study([_trial(0, 1.0, 0.99)])
    study.add_trial(create_trial(state=TrialState.FAIL))
    study.add_trial(create_trial(state=TrialState.PRUNED))
    assert [t.number for t in pareto_trials(study.get_trials(), ["minimize", "maximize"])] == [0]


def _on_env(t, env):
    t.user_attrs[store.ENV_ID] = env
    return t


def test_front_refuses_to_mix_machines_unless_told():
    study = _study([_on_env(_trial(0, 1.0, 0.99), "aaa"), _on_env(_trial(1, 0.3, 0.985), "aaa"), _on_env(_trial(2, 0.1, 0.99), "bbb")])
    with pytest.raises(ConfigError, match=r"2 different environments: aaa \(2 trials\), bbb \(1 trials\)"):
        front_rows(study)
    assert [r.trial for r in front_rows(study, env="aaa", with_references=False)] == [1, 0]
    assert [r.trial for r in front_rows(study, env="bbb", with_references=False)] == [2]
    assert [r.trial for r in front_rows(study, env="all", with_references=False)] == [2]  # 2 dominates on mixed figures
    with pytest.raises(ConfigError, match="no trial was measured on environment 'ccc'"):
        front_rows(study, env="ccc")


def test_the_table_shows_the_end_of_run_measurement_and_keeps_the_search_one():
    study = _study([_trial(0, 1.0, 0.99, reference="fp32-baseline"), _trial(1, 0.3, 0.985)])
    study.set_user_attr(
        store.final_key(1),
        {"latency_p50_ms": 0.33, "latency_p90_ms": 0.4, "latency_p99_ms": 0.5, "speedup": 3.1, "speedup_low": 3.0, "speedup_high": 3.2, "noisy": True},
    )
    rows = {r.trial: r for r in front_rows(study)}
    assert rows[1].remeasured and rows[1].latency_p50_ms == 0.33 and rows[1].search_latency_p50_ms == 0.3
    assert (rows[1].speedup, rows[1].speedup_low, rows[1].noisy) == (3.1, 3.0, True)
    assert not rows[0].remeasured and rows[0].latency_p50_ms == 1.0


def test_a_throughput_study_picks_the_most_samples_per_second():
    study = _study([_trial(0, 1.0, 0.99), _trial(1, 0.3, 0.985), _trial(2, 2.0, 0.99)])
    rows = [row(t) for t in study.get_trials()]
    rows = [FrontRow(**(r.as_dict() | {"throughput_sps": {0: 1000.0, 1: 3300.0, 2: 8000.0}[r.trial]})) for r in rows]
    assert fastest_feasible(rows, 0.01).trial == 1  # lowest p50
    assert fastest_feasible(rows, 0.01, by="throughput_sps").trial == 2  # most samples per second
