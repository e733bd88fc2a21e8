"""No repeats: a configuration the study already measured is answered from its record, not
trained or timed again, fills no budget and shows once on the front; when nothing new is left
the run ends before its budget with one line. Real TensorFlow, LiteRT, the child process."""

from __future__ import annotations

import json
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()

# Two configurations, neither a reference recipe: nothing else to try.
SPACE = """
from autotune.search.recipe import Recipe, Runtime

def space(trial):
    precision = trial.suggest_categorical("precision", ["fp32", "fp16"])
    return Recipe(precision, Runtime("litert", threads=1))
"""


def test_measured_configurations_are_not_run_again_and_an_exhausted_space_ends_the_run(workdir):
    (workdir / "two.py").write_text(SPACE)
    run = runner.invoke(app, ["run", "--study", "rep", "--budget", "12", "--space", "two.py"])
    assert run.exit_code == 0, run.output
    assert "ended before the budget: the space looks exhausted" in run.output
    assert run.output.count("measured already as #") >= 30

    study = optuna.load_study(study_name="rep", storage=store.open_storage("sqlite:///studies/autotune.db"))
    trials = study.get_trials()
    repeats = [t for t in trials if store.REPEAT_OF in t.user_attrs]
    measured = [t for t in trials if t.state == TrialState.COMPLETE and store.REPEAT_OF not in t.user_attrs]
    # Each configuration measured exactly once; the budget holds only those.
    assert Counter(t.user_attrs[store.RECIPE_TEXT] for t in measured).most_common(1)[0][1] == 1
    assert {"fp32 · litert · 1 thread", "fp16 · litert · 1 thread"} <= {t.user_attrs[store.RECIPE_TEXT] for t in measured}
    assert store.evaluated(trials) == len(measured) < 12
    assert f"{len(measured)} of 12 trials" in run.output
    # A repeat carries its original's figures and values, and nothing was trained or timed for it.
    by_number = {t.number: t for t in trials}
    for t in repeats:
        first = by_number[t.user_attrs[store.REPEAT_OF]]
        assert t.state == TrialState.COMPLETE and t.values == first.values
        assert t.user_attrs[store.RECIPE] == first.user_attrs[store.RECIPE]
        assert t.user_attrs[store.METRICS] == first.user_attrs[store.METRICS]
        assert store.TIMINGS not in t.user_attrs and store.CACHE not in t.user_attrs

    front = runner.invoke(app, ["front", "rep", "--format", "json"])
    assert front.exit_code == 0, front.output
    shown = [row["trial"] for row in json.loads(front.output)]
    assert shown and not set(shown) & {t.number for t in repeats}
