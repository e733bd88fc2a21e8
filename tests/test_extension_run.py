"""The study's fastest model taken one step further, in one run of the demo (real TensorFlow,
TF-MOT-free thinning, LiteRT, the child process): after the student is measured as the
study's fastest, the student channel-pruned as the study had channel-pruned the base model is
queued, trains only that step (the student comes from the content cache), and `autotune show`
names the trial it came from."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()

# Two questions: whether to distil a half-width student, and whether to channel-prune to keep
# three quarters of the channels.
SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques.channel_prune import ChannelPrune
from autotune.techniques.distill import Distill

def space(trial):
    steps = []
    if trial.suggest_categorical("student", [True, False]):
        steps.append(Distill(width=0.5, epochs=3))
    if trial.suggest_categorical("thin", [True, False]):
        steps.append(ChannelPrune(keep=0.75, epochs=1))
    return Recipe("fp32", Runtime("litert", threads=1), steps=tuple(steps))
"""
ARGS = ["--study", "further", "--space", "space.py", "--max-accuracy-drop", "0.2"]


def test_the_fastest_model_is_taken_one_thinning_step_further_training_that_step_only(workdir) -> None:
    (workdir / "space.py").write_text(SPACE)
    first = runner.invoke(app, ["run", "--budget", "2", *ARGS])
    assert first.exit_code == 0, first.output
    storage = store.open_storage(f"sqlite:///{workdir}/studies/autotune.db")
    study = optuna.load_study(study_name="further", storage=storage)
    assert not [t for t in study.get_trials() if t.params == {"student": True, "thin": True}]
    # The base model channel-pruned (what the step costs), then the student (the fastest).
    study.enqueue_trial({"student": False, "thin": True})
    study.enqueue_trial({"student": True, "thin": False})
    result = runner.invoke(app, ["run", "--budget", "6", *ARGS])
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="further", storage=storage).get_trials()
    (thin,) = [t for t in trials if t.params == {"student": False, "thin": True} and store.REPEAT_OF not in t.user_attrs]
    (student,) = [t for t in trials if t.params == {"student": True, "thin": False} and store.REPEAT_OF not in t.user_attrs]
    assert student.user_attrs[store.METRICS]["speedup"] > thin.user_attrs[store.METRICS]["speedup"]

    (longer,) = [t for t in trials if store.EXTENSION_OF in t.user_attrs]
    assert longer.user_attrs[store.EXTENSION_OF]["trial"] == student.number
    assert f"queued #{student.number}'s model, among the study's fastest, one step further" in result.output
    assert longer.state == TrialState.COMPLETE and longer.params == {"student": True, "thin": True}
    steps = longer.user_attrs[store.RECIPE]["steps"]
    assert steps[:1] == student.user_attrs[store.RECIPE]["steps"] and steps[1:] == thin.user_attrs[store.RECIPE]["steps"]
    # The student from the cache; only the channel pruning's one epoch trained.
    cache = longer.user_attrs[store.CACHE]
    assert "distill" in cache["hits"] and cache["epochs_trained"] == 1, cache
    shown = runner.invoke(app, ["show", "further", str(longer.number)])
    assert shown.exit_code == 0 and f"#{student.number}'s model one step further" in shown.output, shown.output
