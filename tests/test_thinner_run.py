"""A model on the study's front made one value thinner, in one run of the demo (real
TensorFlow, LiteRT, the child process): after a width-0.75 student is measured within the
limit, the student at width 0.5 is queued, trained and measured, and `autotune show` names
the trial it came from and the parameter lowered."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()

# One question: the student's width.
SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques.distill import Distill

def space(trial):
    width = trial.suggest_categorical("width", [0.5, 0.75])
    return Recipe("fp32", Runtime("litert", threads=1), steps=(Distill(width=width, epochs=2),))
"""
ARGS = ["--study", "thinner", "--space", "space.py", "--max-accuracy-drop", "0.2"]


def test_the_student_on_the_front_is_distilled_one_width_thinner_and_measured(workdir) -> None:
    (workdir / "space.py").write_text(SPACE)
    first = runner.invoke(app, ["run", "--budget", "1", *ARGS])
    assert first.exit_code == 0, first.output
    storage = store.open_storage(f"sqlite:///{workdir}/studies/autotune.db")
    study = optuna.load_study(study_name="thinner", storage=storage)
    assert not [t for t in study.get_trials() if t.params]  # the baseline only
    study.enqueue_trial({"width": 0.75})
    # The int8 reference, the wider student, and the student made thinner.
    result = runner.invoke(app, ["run", "--budget", "4", *ARGS])
    assert result.exit_code == 0, result.output
    trials = [t for t in optuna.load_study(study_name="thinner", storage=storage).get_trials() if store.REPEAT_OF not in t.user_attrs and t.params]
    (wide,) = [t for t in trials if t.params == {"width": 0.75}]
    (thin,) = [t for t in trials if t.params == {"width": 0.5}]
    of = thin.user_attrs[store.EXTENSION_OF]
    assert (of["trial"], of["thinner"]) == (wide.number, "width")
    assert f"queued #{wide.number}'s model, on the study's front, one value thinner: distill w0.5" in result.output, result.output
    assert thin.state == TrialState.COMPLETE and thin.user_attrs[store.RECIPE]["steps"][0]["params"]["width"] == 0.5
    # Measured: the thinner student is the faster one.
    assert thin.user_attrs[store.METRICS]["speedup"] > wide.user_attrs[store.METRICS]["speedup"]
    shown = runner.invoke(app, ["show", "thinner", str(thin.number)])
    assert shown.exit_code == 0 and f"#{wide.number}'s model one value thinner (width)" in shown.output, shown.output
