"""Early stops by fidelity: a fine-tuning run whose accuracy after its first epoch cannot reach
the gate, even gaining what the study's earlier runs gained after theirs, stops there and is
recorded as gated with the epoch. Real TensorFlow, the demo model, the child process."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()

# The first searched trial distils a student that learns; the second one that cannot (a
# learning rate of 1e-7): after its first epoch it is as bad as its random start.
SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.storage import store
from autotune.techniques.distill import Distill

def space(trial):
    searched = [t for t in trial.study.get_trials() if t.user_attrs.get(store.RECIPE, {}).get("steps")]
    if not searched:
        step = Distill(width=0.5, epochs=3)
    else:
        step = Distill(width=0.25, epochs=3, learning_rate=1e-7)
    return Recipe("fp32", Runtime("litert", threads=1), steps=(step,))
"""


def test_a_hopeless_run_stops_after_its_first_epoch(workdir):
    (workdir / "two.py").write_text(SPACE)
    run = runner.invoke(app, ["run", "--study", "fid", "--budget", "4", "--space", "two.py", "--max-accuracy-drop", "0.05"])
    assert run.exit_code == 0, run.output
    study = optuna.load_study(study_name="fid", storage=store.open_storage("sqlite:///studies/autotune.db"))
    searched = [t for t in study.get_trials() if t.user_attrs.get(store.RECIPE, {}).get("steps")]
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

    front = runner.invoke(app, ["front", "fid", "--format", "json"])
    assert front.exit_code == 0, front.output
    shown = {row["trial"] for row in json.loads(front.output)}
    assert 0 in shown and hopeless.number not in shown
