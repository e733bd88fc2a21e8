"""The study's fastest model trained another way at its shape, in one run of the demo (real
TensorFlow, LiteRT, the child process): once the study has measured three models, the fastest
of them, a half-width student, is distilled again at the other temperature, trained and
measured as it was deployed, and `autotune show` names the trial it came from."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()

# Questions that shape the model (whether to distil a student, how wide) and one that does
# not (the distillation's temperature).
SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques.distill import Distill

def space(trial):
    steps = []
    if trial.suggest_categorical("student", [True, False]):
        width = trial.suggest_categorical("width", [0.5, 0.75])
        steps.append(Distill(width=width, temperature=trial.suggest_categorical("temperature", [2.0, 4.0]), epochs=2))
    return Recipe("fp32", Runtime("litert", threads=1), steps=tuple(steps))
"""
ARGS = ["--study", "siblings", "--space", "space.py", "--max-accuracy-drop", "0.2"]


def test_the_fastest_student_is_trained_at_its_other_temperature(workdir) -> None:
    (workdir / "space.py").write_text(SPACE)
    first = runner.invoke(app, ["run", "--budget", "1", *ARGS])
    assert first.exit_code == 0, first.output
    storage = store.open_storage(f"sqlite:///{workdir}/studies/autotune.db")
    study = optuna.load_study(study_name="siblings", storage=storage)
    study.enqueue_trial({"student": False})
    study.enqueue_trial({"student": True, "width": 0.75, "temperature": 2.0})
    study.enqueue_trial({"student": True, "width": 0.5, "temperature": 2.0})
    # The references (fp32, int8) fill the first two of the budget, the three models the next.
    result = runner.invoke(app, ["run", "--budget", "6", *ARGS])
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="siblings", storage=storage).get_trials()
    (student,) = [t for t in trials if t.params == {"student": True, "width": 0.5, "temperature": 2.0} and store.REPEAT_OF not in t.user_attrs]
    (wider,) = [t for t in trials if t.params == {"student": True, "width": 0.75, "temperature": 2.0}]
    assert student.user_attrs[store.METRICS]["speedup"] > wider.user_attrs[store.METRICS]["speedup"]
    (sibling,) = [t for t in trials if store.SIBLING_OF in t.user_attrs]
    assert f"queued #{student.number}'s model, among the study's fastest, trained 1 other way(s) at its shape" in result.output
    assert sibling.user_attrs[store.SIBLING_OF]["trial"] == student.number
    assert sibling.state == TrialState.COMPLETE and sibling.params == {"student": True, "width": 0.5, "temperature": 4.0}
    (step,) = sibling.user_attrs[store.RECIPE]["steps"]
    assert step["params"]["width"] == 0.5 and step["params"]["temperature"] == 4.0
    # Trained afresh (the other temperature is another model), measured as a trial of its own.
    assert "distill" in sibling.user_attrs[store.CACHE]["misses"]
    assert sibling.user_attrs[store.METRICS]["speedup"] > 0
    shown = runner.invoke(app, ["show", "siblings", str(sibling.number)])
    assert shown.exit_code == 0 and f"#{student.number}'s model trained another way" in shown.output
