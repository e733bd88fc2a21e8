"""Keras 3 .keras files rebuilt as verified tf_keras models (autotune.keras3)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from autotune import keras3
from autotune.errors import ConfigError
from autotune.keras3 import is_keras3_file, rebuild_in_tf_keras


def _zip(path: Path, metadata: dict[str, Any] | None, config: dict[str, Any]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        if metadata is not None:
            z.writestr("metadata.json", json.dumps(metadata))
        z.writestr("config.json", json.dumps(config))
    return path


def _one_line_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        rebuild_in_tf_keras(path)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert str(path) in message
    return message


# ---- fast: no TensorFlow ------------------------------------------------------------------


def test_is_keras3_file_reads_metadata_only(tmp_path: Path) -> None:
    assert is_keras3_file(_zip(tmp_path / "k3.keras", {"keras_version": "3.15.1"}, {}))
    assert not is_keras3_file(_zip(tmp_path / "k2.keras", {"keras_version": "2.21.0"}, {}))
    assert is_keras3_file(_zip(tmp_path / "nometa.keras", None, {"config": {"dtype": {"class_name": "DTypePolicy"}}}))
    (tmp_path / "text.keras").write_text("not a zip")
    assert not is_keras3_file(tmp_path / "text.keras")
    assert not is_keras3_file(tmp_path / "missing.keras")
    assert not is_keras3_file(tmp_path)


def test_config_refusals_need_no_tensorflow(tmp_path: Path) -> None:
    def layer(cls: str, name: str, module: str = "keras.layers", registered: str | None = None) -> dict[str, Any]:
        return {"module": module, "class_name": cls, "config": {"name": name}, "registered_name": registered}

    def model(*layers: dict[str, Any], cls: str = "Functional") -> dict[str, Any]:
        return {"module": "keras", "class_name": cls, "config": {"layers": list(layers)}}

    meta = {"keras_version": "3.15.1"}
    cases = {
        "lambda": (model(layer("InputLayer", "in"), layer("Lambda", "double")), "Lambda layer 'double'"),
        "custom": (model(layer("Scale", "scale", "my_pkg.layers", "my_pkg>Scale")), "custom layer 'scale' (Scale)"),
        "subclassed": (model(cls="MyModel"), "model class 'MyModel' is not supported"),
        "nested": (model(layer("Sequential", "backbone", "keras")), "nested model 'backbone'"),
    }
    for name, (config, expected) in cases.items():
        assert expected in _one_line_error(_zip(tmp_path / f"{name}.keras", meta, config))
    keras2 = _zip(tmp_path / "k2.keras", {"keras_version": "2.21.0"}, model(layer("InputLayer", "in")))
    assert "was not written by Keras 3" in _one_line_error(keras2)
    (tmp_path / "junk.keras").write_text("junk")
    assert "not a readable .keras file" in _one_line_error(tmp_path / "junk.keras")


# ---- slow: real Keras 3 and tf_keras models ------------------------------------------------


@pytest.fixture(scope="module")
def k3() -> ModuleType:
    from autotune._keras import tf

    tf()  # TensorFlow first, loaded with TF_USE_LEGACY_KERAS=1
    import keras

    assert keras.__version__.startswith("3.")
    return keras


def _randomize_batchnorm(model: Any) -> None:
    """Non-trivial gamma, beta and moving statistics, so a weight-copy bug changes predictions."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 1, n), rng.normal(0, 2, n), rng.uniform(0.2, 3, n)])


def _sequential_cnn(k3: ModuleType) -> Any:
    L = k3.layers
    return k3.Sequential([
        L.Input((16, 16, 3)),
        L.ZeroPadding2D(1),
        L.Conv2D(8, 3, activation="relu", kernel_regularizer="l2"),
        L.BatchNormalization(),
        L.ReLU(),
        L.MaxPooling2D(),
        L.DepthwiseConv2D(3, padding="same", depth_multiplier=2),
        L.SeparableConv2D(8, 3, padding="same"),
        L.Activation("relu"),
        L.AveragePooling2D(2),
        L.Reshape((16, 8)),
        L.Flatten(),
        L.Dropout(0.3),
        L.Dense(5, activation="softmax"),
    ], name="seq_cnn")


def _functional_resnet(k3: ModuleType) -> Any:
    L = k3.layers
    inp = k3.Input((16, 16, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization(name="bn_stem")(x)
    x = L.ReLU()(x)
    y = L.Conv2D(8, 3, padding="same")(x)
    y = L.BatchNormalization(momentum=0.9)(y)
    x = L.Add()([x, y])  # residual
    branch = L.DepthwiseConv2D(3, padding="same")(x)
    branch = L.MaxPooling2D(pool_size=1)(branch)
    x = L.Concatenate(axis=-1)([x, branch, L.Activation("relu")(y)])
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.2)(x)
    out = L.Dense(4, activation="softmax")(x)
    return k3.Model(inp, out, name="resnetish")


def _assert_same_weights(k3_model: Any, tf_model: Any) -> None:
    tf_layers = {layer.name: layer for layer in tf_model.layers}
    for layer in k3_model.layers:
        for a, b in zip(layer.get_weights(), tf_layers[layer.name].get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sequential_cnn_is_rebuilt_with_same_weights_and_predictions(k3: ModuleType, tmp_path: Path) -> None:
    from autotune._keras import keras

    k3_model = _sequential_cnn(k3)
    _randomize_batchnorm(k3_model)
    k3_model.save(tmp_path / "seq.keras")
    assert is_keras3_file(tmp_path / "seq.keras")

    tf_model = rebuild_in_tf_keras(tmp_path / "seq.keras")
    assert isinstance(tf_model, keras().Sequential)
    assert [type(layer).__name__ for layer in tf_model.layers] == [type(layer).__name__ for layer in k3_model.layers]
    _assert_same_weights(k3_model, tf_model)
    x = np.random.default_rng(2).normal(size=(3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(tf_model.predict(x, verbose=0), k3_model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.slow
def test_functional_residual_concat_model_is_rebuilt(k3: ModuleType, tmp_path: Path) -> None:
    from autotune._keras import keras

    k3_model = _functional_resnet(k3)
    k3_model.compile("adam", "sparse_categorical_crossentropy")
    data = np.random.default_rng(3).normal(2, 3, size=(16, 16, 16, 3)).astype(np.float32)
    k3_model.fit(data, np.arange(16) % 4, epochs=1, verbose=0)  # moves the BN statistics
    _randomize_batchnorm(k3_model)
    k3_model.save(tmp_path / "func.keras")

    tf_model = rebuild_in_tf_keras(tmp_path / "func.keras")
    assert isinstance(tf_model, keras().Model) and tf_model.name == "resnetish"
    assert {type(layer).__name__ for layer in tf_model.layers} >= {"Add", "Concatenate", "BatchNormalization"}
    _assert_same_weights(k3_model, tf_model)
    bn = tf_model.get_layer("bn_stem")
    assert not np.allclose(bn.moving_variance.numpy(), 1.0)
    np.testing.assert_allclose(tf_model.predict(data, verbose=0), k3_model.predict(data, verbose=0), atol=1e-5)


@pytest.mark.slow
def test_is_keras3_file_false_for_tf_keras_file(tmp_path: Path) -> None:
    from autotune._keras import keras

    tfk = keras()
    tfk.Sequential([tfk.layers.InputLayer((4,)), tfk.layers.Dense(2)]).save(tmp_path / "k2.keras")
    assert zipfile.is_zipfile(tmp_path / "k2.keras")
    assert not is_keras3_file(tmp_path / "k2.keras")


@pytest.mark.slow
def test_lambda_custom_and_unsupported_options_are_refused(k3: ModuleType, tmp_path: Path) -> None:
    L = k3.layers

    @k3.saving.register_keras_serializable(package="autotune_test")
    class Scale(L.Layer):
        def call(self, x: Any) -> Any:
            return x * 2.0

    inp = k3.Input((4,))
    k3.Model(inp, L.Lambda(lambda t: t * 2.0, name="times_two")(inp)).save(tmp_path / "lambda.keras")
    k3.Model(inp, Scale(name="scale")(inp)).save(tmp_path / "custom.keras")
    k3.Model(inp, L.Dense(3, lora_rank=2, name="lora")(inp)).save(tmp_path / "lora.keras")
    k3.Model(inp, L.RMSNormalization(name="rms")(inp)).save(tmp_path / "rms.keras")

    assert "Lambda layer 'times_two'" in _one_line_error(tmp_path / "lambda.keras")
    assert "custom layer 'scale' (Scale)" in _one_line_error(tmp_path / "custom.keras")
    assert "layer 'lora' (Dense) uses option lora_rank=2" in _one_line_error(tmp_path / "lora.keras")
    assert "layer 'rms' (RMSNormalization) has no tf_keras equivalent" in _one_line_error(tmp_path / "rms.keras")


@pytest.mark.slow
def test_prediction_mismatch_is_refused(k3: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _sequential_cnn(k3).save(tmp_path / "seq.keras")
    monkeypatch.setattr(keras3, "_copy_weights", lambda *args: None)  # the rebuild keeps fresh weights
    assert "predictions differ" in _one_line_error(tmp_path / "seq.keras")


@pytest.mark.slow
def test_rebuilt_model_converts_to_tflite_and_can_be_pruned(k3: ModuleType, tmp_path: Path) -> None:
    import tensorflow_model_optimization as tfmot

    from autotune._keras import native_stderr_silenced, tf

    k3_model = _functional_resnet(k3)
    _randomize_batchnorm(k3_model)
    k3_model.save(tmp_path / "func.keras")
    tf_model = rebuild_in_tf_keras(tmp_path / "func.keras")

    with native_stderr_silenced():
        flatbuffer = tf().lite.TFLiteConverter.from_keras_model(tf_model).convert()
    assert isinstance(flatbuffer, bytes) and len(flatbuffer) > 1000
    pruned = tfmot.sparsity.keras.prune_low_magnitude(tf_model)
    assert any("prune_low_magnitude" in layer.name for layer in pruned.layers)
