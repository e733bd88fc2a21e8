"""Export's choice rules over real Optuna trials (in-memory storage, no TensorFlow)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from autotune.errors import ConfigError
from autotune.results.choose import Limits, choose, knee
from autotune.results.front import timed_rows
from autotune.storage import store

BASE_ACC = 0.99


def _trial(p50, acc, size_kb, reference=None):
    metrics = {
        "latency_p50_ms": p50,
        "latency_p90_ms": p50,
        "latency_p99_ms": p50 * 1.2,
        "accuracy": acc,
        "accuracy_drop": BASE_ACC - acc,
        "quality_loss": BASE_ACC - acc,
        "speedup": 1.0 / p50,
        "size_bytes": int(size_kb * 1024),
        "gzip_bytes": int(size_kb * 1000),
        "feasible": BASE_ACC - acc <= 0.01,
    }
    attrs = {store.METRICS: metrics, store.RECIPE_TEXT: f"{p50} ms"}
    if reference:
        attrs[store.REFERENCE] = reference
    return create_trial(state=TrialState.COMPLETE, values=[p50, acc], user_attrs=attrs)


@pytest.fixture
def rows():
    study = optuna.create_study(directions=["minimize", "maximize"])
    for t in [
        _trial(1.00, 0.990, 2000, reference="fp32-baseline"),  # 0
        _trial(0.50, 0.989, 600),  # 1  the knee: twice as fast as the baseline for 0.001
        _trial(0.30, 0.986, 550),  # 2  fastest within the limit
        _trial(0.25, 0.950, 500),  # 3  infeasible at 0.01
        _trial(0.80, 0.985, 120),  # 4  smallest, dominated in latency/accuracy
        _trial(0.28, 0.940, 90),  # 5  infeasible, smallest of all
    ]:
        study.add_trial(t)
    return timed_rows(study)


def test_default_is_the_fastest_within_the_quality_limit(rows):
    c = choose(rows, Limits(0.01))
    assert c.row.trial == 2 and c.feasible and "fastest trial within an accuracy drop of at most 0.01" in c.why


def test_prefer_accuracy_size_and_knee(rows):
    assert choose(rows, Limits(0.01), prefer="accuracy").row.trial == 0
    # The smallest artifact is not on the latency/accuracy front: export looks at every trial.
    assert choose(rows, Limits(0.01), prefer="size").row.trial == 4
    c = choose(rows, Limits(0.01), prefer="knee")
    assert c.row.trial == 1 and "knee" in c.why


def test_latency_and_size_limits_narrow_the_choice(rows):
    c = choose(rows, Limits(0.01, max_size_kb=560))
    assert c.row.trial == 2 and "size at most 560 KiB" in c.why
    c = choose(rows, Limits(0.01, max_latency_ms=0.6), prefer="accuracy")
    assert c.row.trial == 1 and "p50 at most 0.6 ms" in c.why


def test_nothing_feasible_fails_with_the_closest_unless_asked(rows):
    limits = Limits(0.01, max_latency_ms=0.2)
    with pytest.raises(ConfigError, match=r"no trial of 's' meets .*p50 at most 0.2 ms; the closest is #2 .*--closest"):
        choose(rows, limits, study="s")
    c = choose(rows, limits, closest=True, study="s")
    assert not c.feasible and c.row.trial == 2 and "closest to feasible" in c.why


def test_knee_on_a_textbook_front():
    study = optuna.create_study(directions=["minimize", "maximize"])
    # Losses fall fast, then slowly: the bend is at 0.4 ms.
    for p50, acc in [(0.1, 0.90), (0.2, 0.95), (0.4, 0.985), (0.8, 0.988), (1.6, 0.990)]:
        study.add_trial(_trial(p50, acc, 100))
    assert knee(timed_rows(study)).latency_p50_ms == 0.4


def test_an_unknown_preference_is_refused(rows):
    with pytest.raises(ConfigError, match="--prefer must be one of latency, accuracy, size, knee"):
        choose(rows, Limits(0.01), prefer="cheapest")


def test_knee_never_picks_a_point_on_the_far_side_of_the_chord():
    study = optuna.create_study(directions=["minimize", "maximize"])
    # 0.8 ms is nearly as slow as the slowest and nearly as lossy as the fastest: the worst
    # trade-off. No member lies on the ideal side of the chord, so the knee is the member
    # nearest the ideal corner; the two ends tie there (normalised, each is 1 away), and the
    # faster end is taken.
    for p50, acc in [(0.1, BASE_ACC - 0.010), (0.8, BASE_ACC - 0.0095), (1.0, BASE_ACC)]:
        study.add_trial(_trial(p50, acc, 100))
    assert knee(timed_rows(study)).latency_p50_ms == 0.1


def test_the_studys_p99_limit_and_recorded_feasibility_hold(rows):
    # p99 is 1.2 × p50: trial 2 has 0.36 ms; at 0.35 ms no trial within the accuracy limit is left.
    c = choose(rows, Limits(0.01, max_p99_ms=0.5), closest=True)
    assert c.row.trial == 2
    c = choose(rows, Limits(0.01, max_p99_ms=0.35), closest=True)
    assert not c.feasible and "p99 at most 0.35 ms" in c.why


def test_a_trial_the_objective_marked_infeasible_is_not_chosen_under_the_studys_limits():
    study = optuna.create_study(directions=["minimize", "maximize"])
    fast = _trial(0.2, 0.985, 100)
    fast.user_attrs[store.METRICS]["feasible"] = False  # past a constraint of a custom objective
    for t in (fast, _trial(0.4, 0.985, 100)):
        study.add_trial(t)
    rows = timed_rows(study)
    assert choose(rows, Limits(0.01, recorded=True)).row.latency_p50_ms == 0.4
    assert choose(rows, Limits(0.01)).row.latency_p50_ms == 0.2


def test_a_stale_search_figure_never_beats_a_members_re_measurement():
    # Trial 2 lost to trial 1 in the search (0.40 against 0.30 ms, same accuracy), so it is off
    # the front and not re-measured; the end of the run timed trial 1 again at 0.45 ms.
    # Trial 2's 0.40 is from another sitting: the fastest the table shows is trial 1.
    study = optuna.create_study(directions=["minimize", "maximize"])
    for t in [_trial(1.00, 0.990, 2000, reference="fp32-baseline"), _trial(0.30, 0.989, 600), _trial(0.40, 0.989, 600)]:
        study.add_trial(t)
    for number, p50 in [(0, 1.05), (1, 0.45)]:
        study.set_user_attr(store.final_key(number), {"latency_p50_ms": p50, "latency_p90_ms": p50, "latency_p99_ms": p50, "speedup": 1.05 / p50})
    rows = timed_rows(study)
    assert {r.trial: r.remeasured for r in rows} == {0: True, 1: True, 2: False}
    assert choose(rows, Limits(0.01)).row.trial == 1
    # When a limit rules the member out, the trial it beat is chosen on its own figure.
    assert choose(rows, Limits(0.01, max_latency_ms=0.42)).row.trial == 2
