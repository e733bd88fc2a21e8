"""Work a study does not do, in one run of the demo (real TensorFlow, LiteRT, the child
process). Early stops by fidelity: a fine-tuning run whose accuracy after its first epoch
cannot reach the gate, even gaining what the study's earlier runs gained after theirs, stops
there and is recorded as gated with the epoch. No repeats: a configuration the study already
measured is answered from its record, not trained or timed again, fills no budget and shows
once on the front; when nothing new is left the run ends before its budget with one line."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()

# The first searched trial distils a student that learns; the second one that cannot (a
# learning rate of 1e-7): after its first epoch it is as bad as its random start. Then two
# configurations, neither a reference recipe: nothing else to try.
SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.storage import store
from autotune.techniques.distill import Distill

def space(trial):
    searched = [t for t in trial.study.get_trials() if t.user_attrs.get(store.RECIPE, {}).get("steps")]
    if not searched:
        return Recipe("fp32", Runtime("litert", threads=1), steps=(Distill(width=0.5, epochs=3),))
    if len(searched) == 1:
        return Recipe("fp32", Runtime("litert", threads=1), steps=(Distill(width=0.25, epochs=3, learning_rate=1e-7),))
    precision = trial.suggest_categorical("precision", ["fp32", "fp16"])
    return Recipe(precision, Runtime("litert", threads=1))
"""
BUDGET = 12


@dataclass(frozen=True)
class Run:
    output: str
    trials: list[FrozenTrial]
    front: list[dict]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, demo_files) -> Run:
    root = tmp_path_factory.mktemp("spared")
    model, _ = demo_files
    shutil.copytree(model.parent, root / "studies" / model.parent.name)
    (root / "space.py").write_text(SPACE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        result = runner.invoke(app, ["run", "--study", "spared", "--budget", str(BUDGET), "--space", "space.py",
                                     "--max-accuracy-drop", "0.05"])
        assert result.exit_code == 0, result.output
        front = runner.invoke(app, ["front", "spared", "--format", "json"])
        assert front.exit_code == 0, front.output
    study = optuna.load_study(study_name="spared", storage=store.open_storage(f"sqlite:///{root}/studies/autotune.db"))
    return Run(result.output, study.get_trials(), json.loads(front.output))


def test_a_hopeless_run_stops_after_its_first_epoch(run: Run) -> None:
    searched = [t for t in run.trials if t.user_attrs.get(store.RECIPE, {}).get("steps")]
    assert [t.state for t in searched] == [TrialState.COMPLETE] * 2, [t.user_attrs.get(store.FAIL_REASON) for t in searched]
    learns, hopeless = searched

    # The run that learns trained all its epochs and recorded its accuracy after the first.
    (step,) = learns.user_attrs[store.LINEAGE][1:2]
    assert step["step"] == "distill" and "stopped_after_epoch" not in step
    assert 0.0 < step["accuracy_keras_epoch1"] <= 1.0 and step["accuracy_keras"] > 0.5
    assert learns.user_attrs[store.CACHE]["epochs_trained"] == 3

    # The hopeless one stopped after one epoch of three: gated, with the epoch, never timed.
    reason = hopeless.user_attrs[store.GATED]
    assert "after epoch 1 of 3" in reason and "stopped after 1 epoch" in reason, reason
    last = hopeless.user_attrs[store.LINEAGE][-1]
    assert last["step"] == "distill" and last["stopped_after_epoch"] == 1 and last["accuracy_keras"] < 0.5
    assert hopeless.user_attrs[store.CACHE]["epochs_trained"] == 1
    metrics = hopeless.user_attrs[store.METRICS]
    assert metrics["gated"] is True and metrics["stopped_after_epoch"] == 1 and not metrics["feasible"]
    assert "convert_s" not in hopeless.user_attrs[store.TIMINGS]
    assert hopeless.user_attrs[store.TIMINGS]["train_s"] < learns.user_attrs[store.TIMINGS]["train_s"]

    shown = {row["trial"] for row in run.front}
    assert 0 in shown and hopeless.number not in shown


def test_measured_configurations_are_not_run_again_and_an_exhausted_space_ends_the_run(run: Run) -> None:
    assert "ended before the budget: the space looks exhausted" in run.output
    assert run.output.count("measured already as #") >= 30

    repeats = [t for t in run.trials if store.REPEAT_OF in t.user_attrs]
    measured = [t for t in run.trials if t.state == TrialState.COMPLETE and store.REPEAT_OF not in t.user_attrs]
    # Each configuration measured exactly once; the budget holds only those.
    assert Counter(t.user_attrs[store.RECIPE_TEXT] for t in measured).most_common(1)[0][1] == 1
    assert {"fp32 · litert · 1 thread", "fp16 · litert · 1 thread"} <= {t.user_attrs[store.RECIPE_TEXT] for t in measured}
    assert store.evaluated(run.trials) == len(measured) < BUDGET
    assert f"{len(measured)} of {BUDGET} trials" in run.output
    # A repeat carries its original's figures and values, and nothing was trained or timed for it.
    by_number = {t.number: t for t in run.trials}
    for t in repeats:
        first = by_number[t.user_attrs[store.REPEAT_OF]]
        assert t.state == TrialState.COMPLETE and t.values == first.values
        assert t.user_attrs[store.RECIPE] == first.user_attrs[store.RECIPE]
        assert t.user_attrs[store.METRICS] == first.user_attrs[store.METRICS]
        assert store.TIMINGS not in t.user_attrs and store.CACHE not in t.user_attrs

    shown = [row["trial"] for row in run.front]
    assert shown and not set(shown) & {t.number for t in repeats}
