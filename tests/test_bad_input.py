"""Every bad input gets one clear line and exit code 2, and nothing stored changes: the
database holds the same studies, trials and records after the refusal as before it."""

from __future__ import annotations

import json
import os
import shutil
import zipfile

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()
DB = "sqlite:///studies/autotune.db"


@pytest.fixture(scope="module")
def stocked(tmp_path_factory, demo_files):
    """A working directory with a demo study of 3 trials, and one bad file of every kind."""
    from autotune._keras import keras

    root = tmp_path_factory.mktemp("bad")
    model, data = demo_files
    shutil.copytree(model.parent, root / "studies" / model.parent.name)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = runner.invoke(app, ["run", "--space", "quick", "--budget", "3"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["run", "--study", "moved", "--space", "quick", "--budget", "2"])
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    moved = optuna.load_study(study_name="moved", storage=store.open_storage(f"sqlite:///{root}/studies/autotune.db"))
    moved.set_user_attr(store.ENV, {**moved.user_attrs[store.ENV], "id": "0123456789ab", "cpu": "another CPU"})

    (root / "corrupt.keras").write_bytes(b"\x00garbage, not a zip")
    with zipfile.ZipFile(root / "notmodel.keras", "w") as z:
        z.writestr("readme.txt", "hello")
    (root / "nosaved").mkdir()
    (root / "nosaved" / "variables").mkdir()
    k = keras()
    lam = k.Sequential([k.layers.Input((32, 32, 1)), k.layers.Lambda(lambda t: t * 2.0), k.layers.Flatten(), k.layers.Dense(10)])
    lam.save(root / "lambda.keras")
    lam.save(root / "lambda.h5")
    with np.load(data) as f:
        good = {key: f[key] for key in f.files}
    np.savez(root / "keys.npz", x=good["x_train"], y=good["y_train"])
    np.savez(root / "shape.npz", **{**good, "x_train": good["x_train"][:, :8, :8], "x_val": good["x_val"][:, :8, :8]})
    nan = good["x_val"].copy()
    nan[3, 0, 0, 0] = np.nan
    np.savez(root / "nan.npz", **{**good, "x_val": nan})
    np.savez(root / "empty.npz", **{**good, "x_val": good["x_val"][:0], "y_val": good["y_val"][:0]})
    labels = good["y_val"].copy()
    labels[0] = 12
    np.savez(root / "labels.npz", **{**good, "y_val": labels})
    (root / "raising_space.py").write_text("raise ImportError('needs a package you do not have')\n")
    _custom_layer_models(root)
    (root / "raising_objective.py").write_text("1 / 0\n")
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("mine")
    (root / "afile").write_text("a file")
    (root / "bad.toml").write_text("budget = [\n")
    return root


SCALE = """
import {keras} as keras
class Scale(keras.layers.Layer):
    def build(self, shape):
        self.scale = self.add_weight(name="scale", shape=(shape[-1],), initializer="ones")
    def call(self, x):
        return x * self.scale
"""


def _custom_layer_models(root):
    """Models with a custom Scale layer (tf_keras .h5, Keras 3 .keras), and files that lack it."""
    import importlib.util
    import sys
    import warnings

    import keras as k3

    from autotune._keras import keras

    def scale(name, text):
        (root / f"{name}.py").write_text(text)
        spec = importlib.util.spec_from_file_location(f"user_{name}", root / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module.Scale

    k, layer = keras(), scale("layers", SCALE.format(keras="tf_keras"))
    model = k.Sequential([k.layers.Input((32, 32, 1)), layer(name="scale"), k.layers.Flatten(), k.layers.Dense(10)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # h5 is "legacy"
        model.save(root / "custom.h5")
    layer = scale("layers3", SCALE.format(keras="keras"))
    x = k3.Input((32, 32, 1))
    k3.Model(x, k3.layers.Dense(10)(k3.layers.Flatten()(layer(name="scale")(x)))).save(root / "custom3.keras")
    (root / "nolayer.py").write_text("X = 1\n")
    (root / "raising_layers.py").write_text("1 / 0\n")


@pytest.fixture
def here(stocked, monkeypatch):
    monkeypatch.chdir(stocked)
    return stocked


def _snapshot() -> str:
    st = store.open_storage(DB)
    out = {}
    for name in store.study_names(st):
        s = optuna.load_study(study_name=name, storage=st)
        out[name] = {
            "attrs": s.user_attrs,
            "trials": [(t.number, t.state.name, t.values, t.params, t.user_attrs) for t in s.get_trials()],
        }
    return json.dumps(out, sort_keys=True, default=str)


DEMO_MODEL = "studies/_demo-v1/model.keras"
DEMO_DATA = "studies/_demo-v1/digits.npz"
CUSTOM = ["run", "--model", "custom.h5", "--data", DEMO_DATA, "--custom-objects"]
CASES = {
    "model missing": (["run", "--model", "nope.keras", "--data", "keys.npz"], "model not found"),
    "model corrupt": (["run", "--model", "corrupt.keras", "--data", "keys.npz"], "cannot load model"),
    "not a model": (["run", "--model", "notmodel.keras", "--data", "keys.npz"], "cannot load model"),
    "not a SavedModel": (["run", "--model", "nosaved", "--data", "keys.npz"], "holds no saved_model.pb"),
    "model of another kind": (["run", "--model", "bad.toml", "--data", "keys.npz"], "neither a .keras/.h5 file"),
    "Lambda in .keras": (["run", "--model", "lambda.keras", "--data", "keys.npz"], "--trust-model-code"),
    "Lambda in .h5": (["run", "--model", "lambda.h5", "--data", "keys.npz"], "--trust-model-code"),
    "data missing": (["run", "--model", DEMO_MODEL, "--data", "nope.npz"], "data not found"),
    "data wrong keys": (["run", "--model", DEMO_MODEL, "--data", "keys.npz"], "lacks x_train"),
    "data shapes": (["run", "--model", DEMO_MODEL, "--data", "shape.npz"], "expects (32, 32, 1)"),
    "data NaN": (["run", "--model", DEMO_MODEL, "--data", "nan.npz"], "NaN or infinite"),
    "data empty split": (["run", "--model", DEMO_MODEL, "--data", "empty.npz"], "val split is empty"),
    "labels past the classes": (["run", "--model", DEMO_MODEL, "--data", "labels.npz"], "outputs 10 classes"),
    "unknown study": (["resume", "nope"], "no study named 'nope'"),
    "unknown space": (["run", "--study", "fresh", "--space", "nope"], "unknown search space 'nope'"),
    "unknown objective": (["run", "--study", "fresh", "--objective", "nope"], "unknown objective 'nope'"),
    "space raises on import": (["run", "--study", "fresh", "--space", "raising_space.py"], "raised on import: ImportError"),
    "objective raises on import": (["run", "--study", "fresh", "--objective", "raising_objective.py"], "raised on import: ZeroDivisionError"),
    "storage malformed": (["studies", "--storage", "not-a-url"], "malformed"),
    "storage unreachable": (["studies", "--storage", "postgresql://me:hunter2@127.0.0.1:1/none"], "cannot be used"),
    "budget zero": (["run", "--budget", "0"], "--budget must be at least 1"),
    "budget negative": (["resume", "demo", "--budget", "-3"], "--budget must be at least 1"),
    "export dir not empty": (["export", "demo", "--out", "full"], "not empty"),
    "export dir not a directory": (["export", "demo", "--out", "afile"], "not a directory"),
    "export dir not creatable": (["export", "demo", "--out", "afile/sub"], "cannot be created"),
    "export prefer typo": (["export", "demo", "--out", "new", "--prefer", "fastest"], "--prefer must be one of"),
    "study file missing": (["run", "studies/nope.toml"], "study file not found"),
    "study file not TOML": (["run", "bad.toml"], "not valid TOML"),
    "contradicting a stored study": (["run", "--max-accuracy-drop", "0.05"], "cannot continue with 0.05"),
    "another machine": (["resume", "moved"], "--allow-new-hardware"),
    "workers on SQLite": (["run", "--workers", "2"], "PostgreSQL"),
    "custom objects without trust": ([*CUSTOM, "layers.py"], "is Python that runs when the model loads; if you trust it, pass --trust-model-code"),
    "custom objects file missing": ([*CUSTOM, "nope.py", "--trust-model-code"], "custom objects file not found"),
    "custom objects raise on import": ([*CUSTOM, "raising_layers.py", "--trust-model-code"], "raised on import: ZeroDivisionError"),
    "custom layer the file lacks": ([*CUSTOM, "nolayer.py", "--trust-model-code"], "custom layer 'scale' (Scale) is not in --custom-objects"),
    "Keras 3 custom layer the file lacks": (
        ["run", "--model", "custom3.keras", "--data", DEMO_DATA, "--custom-objects", "nolayer.py", "--trust-model-code"],
        "custom layer 'scale' (Scale) is not in --custom-objects",
    ),
    "custom layer without --custom-objects": (["run", "--model", "custom.h5", "--data", DEMO_DATA], "custom layer 'scale' (Scale) needs its class"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(here, case):
    args, words = CASES[case]
    before = _snapshot()
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (case, result.output)
    assert words in result.output, (case, result.output)
    assert len(result.output.strip().splitlines()) == 1, (case, result.output)
    assert "hunter2" not in result.output and "Traceback" not in result.output
    assert _snapshot() == before, case
    assert (here / "full" / "keep.txt").read_text() == "mine"
    assert not (here / "new").exists() or not any((here / "new").iterdir())


def test_another_machine_may_add_trials_when_allowed(here):
    result = runner.invoke(app, ["resume", "moved", "--allow-new-hardware"])
    assert result.exit_code == 0, result.output


def test_a_trusted_lambda_model_loads(here):
    from autotune.inputs.model import load_model

    model = load_model(here / "lambda.keras", trust_code=True)
    assert any(type(layer).__name__ == "Lambda" for layer in model.layers)
