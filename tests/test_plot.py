"""The study figure and its hypervolume curve, over fake stored trials (no TensorFlow)."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.image
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from autotune.errors import ConfigError
from autotune.results.plot import found_at, hypervolume_curve, plot_study, short_recipe, speedup_curve
from autotune.storage import store

LATENCY = ["latency_p50_ms", "accuracy"]
THROUGHPUT = ["throughput_sps", "accuracy"]
BASE = {"p50": 1.0, "acc": 0.99, "size": 400_000, "sps": 1000.0}


def _metrics(p50, acc, *, speedup=None, size=None, sps=None, batch=1, limit=0.01):
    drop = BASE["acc"] - acc
    return {
        "latency_p50_ms": p50,
        "latency_p90_ms": p50 * 1.1,
        "latency_p99_ms": p50 * 1.3,
        "accuracy": acc,
        "accuracy_drop": drop,
        "speedup": speedup if speedup is not None else BASE["p50"] / p50,
        "size_bytes": size if size is not None else BASE["size"],
        "gzip_bytes": int((size or BASE["size"]) * 0.9),
        "throughput_sps": sps if sps is not None else batch * 1e3 / p50,
        "batch_size": batch,
        "feasible": drop <= limit + 1e-12,
    }


def _trial(metrics, names, recipe="int8 · litert · 2 threads", reference=None, gated=None):
    attrs = {store.METRICS: metrics, store.RECIPE_TEXT: recipe}
    if reference:
        attrs[store.REFERENCE] = reference
    if gated:
        attrs[store.GATED] = gated
    return create_trial(state=TrialState.COMPLETE, values=[float(metrics[n]) for n in names], user_attrs=attrs)


def _study(names, storage=None, name="plot-test"):
    directions = ["maximize" if n in ("accuracy", "throughput_sps") else "minimize" for n in names]
    study = optuna.create_study(directions=directions, storage=storage, study_name=name)
    study.set_metric_names(names)
    base = _metrics(BASE["p50"], BASE["acc"], speedup=1.0, size=BASE["size"], sps=BASE["sps"])
    study.set_user_attr(store.BASELINE, {"trial": 0, **base})
    study.add_trial(_trial(base, names, "fp32 · litert · 2 threads", reference="fp32-baseline"))
    return study


RECIPES = [
    "int8 · litert · 2 threads",
    "fp16 · litert · 1 thread",
    "dynamic-int8 · litert · 2 threads",
    "prune 0.5 polynomial → int8 · litert · 2 threads",
    "distill w0.5 T4 α0.7 → int8 · litert · 1 thread",
    "channel-prune keep 0.75 → prune 2:4 → QAT (sparsity-preserving) → int8 · litert · 2 threads",
    "fp32 · tensorflow xla",
    "distill w0.25 T2 α0.5 → channel-prune keep 0.5 → fp16 · litert · 2 threads",
]


def _fake_study(names=LATENCY, storage=None, n=20, seed=3):
    """A baseline, the seeds' int8, ``n`` searched trials (some infeasible), two gated, one
    failed and one pruned."""
    rng = np.random.default_rng(seed)
    study = _study(names, storage)
    study.add_trial(_trial(_metrics(0.42, 0.986, size=110_000), names, "int8 · litert · 2 threads", reference="seeds-int8"))
    for i in range(n):
        p50 = float(np.exp(rng.uniform(np.log(0.04), np.log(1.6))))
        acc = float(np.clip(0.993 - 0.02 * rng.random() - 0.004 / (p50 * 10) - (0.05 if i % 7 == 3 else 0.0), 0.5, 0.995))
        batch = int(rng.choice([1, 4, 16])) if names == THROUGHPUT else 1
        recipe = RECIPES[i % len(RECIPES)] + (f" · batch {batch}" if batch != 1 else "")
        study.add_trial(_trial(_metrics(p50, acc, size=int(rng.uniform(50e3, 400e3)), batch=batch), names, recipe))
    base = study.user_attrs[store.BASELINE]
    for acc in (0.80, 0.91):
        gated = {**base, "accuracy": acc, "accuracy_drop": BASE["acc"] - acc, "feasible": False, "gated": True}
        study.add_trial(_trial(gated, names, "prune 0.9 constant → int8 · litert · 2 threads", gated="past the gate"))
    study.add_trial(create_trial(state=TrialState.FAIL))
    study.add_trial(create_trial(state=TrialState.PRUNED))
    return study


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000
    img = matplotlib.image.imread(path)
    assert img.shape[0] > 500 and img.shape[1] > 1200  # 13 x 5.5 in at 120 dpi
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 50


def test_plot_writes_a_readable_png_atomically(tmp_path):
    study = _fake_study(storage=f"sqlite:///{tmp_path}/studies.db")
    out = tmp_path / "front.png"
    out.write_bytes(b"old")
    assert plot_study(study, out, limit=0.01) == out
    _check_png(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.png", "studies.db"]  # no temporary left


def test_a_throughput_study_plots(tmp_path):
    out = plot_study(_fake_study(THROUGHPUT), tmp_path / "tp.png", limit=0.01)
    _check_png(out)


def test_a_three_objective_study_plots(tmp_path):
    study = _fake_study([*LATENCY, "size_bytes"])
    _check_png(plot_study(study, tmp_path / "three.png", limit=0.01))
    assert hypervolume_curve(study, 0.01)[-1] > 0


def test_hypervolume_curve_grows_with_the_trials():
    study = _fake_study()
    curve = hypervolume_curve(study, 0.01)
    assert len(curve) == len(study.trials)
    assert all(b >= a for a, b in itertools.pairwise(curve))
    assert curve[-1] > 0
    assert curve[0] == 0.0  # the baseline alone is no gain over itself


def test_hypervolume_matches_a_hand_computation():
    study = _study(LATENCY)
    study.add_trial(_trial(_metrics(0.5, 0.99), LATENCY))  # (1/speed-up, -acc) = (0.5, -0.99)
    study.add_trial(_trial(_metrics(0.25, 0.985), LATENCY))  # (0.25, -0.985)
    study.add_trial(_trial(_metrics(0.1, 0.95), LATENCY))  # infeasible: ignored
    # Reference (1, -0.98): 0.5 x 0.01 + 0.75 x 0.005 - 0.5 x 0.005 (the overlap).
    assert hypervolume_curve(study, 0.01) == pytest.approx([0.0, 0.005, 0.00625, 0.00625])


def test_the_best_speedup_curve_counts_searched_feasible_trials_and_says_when_the_best_was_found():
    study = _study(LATENCY)
    study.add_trial(_trial(_metrics(0.2, 0.99), LATENCY, reference="seeds-int8"))  # a reference: not found by the search
    study.add_trial(_trial(_metrics(0.5, 0.99), LATENCY))  # ×2
    study.add_trial(_trial(_metrics(0.1, 0.95), LATENCY))  # ×10 but infeasible
    study.add_trial(create_trial(state=TrialState.FAIL))  # not counted
    study.add_trial(_trial(_metrics(0.26, 0.985), LATENCY))  # ×3.85
    study.add_trial(_trial(_metrics(0.25, 0.985), LATENCY))  # ×4
    curve = speedup_curve(study)
    assert curve == pytest.approx([0.0, 0.0, 2.0, 2.0, 1 / 0.26, 4.0])
    assert found_at(curve, 4.0, 0.0) == 6
    assert found_at(curve, 4.0, 0.05) == 5  # ×3.85 is within 5 % of ×4
    assert found_at(curve, 5.0, 0.02) is None


def test_hypervolume_of_throughput_and_three_objective_studies():
    tp = _study(THROUGHPUT)
    tp.add_trial(_trial(_metrics(1.0, 0.99, sps=2 * BASE["sps"]), THROUGHPUT))  # 2x the baseline's samples/s
    assert hypervolume_curve(tp, 0.01) == pytest.approx([0.0, 1.0 * 0.01])
    three = _study([*LATENCY, "size_bytes"])
    three.add_trial(_trial(_metrics(0.5, 0.99, size=BASE["size"] // 4), [*LATENCY, "size_bytes"]))
    assert hypervolume_curve(three, 0.01) == pytest.approx([0.0, 0.5 * 0.01 * 0.75])


def test_no_timed_trial_or_no_writable_directory_is_a_config_error(tmp_path):
    study = optuna.create_study(directions=["minimize", "maximize"], study_name="empty")
    study.add_trial(create_trial(state=TrialState.FAIL))
    with pytest.raises(ConfigError, match="no timed trials"):
        plot_study(study, tmp_path / "x.png", limit=0.01)
    with pytest.raises(ConfigError, match="does not exist or is not writable"):
        plot_study(_fake_study(), tmp_path / "missing" / "x.png", limit=0.01)


def test_recipes_are_shortened_for_labels():
    assert short_recipe("int8 · litert · 2 threads") == "int8 · 2 threads"
    label = short_recipe(RECIPES[5])
    assert label.startswith("int8 · 2 threads\nchannel-prune") and all(len(line) <= 32 for line in label.splitlines())


def test_a_study_measured_on_two_machines_needs_an_environment(tmp_path):
    mixed = _study(LATENCY, name="mixed")
    for number, t in enumerate(_fake_study().get_trials()[1:]):  # the fake study's trials, on two machines
        t.user_attrs[store.ENV_ID] = "aaa" if number % 3 else "bbb"
        mixed.add_trial(create_trial(state=t.state, values=t.values, user_attrs=t.user_attrs))
    with pytest.raises(ConfigError, match="different environments"):
        plot_study(mixed, tmp_path / "x.png", limit=0.01)
    _check_png(plot_study(mixed, tmp_path / "aaa.png", limit=0.01, env="aaa"))


def test_the_budgets_hypervolume_curve_skips_what_the_budget_does_not_count():
    study = _fake_study()
    first = next(t for t in study.trials if t.state == TrialState.COMPLETE and not t.user_attrs.get(store.GATED) and t.number > 1)
    repeat = create_trial(values=first.values, user_attrs={**first.user_attrs, store.REPEAT_OF: first.number})
    study.add_trial(repeat)
    per_trial = hypervolume_curve(study, 0.01)
    counted = hypervolume_curve(study, 0.01, budget_trials=True)
    assert len(per_trial) == len(study.trials)
    assert len(counted) == store.evaluated(study.trials) == len(study.trials) - 2  # the failed trial and the repeat
    assert counted[-1] == per_trial[-1]  # a repeat adds no trade-off


def test_the_curves_count_trials_in_the_order_they_ran_not_by_number():
    storage = optuna.storages.InMemoryStorage()
    study = store.Study(study_name=_study(LATENCY, storage).study_name, storage=storage)  # as `autotune run` holds it
    study.enqueue_trial({}, user_attrs={store.DEPLOYMENT_OF: {"trial": 0, "made": "a"}})  # ×2, queued first
    study.enqueue_trial({}, user_attrs={store.NARROWER_OF: {"trial": 0, "made": "b", store.FIRST: True}})  # ×4, ahead of the queue
    for _ in range(2):
        trial = study.ask()
        p50 = 0.25 if store.NARROWER_OF in trial.user_attrs else 0.5
        for k, v in {store.METRICS: _metrics(p50, 0.99), store.RECIPE_TEXT: "int8 · litert · 2 threads"}.items():
            trial.set_user_attr(k, v)
        study.tell(trial, [p50, 0.99])
    assert [t.number for t in study.trials] == [0, 1, 2]
    # Trial 2 ran second (after the baseline): the ×4 was found at the second trial counted.
    assert speedup_curve(study) == pytest.approx([0.0, 4.0, 4.0])
    assert hypervolume_curve(study, 0.01)[1] == hypervolume_curve(study, 0.01)[2] > 0
