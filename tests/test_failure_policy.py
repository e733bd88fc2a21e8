"""A failed candidate is a FAIL trial with its reason; the search goes on, but not forever."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()

# A technique that fails the way a converter does on an unsupported op. The failure policy is
# what is under test; test_a_model_litert_cannot_convert shows a converter failing for real.
FAILING_SPACE = """
from dataclasses import dataclass
from autotune.errors import CandidateFailed
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques import Technique

@dataclass(frozen=True)
class Unsupported(Technique):
    name = "unsupported"
    def apply(self, model, context):
        raise CandidateFailed("op FOO is not supported by this technique")

def space(trial):
    # A failing configuration one time in {odds} (eight of them); sixteen that succeed otherwise.
    # Both sets are larger than the budgets below, so the space is never exhausted.
    if trial.suggest_int("f", 0, {odds} - 1) == 0:
        return Recipe("fp32", Runtime("litert", threads=1, batch_size=trial.suggest_int("b", 1, 8)), steps=(Unsupported(),))
    precision = trial.suggest_categorical("p", ["fp32", "fp16", "dynamic-int8", "int8"])
    return Recipe(precision, Runtime("litert", threads=trial.suggest_int("t", 1, 2), batch_size=trial.suggest_int("n", 1, 2)))
"""


def _study(name):
    st = store.open_storage("sqlite:///studies/autotune.db")
    return optuna.load_study(study_name=name, storage=st)


def test_failures_are_recorded_and_the_search_goes_on(workdir):
    (workdir / "sometimes.py").write_text(FAILING_SPACE.format(odds=4))
    result = runner.invoke(app, ["run", "--study", "s", "--budget", "8", "--space", "sometimes.py", "--seed", "1"])
    assert result.exit_code == 0, result.output
    trials = _study("s").get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed, "the space should have produced failing candidates"
    # A failing configuration ran once; proposed again, it failed the same way without running.
    ran = [t for t in failed if store.REPEAT_OF not in t.user_attrs]
    again = [t for t in failed if store.REPEAT_OF in t.user_attrs]
    assert all(t.user_attrs[store.FAIL_REASON] == "op FOO is not supported by this technique" for t in ran)
    assert len({t.params["b"] for t in ran}) == len(ran)
    for t in again:
        (first,) = [r for r in ran if r.params == t.params]
        assert t.user_attrs[store.FAIL_REASON] == f"repeat of #{first.number}, which failed: op FOO is not supported by this technique"
        assert store.CACHE not in t.user_attrs
    # Failed trials (and repeats) do not count against the budget.
    assert store.evaluated(trials) == 8


def test_several_failures_in_a_row_stop_the_search_with_one_line(workdir):
    (workdir / "always.py").write_text(FAILING_SPACE.format(odds=1))
    result = runner.invoke(app, ["run", "--study", "a", "--budget", "20", "--space", "always.py"])
    assert result.exit_code == 1
    assert "5 trials failed in a row" in result.output and "op FOO" in result.output
    trials = _study("a").get_trials()
    assert [t.state for t in trials[:2]] == [TrialState.COMPLETE] * 2  # the references
    assert all(t.state == TrialState.FAIL for t in trials[2:])
    # Five configurations ran and failed; a repeat in between neither counted nor broke the run.
    assert sum(store.REPEAT_OF not in t.user_attrs for t in trials[2:]) == 5


def test_a_model_litert_cannot_convert_stops_at_the_baseline(empty_workdir):
    from autotune._keras import keras

    k = keras()
    # Token counts: CategoryEncoding becomes tf.DenseBincount, which TFLite's builtins lack.
    model = k.Sequential([k.layers.Input((6,), dtype="int32"), k.layers.CategoryEncoding(num_tokens=8, output_mode="count"), k.layers.Dense(3)])
    model.save(empty_workdir / "counts.keras")
    rng = np.random.default_rng(0)
    np.savez(
        empty_workdir / "tokens.npz",
        x_train=rng.integers(0, 8, (20, 6), dtype=np.int32),
        y_train=rng.integers(0, 3, 20),
        x_val=rng.integers(0, 8, (10, 6), dtype=np.int32),
        y_val=rng.integers(0, 3, 10),
    )
    result = runner.invoke(app, ["run", "--model", "counts.keras", "--data", "tokens.npz", "--budget", "3"])
    assert result.exit_code == 1
    assert "fp32 baseline (trial 0) failed" in result.output and "TFLite fp32 conversion failed" in result.output
    (baseline,) = _study("counts").get_trials(states=(TrialState.COMPLETE, TrialState.FAIL))
    assert baseline.state == TrialState.FAIL
    assert "DenseBincount" in baseline.user_attrs[store.FAIL_REASON]
