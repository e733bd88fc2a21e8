"""Models with custom layers from a file of the user's (--custom-objects): a tf_keras .h5 and a
Keras 3 .keras, searched, trained, reloaded from the cache and exported through the CLI."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.errors import ConfigError
from autotune.inputs.config import check_trusted, make_config, merge_with_stored, read_study_file
from autotune.storage import store

runner = CliRunner()

# tf_keras: a learned per-channel scale, with its option in get_config.
TF_LAYERS = """
import tf_keras as keras

class Scale(keras.layers.Layer):
    def __init__(self, init=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init = init

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],),
                                     initializer=keras.initializers.Constant(self.init))

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "init": self.init}
"""

# Keras 3: the class the file was saved with, and its tf_keras twin, sharing one copy of the code.
K3_LAYERS = """
import keras
import tf_keras

class _ScaleCode:
    def __init__(self, init=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init = init

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "init": self.init}

class Scale(_ScaleCode, keras.layers.Layer):
    pass

class ScaleTF(_ScaleCode, tf_keras.layers.Layer):
    pass

TF_KERAS = {"Scale": ScaleTF}
"""

# Keras 3 only, in keras.ops: autotune makes the tf_keras class itself.
K3_PORTABLE = """
import keras

@keras.saving.register_keras_serializable(package="mine")
class Scale(keras.layers.Layer):
    def __init__(self, init=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init = init

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return keras.ops.multiply(x, self.scale) + 0.1 * keras.ops.tanh(x)

    def get_config(self):
        return {**super().get_config(), "init": self.init}
"""

# Keras 3 code that does not carry over: add_weight's positional arguments differ in tf_keras.
K3_NOT_PORTABLE = K3_PORTABLE.replace('self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")',
                                      'self.add_weight((input_shape[-1],), "ones")')

DISTILL_SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques import Distill

def space(trial):
    precision = "fp32" if trial.number == 2 else "dynamic-int8"
    steps = (Distill(width=0.5, temperature=2.0, alpha=0.5, epochs=1),)
    return Recipe(precision, Runtime("litert", threads=1), steps=steps)
"""


@pytest.fixture(autouse=True)
def _no_active_objects_after():
    """A process keeps the custom objects it loaded the model with; tests share one process."""
    yield
    from autotune.inputs import custom

    custom.use(None)


# ---- fast: no TensorFlow ------------------------------------------------------------------


def test_custom_objects_without_trust_are_refused_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "layers.py").write_text("raise SystemExit('imported')\n")
    args = ["run", "--model", "m.keras", "--data", "d.npz", "--custom-objects", "layers.py"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "pass --trust-model-code" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "studies").exists()


def test_the_study_file_names_the_file_relative_to_itself(tmp_path):
    (tmp_path / "studies").mkdir()
    path = tmp_path / "studies" / "mine.toml"
    path.write_text('model = "../m.keras"\ndata = "../d.npz"\ncustom_objects = "../code/layers.py"\n')
    assert read_study_file(path)["custom_objects"] == str((tmp_path / "code" / "layers.py").resolve())


def test_a_stored_file_is_identity_and_its_trust_is_per_command():
    stored = make_config(study="s", model="/m.keras", data="/d.npz", custom_objects="/a.py")
    with pytest.raises(ConfigError, match="created with --custom-objects '/a.py'"):
        merge_with_stored(stored, {"custom_objects": "/b.py"})
    assert "custom_objects" in stored.to_json() and "trust_model_code" not in stored.to_json()
    with pytest.raises(ConfigError, match="study 's' loads its model with --custom-objects /a.py.*--trust-model-code"):
        check_trusted(stored)
    check_trusted(merge_with_stored(stored, {"trust_model_code": True}))


# ---- slow: real models ----------------------------------------------------------------------


def _module(path: Path, name: str):
    """The layers file imported as the user's training script would have it."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Digits 8×8 (.npz), and a small CNN with a Scale layer: tf_keras .h5 and Keras 3 .keras."""
    from sklearn.datasets import load_digits

    from autotune._keras import keras, tf

    tf()
    import keras as k3

    root = tmp_path_factory.mktemp("custom")
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    np.savez(root / "digits.npz", x_train=x[:600], y_train=y[:600], x_val=x[600:900], y_val=y[600:900])
    for name, text in (("tf_layers.py", TF_LAYERS), ("k3_layers.py", K3_LAYERS), ("k3_portable.py", K3_PORTABLE),
                       ("k3_not_portable.py", K3_NOT_PORTABLE), ("space.py", DISTILL_SPACE)):
        (root / name).write_text(text)

    tfk, scale = keras(), _module(root / "tf_layers.py", "user_tf_layers").Scale
    tfk.utils.set_random_seed(0)
    m = tfk.Sequential([tfk.layers.Input((8, 8, 1)), tfk.layers.Conv2D(8, 3, activation="relu"), scale(init=0.5, name="scale"),
                        tfk.layers.Conv2D(16, 3, activation="relu"), tfk.layers.Flatten(), tfk.layers.Dense(32, activation="relu"),
                        tfk.layers.Dense(10)])
    m.compile("adam", tfk.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x[:600], y[:600], epochs=15, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # h5 is "legacy"; users still have such files
        m.save(root / "tf_model.h5")

    def k3_model(layers_file: str, out: str) -> None:
        scale = _module(root / layers_file, f"user_{layers_file[:-3]}").Scale
        k3.utils.set_random_seed(0)
        i = k3.Input((8, 8, 1))
        h = scale(name="scale")(k3.layers.Conv2D(8, 3, activation="relu")(i))
        h = k3.layers.Dense(32, activation="relu")(k3.layers.Flatten()(k3.layers.Conv2D(16, 3, activation="relu")(h)))
        model = k3.Model(i, k3.layers.Dense(10)(h))
        model.compile("adam", k3.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x[:600], y[:600], epochs=15, verbose=0)
        model.save(root / out)

    k3_model("k3_layers.py", "k3_model.keras")
    k3_model("k3_portable.py", "k3_portable.keras")
    return root


def _trials(name: str):
    st = store.open_storage("sqlite:///studies/autotune.db")
    return optuna.load_study(study_name=name, storage=st).get_trials()


@pytest.mark.slow
@pytest.mark.parametrize("model, layers", [("tf_model.h5", "tf_layers.py"), ("k3_model.keras", "k3_layers.py")])
def test_search_train_reload_and_export_a_model_with_a_custom_layer(inputs, tmp_path, monkeypatch, model, layers):
    monkeypatch.chdir(tmp_path)
    given = ["--model", str(inputs / model), "--data", str(inputs / "digits.npz"),
             "--custom-objects", str(inputs / layers), "--trust-model-code"]

    result = runner.invoke(app, ["run", *given, "--study", "quick", "--space", "quick", "--budget", "3"])
    assert result.exit_code == 0, result.output
    assert [t.state for t in _trials("quick")] == [TrialState.COMPLETE] * 3

    # A trained technique (the student keeps the custom layer: channel surgery leaves its
    # channels), then a later trial that reloads that student from the cache, custom layer and all.
    args = ["run", *given, "--study", "kd", "--space", str(inputs / "space.py"), "--budget", "4", "--max-accuracy-drop", "0.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    distilled, later = _trials("kd")[2:]
    for t in (distilled, later):
        assert t.state == TrialState.COMPLETE, t.user_attrs.get(store.FAIL_REASON)
    assert distilled.user_attrs[store.CACHE]["misses"] == ["distill", "convert:fp32:tflite"]
    lineage = distilled.user_attrs[store.LINEAGE]
    assert lineage[1]["params"] < lineage[1]["params_before"]
    assert "distill" in later.user_attrs[store.CACHE]["hits"]  # with the baseline's artifact, for the timer
    assert later.user_attrs[store.CACHE]["misses"] == ["convert:dynamic-int8:tflite"]

    # resume would load the model again, so it needs the trust again: refused, nothing changes.
    refused = runner.invoke(app, ["resume", "kd", "--budget", "5"])
    assert refused.exit_code == 2 and "pass --trust-model-code" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and len(_trials("kd")) == 4

    # Export from a cache without artifacts: the student is reloaded and converted in this process.
    for artifact in (tmp_path / "studies" / "kd" / "cache").glob("*/model.tflite"):
        shutil.rmtree(artifact.parent)
    refused = runner.invoke(app, ["export", "kd", "--out", str(tmp_path / "out"), "--trial", "2"])
    assert refused.exit_code == 2 and "pass --trust-model-code" in refused.output
    result = runner.invoke(app, ["export", "kd", "--out", str(tmp_path / "out"), "--trial", "2", "--trust-model-code"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (tmp_path / "out" / "model.tflite").is_file()
    assert manifest["verified_accuracy"] == distilled.user_attrs[store.METRICS]["accuracy"]


@pytest.mark.slow
def test_a_keras3_layer_in_keras_ops_needs_no_twin(inputs):
    from autotune._keras import keras
    from autotune.inputs.model import load_model
    from autotune.techniques.training import load_entry, save_entry

    model = load_model(inputs / "k3_portable.keras", trust_code=True, custom_objects=str(inputs / "k3_portable.py"))
    layer = model.get_layer("scale")
    assert isinstance(layer, keras().layers.Layer) and type(layer).__name__ == "Scale"
    assert layer.get_config()["init"] == 1.0 and layer.get_weights()[0].shape == (8,)
    entry = inputs / "entry"
    entry.mkdir()
    save_entry(model, {}, entry)
    x = np.random.default_rng(0).standard_normal((4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(load_entry(entry)(x), model(x), atol=1e-6)

    # Code that does not carry over to tf_keras is refused with the layer's name, in one line.
    with pytest.raises(ConfigError) as info:
        load_model(inputs / "k3_portable.keras", trust_code=True, custom_objects=str(inputs / "k3_not_portable.py"))
    assert "'scale'" in str(info.value) and "\n" not in str(info.value)
