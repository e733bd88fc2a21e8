"""A chain past the accuracy limit, in one run of the demo (real TensorFlow, LiteRT, the child
process): the model it made on its way within the limit is measured as a trial of its own,
from the content cache (nothing trained again), and `autotune show` names the chain. Likewise
the student a pruning within the limit was given, when the pruning cost accuracy."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()

# Two questions: whether to distil a student, and whether to channel-prune it to a quarter of
# its channels with a fine-tuning that cannot learn (a learning rate of 1e-7): that is gated.
SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques.channel_prune import ChannelPrune
from autotune.techniques.distill import Distill

def space(trial):
    steps = []
    if trial.suggest_categorical("student", [True, False]):
        steps.append(Distill(width=0.5, epochs=3))
    if trial.suggest_categorical("ruin", [True, False]):
        steps.append(ChannelPrune(keep=0.25, epochs=2, learning_rate=1e-7))
    return Recipe("fp32", Runtime("litert", threads=1), steps=tuple(steps))
"""
ARGS = ["--study", "onway", "--space", "space.py", "--max-accuracy-drop", "0.05"]


def test_the_model_a_gated_chain_made_within_the_limit_is_measured_from_the_cache(workdir) -> None:
    (workdir / "space.py").write_text(SPACE)
    # The references first; then the chain of both steps is the first searched trial.
    first = runner.invoke(app, ["run", "--budget", "2", *ARGS])
    assert first.exit_code == 0, first.output
    storage = store.open_storage(f"sqlite:///{workdir}/studies/autotune.db")
    optuna.load_study(study_name="onway", storage=storage).enqueue_trial({"student": True, "ruin": True})
    result = runner.invoke(app, ["run", "--budget", "6", *ARGS])
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="onway", storage=storage).get_trials()
    (gated,) = [t for t in trials if t.params == {"student": True, "ruin": True}]
    assert "past the gate" in gated.user_attrs[store.GATED]

    (student,) = [t for t in trials if t.user_attrs.get(store.PREFIX_OF, {}).get("trial") == gated.number]
    assert f"queued the model #{gated.number}'s chain made on its way" in result.output
    assert student.state == TrialState.COMPLETE and store.GATED not in student.user_attrs
    assert student.params == {"student": True, "ruin": False}
    assert student.user_attrs[store.RECIPE]["steps"] == gated.user_attrs[store.RECIPE]["steps"][:1]
    # Trained by the gated chain's first step: taken from the cache, not trained again.
    assert student.user_attrs[store.CACHE]["epochs_trained"] == 0 and "distill" in student.user_attrs[store.CACHE]["hits"]
    assert student.user_attrs[store.LINEAGE][1]["accuracy_keras"] == gated.user_attrs[store.LINEAGE][1]["accuracy_keras"]
    metrics = student.user_attrs[store.METRICS]
    assert metrics["feasible"] and metrics["accuracy_drop"] <= 0.05
    # Measured once: the sampler proposing the student again is answered from its record.
    assert not [t for t in trials if t.params == {"student": True, "ruin": False} and store.REPEAT_OF not in t.user_attrs and t is not student]

    shown = runner.invoke(app, ["show", "onway", str(student.number)])
    assert shown.exit_code == 0 and f"the model #{gated.number}'s chain made on its way" in shown.output, shown.output


# A student and whether to prune 80 % of its weights with a fine-tuning that cannot recover (a learning
# rate of 1e-7): it costs accuracy, and pruning leaves the student's shape as it found it.
NEUTRAL_SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques.distill import Distill
from autotune.techniques.prune import MagnitudePrune

def space(trial):
    steps = [Distill(width=0.5, epochs=3)]
    if trial.suggest_categorical("prune", [True, False]):
        steps.append(MagnitudePrune(sparsity=0.8, epochs=1, learning_rate=1e-7))
    return Recipe("fp32", Runtime("litert", threads=1), steps=tuple(steps))
"""


def test_the_student_before_a_pruning_that_cost_accuracy_is_measured_from_the_cache(workdir) -> None:
    (workdir / "space.py").write_text(NEUTRAL_SPACE)
    args = ["--study", "neutral", "--space", "space.py", "--max-accuracy-drop", "0.9"]
    first = runner.invoke(app, ["run", "--budget", "2", *args])
    assert first.exit_code == 0, first.output
    storage = store.open_storage(f"sqlite:///{workdir}/studies/autotune.db")
    optuna.load_study(study_name="neutral", storage=storage).enqueue_trial({"prune": True})
    result = runner.invoke(app, ["run", "--budget", "4", *args])
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="neutral", storage=storage).get_trials()
    (pruned,) = [t for t in trials if t.params == {"prune": True}]
    before, after = (step["accuracy_keras"] for step in pruned.user_attrs[store.LINEAGE][1:3])
    assert after < before and pruned.user_attrs[store.METRICS]["feasible"]

    (student,) = [t for t in trials if t.user_attrs.get(store.PREFIX_OF, {}).get("trial") == pruned.number]
    assert f"queued #{pruned.number}'s model without its last steps, which cannot make it faster and cost {before - after:.4f}" in result.output
    assert student.state == TrialState.COMPLETE and student.params == {"prune": False}
    assert student.user_attrs[store.RECIPE]["steps"] == pruned.user_attrs[store.RECIPE]["steps"][:1]
    # The student the pruning was given: from the cache, not trained again, and as trained
    # more accurate than the pruned one.
    assert student.user_attrs[store.CACHE]["epochs_trained"] == 0 and "distill" in student.user_attrs[store.CACHE]["hits"]
    assert student.user_attrs[store.LINEAGE][1]["accuracy_keras"] == before
    assert student.user_attrs[store.METRICS]["accuracy"] > pruned.user_attrs[store.METRICS]["accuracy"]
    shown = runner.invoke(app, ["show", "neutral", str(student.number)])
    assert shown.exit_code == 0 and f"#{pruned.number}'s model without its last steps" in shown.output, shown.output
