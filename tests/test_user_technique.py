"""A technique of the user's own, defined in their space file: searched, re-measured at the
end of the run, and exported, all from the recipe stored for its trial. Real TensorFlow,
LiteRT and the child process that runs trials."""

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

# A technique the project does not ship: the model replaced by a linear classifier trained on
# the same data (a real, much smaller model: the fastest trial, so a member of the front).
SPACE = """
from dataclasses import dataclass
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques import Technique

@dataclass(frozen=True)
class Linear(Technique):
    name = "linear"
    order = 4
    epochs: int = 30

    def apply(self, model, context):
        import tf_keras as keras

        keras.utils.set_random_seed(context.seed)
        data = context.data
        student = keras.Sequential([keras.Input(model.input_shape[1:]), keras.layers.Flatten(), keras.layers.Dense(data.num_classes)])
        student.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        student.fit(data.x_train, data.y_train, epochs=self.epochs, batch_size=64, verbose=0)
        return student

def space(trial):
    epochs = trial.suggest_categorical("epochs", [20, 30])
    return Recipe("fp32", Runtime("litert", threads=1), steps=(Linear(epochs=epochs),))
"""


def test_a_users_own_technique_is_re_measured_and_exported(workdir):
    (workdir / "mine.py").write_text(SPACE)
    run = runner.invoke(app, ["run", "--study", "own", "--budget", "4", "--space", "mine.py", "--seed", "3", "--max-accuracy-drop", "0.5"])
    assert run.exit_code == 0, run.output
    study = optuna.load_study(study_name="own", storage=store.open_storage("sqlite:///studies/autotune.db"))
    own = [t for t in study.get_trials() if t.state == TrialState.COMPLETE and t.user_attrs[store.RECIPE]["steps"]]
    assert own, [(t.number, t.state, t.user_attrs.get(store.FAIL_REASON)) for t in study.get_trials()]
    assert own[0].user_attrs[store.RECIPE]["steps"][0]["name"] == "linear"
    # The end-of-run re-measurement rebuilt it from its stored recipe and timed it.
    finals = store.finals(study)
    remeasured = [t.number for t in own if t.number in finals]
    assert remeasured and all("failed" not in finals[n] for n in remeasured), finals

    out = workdir / "export"
    exported = runner.invoke(app, ["export", "own", "--out", str(out), "--trial", str(own[0].number)])
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe_spec"]["steps"][0]["name"] == "linear"
    assert manifest["verified_accuracy"] == pytest.approx(own[0].user_attrs[store.METRICS]["accuracy"])


def test_a_users_technique_may_not_take_a_built_in_name(empty_workdir):
    from autotune.errors import ConfigError
    from autotune.search.plugins import load_space

    (empty_workdir / "clash.py").write_text(SPACE.replace('name = "linear"', 'name = "distill"'))
    with pytest.raises(ConfigError, match="Linear is named 'distill', which autotune's Distill already is"):
        load_space("clash.py")
