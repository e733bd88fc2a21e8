"""Keras 3 .keras files rebuilt as verified tf_keras models (autotune.inputs.keras3)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from autotune.errors import ConfigError
from autotune.inputs import keras3
from autotune.inputs.keras3 import is_keras3_file, rebuild_in_tf_keras


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
    def layer(cls: str, name: str, module: str = "keras.layers", registered: str | None = None,
              **options: Any) -> dict[str, Any]:
        return {"module": module, "class_name": cls, "config": {"name": name, **options}, "registered_name": registered}

    def op(cls: str, name: str, module: str = "numpy") -> dict[str, Any]:  # as Keras 3 saves x + y, keras.ops.*
        return {"module": f"keras.src.ops.{module}", "class_name": cls, "config": {"name": name}, "registered_name": cls}

    def model(*layers: dict[str, Any], cls: str = "Functional") -> dict[str, Any]:
        return {"module": "keras", "class_name": cls, "config": {"layers": list(layers)}}

    def nested(*layers: dict[str, Any], name: str = "backbone", cls: str = "Functional") -> dict[str, Any]:
        module = "keras.src.models.functional" if cls == "Functional" else "keras"
        return {"module": module, "class_name": cls, "config": {"name": name, "layers": list(layers)},
                "registered_name": cls if cls == "Functional" else None}

    meta = {"keras_version": "3.15.1"}
    cases = {
        "lambda": (model(layer("InputLayer", "in"), layer("Lambda", "double")), "Lambda layer 'double'"),
        "custom": (model(layer("Scale", "scale", "my_pkg.layers", "my_pkg>Scale")), "custom layer 'scale' (Scale)"),
        "subclassed": (model(cls="MyModel"), "model class 'MyModel' is not supported"),
        "nested lambda": (model(nested(layer("InputLayer", "in"), layer("Lambda", "double"))),
                          "Lambda layer 'backbone/double'"),
        "nested custom": (model(nested(nested(layer("Scale", "s", "my_pkg.layers", "my_pkg>Scale"), name="inner"))),
                          "custom layer 'backbone/inner/s' (Scale)"),
        "unknown operation": (model(op("FFT", "fft", "math")), "operation 'fft' (FFT) has no tf_keras equivalent"),
        "activation": (model(layer("Dense", "d", activation="celu")), "layer 'd' (Dense) uses activation='celu'"),
        "recurrent activation": (model(layer("LSTM", "l", recurrent_activation="hard_sigmoid")),
                                 "layer 'l' (LSTM) uses recurrent_activation='hard_sigmoid'"),
    }
    for name, (config, expected) in cases.items():
        assert expected in _one_line_error(_zip(tmp_path / f"{name}.keras", meta, config))
    # nested models, operation nodes and activations tf_keras lacks pass the check (they are rebuilt)
    fine = model(layer("InputLayer", "in"), op("Add", "add"), op("HardSilu", "hs", "nn"),
                 layer("Dense", "d", activation="hard_silu"),
                 nested(layer("Conv2D", "c", activation="silu"), op("Mean", "mean")),
                 nested(layer("Dense", "d"), cls="Sequential"))
    keras3._check_config(tmp_path / "fine.keras", fine)
    keras2 = _zip(tmp_path / "k2.keras", {"keras_version": "2.21.0"}, model(layer("InputLayer", "in")))
    assert "was not written by Keras 3" in _one_line_error(keras2)
    (tmp_path / "junk.keras").write_text("junk")
    assert "not a readable .keras file" in _one_line_error(tmp_path / "junk.keras")


def test_config_check_imports_no_tensorflow() -> None:
    code = ("import sys; from autotune.inputs import keras3, keras3_ops; "
            "assert 'Add' in keras3_ops.OPERATIONS and 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


# ---- slow: real Keras 3 and tf_keras models ------------------------------------------------


@pytest.fixture(scope="module")
def k3() -> ModuleType:
    from autotune._keras import tf

    tf()  # TensorFlow first, loaded with TF_USE_LEGACY_KERAS=1
    import keras

    assert keras.__version__.startswith("3.")
    return keras


def _all_layers(model: Any) -> list[Any]:
    """Every layer, inside nested models too."""
    return [inner for layer in model.layers
            for inner in ([layer] if not hasattr(layer, "layers") else [layer, *_all_layers(layer)])]


def _randomize_batchnorm(model: Any, mild: bool = False) -> None:
    """Non-trivial gamma, beta and moving statistics (and Normalization statistics), so a weight-copy
    bug changes predictions. ``mild`` for deep networks: gains of up to 4.5 per BatchNormalization
    over dozens of them amplify float32 rounding (Keras 3's BN kernel is not tf_keras's fused one)
    beyond the rebuild's tolerance, which trained statistics do not."""
    rng = np.random.default_rng(1)
    for layer in _all_layers(model):
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            if mild:
                layer.set_weights([rng.uniform(0.8, 1.2, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                                   rng.uniform(0.8, 1.2, n)])
            else:
                layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 1, n), rng.normal(0, 2, n),
                                   rng.uniform(0.2, 3, n)])
        elif kind == "Normalization" and layer.get_weights():
            mean, var, count = layer.get_weights()
            layer.set_weights([rng.normal(0, 1, mean.shape), rng.uniform(0.5, 2, var.shape), count + 10])
            layer.finalize_state()  # Keras 3 reads its statistics into constants only here (or on load)


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
    """Layer by layer, into nested models by path (names repeat across nesting levels); a layer
    without weights may have become TF ops of other names (Activation('hard_sigmoid'))."""
    tf_layers = {layer.name: layer for layer in tf_model.layers}
    for layer in k3_model.layers:
        if hasattr(layer, "layers"):
            _assert_same_weights(layer, tf_layers[layer.name])
            continue
        if not layer.weights:
            continue
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

    k3.Model(inp, k3.ops.cumsum(inp, axis=-1)).save(tmp_path / "cumsum.keras")
    k3.Model(inp, L.Dense(3, activation="squareplus", name="sq")(inp)).save(tmp_path / "squareplus.keras")

    assert "operation 'cumsum' (Cumsum) has no tf_keras equivalent" in _one_line_error(tmp_path / "cumsum.keras")
    assert "layer 'sq' (Dense) uses activation='squareplus'" in _one_line_error(tmp_path / "squareplus.keras")
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


def _tflite_predict(tf_model: Any, x: np.ndarray) -> np.ndarray:
    """The rebuilt model converted to a float32 TFLite flatbuffer and run by LiteRT."""
    from autotune._keras import litert_interpreter_class, native_stderr_silenced, tf

    with native_stderr_silenced():
        flatbuffer = tf().lite.TFLiteConverter.from_keras_model(tf_model).convert()
        interpreter = litert_interpreter_class()(model_content=flatbuffer)
        detail = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(detail["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _rebuilt_matches(k3_model: Any, tmp_path: Path, x: np.ndarray, tflite: bool = True) -> Any:
    """Save the Keras 3 model, rebuild it in tf_keras; the rebuild predicts what Keras 3 does, and
    so does its float32 TFLite conversion."""
    path = tmp_path / f"{k3_model.name}.keras"
    k3_model.save(path)
    tf_model = rebuild_in_tf_keras(path)
    expected = np.asarray(k3_model(x, training=False))
    assert np.std(expected) > 1e-3  # outputs that vary, so a wrong op or weight would show
    got = tf_model.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, float(np.max(np.abs(expected)))))
    if tflite:
        np.testing.assert_allclose(_tflite_predict(tf_model, x), got, atol=1e-4 * max(1.0, float(np.max(np.abs(got)))))
    return tf_model


def _images(shape: tuple[int, ...], n: int = 4) -> np.ndarray:
    return np.random.default_rng(5).uniform(0, 255, size=(n, *shape)).astype(np.float32)


@pytest.mark.slow
def test_operation_names_are_keras3_operations(k3: ModuleType) -> None:
    import importlib

    from autotune.inputs import keras3_ops

    classes = {name for module in ("numpy", "nn", "core", "math")
               for name in vars(importlib.import_module(f"keras.src.ops.{module}"))}
    assert keras3_ops.OPERATIONS <= classes
    assert set(keras3_ops.GRAPH_ACTIVATIONS.values()) <= keras3_ops.OPERATIONS
    assert set(keras3_ops.SAME_ACTIVATIONS) | set(keras3_ops.GRAPH_ACTIVATIONS) <= set(dir(k3.activations))


@pytest.mark.slow
def test_mobilenet_v3_small_with_operation_nodes(k3: ModuleType, tmp_path: Path) -> None:
    import tensorflow_model_optimization as tfmot

    from autotune._keras import keras

    k3_model = k3.applications.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75, weights=None, include_top=True,
                                                classes=10, classifier_activation=None)
    _randomize_batchnorm(k3_model, mild=True)
    config = json.loads(k3_model.to_json())
    assert {"Add", "Multiply"} <= {e["class_name"] for e in config["config"]["layers"] if "ops" in e["module"]}
    tf_model = _rebuilt_matches(k3_model, tmp_path, _images((32, 32, 3)))
    assert isinstance(tf_model, keras().Model)
    kinds = {type(layer).__name__ for layer in tf_model.layers}
    assert {"TFOpLambda", "Multiply", "ReLU", "Rescaling"} <= kinds
    _assert_same_weights(k3_model, tf_model)
    # TF-MOT's prune registry knows neither Rescaling nor TFOpLambda, which tf_keras's own
    # MobileNetV3Small has too; the prune technique turns this into a failed candidate.
    with pytest.raises(ValueError, match="Rescaling|TFOpLambda"):
        tfmot.sparsity.keras.prune_low_magnitude(tf_model)


@pytest.mark.slow
def test_efficientnet_b0_with_rescaling_and_normalization(k3: ModuleType, tmp_path: Path) -> None:
    k3_model = k3.applications.EfficientNetB0(input_shape=(32, 32, 3), weights=None, classes=10,
                                              classifier_activation=None)
    _randomize_batchnorm(k3_model, mild=True)
    tf_model = _rebuilt_matches(k3_model, tmp_path, _images((32, 32, 3)))
    assert {"Rescaling", "Normalization"} <= {type(layer).__name__ for layer in tf_model.layers}
    _assert_same_weights(k3_model, tf_model)


@pytest.mark.slow
def test_resnet50(k3: ModuleType, tmp_path: Path) -> None:
    k3_model = k3.applications.ResNet50(input_shape=(32, 32, 3), weights=None, classes=10, classifier_activation=None)
    _randomize_batchnorm(k3_model, mild=True)
    _rebuilt_matches(k3_model, tmp_path, _images((32, 32, 3)))


def _mobilenet_v2_base(k3: ModuleType) -> Any:
    base = k3.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=False)
    _randomize_batchnorm(base, mild=True)
    return base


@pytest.mark.slow
def test_backbone_nested_in_functional_model(k3: ModuleType, tmp_path: Path) -> None:
    import tensorflow_model_optimization as tfmot

    from autotune._keras import keras

    L = k3.layers
    base = _mobilenet_v2_base(k3)
    base.trainable = False  # transfer learning: a frozen backbone stays frozen in tf_keras
    inp = k3.Input((32, 32, 1))
    x = L.Conv2D(3, 1, name="to_rgb")(inp)  # grey images into an RGB backbone
    out = L.Dense(10, name="head")(L.GlobalAveragePooling2D()(base(x)))
    k3_model = k3.Model(inp, out, name="transfer")

    tf_model = _rebuilt_matches(k3_model, tmp_path, _images((32, 32, 1)))
    nested = tf_model.get_layer(base.name)
    assert isinstance(nested, keras().Model) and not nested.trainable
    assert len(tf_model.trainable_weights) == len(k3_model.trainable_weights) == 4
    _assert_same_weights(k3_model, tf_model)
    tf_model.save(tmp_path / "rebuilt.keras")  # the training techniques save and reload it
    again = keras().models.load_model(tmp_path / "rebuilt.keras", compile=False, safe_mode=True)
    x = _images((32, 32, 1), 2)
    np.testing.assert_allclose(again.predict(x, verbose=0), tf_model.predict(x, verbose=0), atol=1e-6)
    assert tfmot.sparsity.keras.prune_low_magnitude(tf_model) is not None


@pytest.mark.slow
def test_backbone_nested_in_sequential_model(k3: ModuleType, tmp_path: Path) -> None:
    from autotune._keras import keras

    L = k3.layers
    base = _mobilenet_v2_base(k3)
    k3_model = k3.Sequential([base, L.GlobalAveragePooling2D(), L.Dense(10)], name="seq_transfer")
    k3_model.build((None, 32, 32, 3))
    tf_model = _rebuilt_matches(k3_model, tmp_path, _images((32, 32, 3)))
    assert isinstance(tf_model, keras().Sequential)
    assert isinstance(tf_model.layers[0], keras().Model)
    _assert_same_weights(k3_model, tf_model)


@pytest.mark.slow
def test_nesting_at_depth_with_repeated_names(k3: ModuleType, tmp_path: Path) -> None:
    L = k3.layers
    inner = k3.Sequential([k3.Input((4,)), L.Dense(3, name="dense")], name="inner")
    mid_in = k3.Input((4,))
    mid = k3.Model(mid_in, L.Dense(2, name="dense")(inner(mid_in)), name="mid")
    inp = k3.Input((4,))
    k3_model = k3.Model(inp, L.Dense(2, name="dense")(mid(inp) * 2.0), name="outer")  # three layers named 'dense'
    x = np.random.default_rng(6).normal(size=(5, 4)).astype(np.float32)
    tf_model = _rebuilt_matches(k3_model, tmp_path, x, tflite=False)
    _assert_same_weights(k3_model, tf_model)
    assert tf_model.get_layer("mid").get_layer("inner").get_layer("dense").units == 3


@pytest.mark.slow
def test_arithmetic_and_keras_ops_are_rebuilt(k3: ModuleType, tmp_path: Path) -> None:
    L = k3.layers
    inp = k3.Input((8,))
    x = L.Dense(6)(inp)
    y = x * 0.5 + 1
    z = k3.ops.mean(y, axis=-1, keepdims=True)
    k3_model = k3.Model(inp, L.Dense(3)(1 - z * y / 2.0), name="arith")
    x = np.random.default_rng(7).normal(size=(6, 8)).astype(np.float32)
    tf_model = _rebuilt_matches(k3_model, tmp_path, x)
    assert "TFOpLambda" in {type(layer).__name__ for layer in tf_model.layers}
    tf_model.save(tmp_path / "rebuilt.keras")
    from autotune._keras import keras

    again = keras().models.load_model(tmp_path / "rebuilt.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), tf_model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.slow
def test_many_operations_and_constants_are_rebuilt(k3: ModuleType, tmp_path: Path) -> None:
    O, L = k3.ops, k3.layers
    inp = k3.Input((4, 6))
    a = O.abs(inp) + 0.1
    outs = [
        1 - inp, inp * inp, inp / 2, O.divide(inp, 3.0), -inp, inp**2, O.maximum(inp, 0.0), O.minimum(inp, inp * 2),
        O.sum(inp, axis=1, keepdims=True), O.max(inp, axis=(1, 2)), O.min(inp, axis=1), O.reshape(inp, (-1, 24)),
        O.transpose(inp, (0, 2, 1)), O.concatenate([inp, inp * 3], axis=-1), O.stack([inp, inp], axis=1),
        O.clip(inp, -1, 1), O.square(inp), O.sqrt(a), O.exp(inp), O.log(a), inp @ O.transpose(inp, (0, 2, 1)),
        O.expand_dims(inp, 1), O.squeeze(O.expand_dims(inp, 1), axis=1), O.relu(inp), O.relu6(inp * 4),
        O.sigmoid(inp), O.hard_sigmoid(inp * 4), O.hard_silu(inp * 4), O.silu(inp), O.gelu(inp),
        O.gelu(inp, approximate=False), O.softmax(inp, axis=1), O.log_softmax(inp), O.tanh(inp), inp[:, 1:3, ::2],
        inp[..., 0], inp * np.arange(6, dtype="float32"), O.leaky_relu(inp, 0.1), O.elu(inp, 0.5),
        O.matmul(inp, np.ones((6, 2), "float32")), O.where(inp > 0, inp, 0), O.softplus(inp), O.rsqrt(a),
        inp - O.mean(inp, axis=-1, keepdims=True), O.cast(inp, "float16"), O.einsum("bij,bkj->bik", inp, inp),
        L.Activation("hard_sigmoid")(inp * 4), L.Dense(3, activation="hard_silu")(inp),
        L.Dense(3, activation="relu6")(inp * 4), L.Dense(3, activation="silu")(inp),
    ]
    k3_model = k3.Model(inp, outs, name="ops")
    k3_model.save(tmp_path / "ops.keras")
    tf_model = rebuild_in_tf_keras(tmp_path / "ops.keras")  # verified output by output inside
    x = np.random.default_rng(8).normal(0, 2, size=(3, 4, 6)).astype(np.float32)
    for got, expected in zip(tf_model.predict(x, verbose=0), k3_model.predict(x, verbose=0), strict=True):
        np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), atol=2e-3, rtol=1e-3)


@pytest.mark.slow
def test_keras3_hard_sigmoid_is_not_tf_keras_hard_sigmoid(k3: ModuleType, tmp_path: Path) -> None:
    """tf_keras's hard_sigmoid is 0.2x+0.5; Keras 3's is relu6(x+3)/6: the name alone would be wrong.
    A Sequential whose activation becomes several ops is rebuilt as a Functional model."""
    from autotune._keras import keras

    L = k3.layers
    k3_model = k3.Sequential([k3.Input((5,)), L.Dense(4, activation="hard_silu"), L.Activation("hard_sigmoid"),
                              L.Dense(3, activation="relu6")], name="hard")
    x = np.linspace(-4, 4, 40, dtype=np.float32).reshape(8, 5)
    tf_model = _rebuilt_matches(k3_model, tmp_path, x)
    assert isinstance(tf_model, keras().Model)
    _assert_same_weights(k3_model, tf_model)
    layer = keras().layers.Activation("hard_sigmoid")
    assert not np.allclose(layer(np.float32([2.7])), k3.activations.hard_sigmoid(np.float32([2.7])))
