"""Nested models (a keras.applications base used as a layer, Sequential blocks inside
Functional models) are flattened on load, and the techniques then reach the layers inside:
the flat copy computes the same function, channel surgery thins it, TF-MOT prunes it and
TFLite converts it."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.errors import CandidateFailed, ConfigError

pytestmark = pytest.mark.slow


def _k():
    from autotune._keras import keras

    return keras()


def _nested_models(model) -> list[str]:
    return [layer.name for layer in model.layers if isinstance(layer, _k().Model)]


def _predictions_match(a, b, x, training=False, tol=1e-5):
    pa, pb = np.asarray(a(x, training=training)), np.asarray(b(x, training=training))
    assert pa.shape == pb.shape
    assert np.max(np.abs(pa)) > 1e-3  # outputs large enough for the comparison to mean something
    assert np.max(np.abs(pa - pb)) <= tol * np.max(np.abs(pa))


@pytest.fixture(scope="module")
def base():
    """MobileNetV2 with random BatchNormalization statistics: with the defaults, the untrained
    base's outputs vanish (about 1e-11) and every comparison would pass. Variances much below
    0.1 make the network amplify rounding: TFLite and Keras then differ on any model, nested
    or not."""
    k = _k()
    model = k.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    rng = np.random.default_rng(2)
    for layer in model.layers:
        if isinstance(layer, k.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.01, n), rng.uniform(0.1, 0.2, n)])
    return model


@pytest.fixture(scope="module")
def nested(base):
    """The transfer-learning pattern: grey images made three-channel, a frozen-BN base, a head."""
    k = _k()
    L = k.layers
    inp = k.Input((32, 32, 1))
    x = L.Concatenate()([inp, inp, inp])
    x = base(x, training=False)
    x = L.GlobalAveragePooling2D()(x)
    return k.Model(inp, L.Dense(10, name="head")(x))  # named: tf_keras numbers unnamed layers per session


@pytest.fixture(scope="module")
def flat(nested):
    from autotune.inputs.flatten import flatten_nested

    return flatten_nested(nested)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).standard_normal((8, 32, 32, 1)).astype(np.float32)


def _two_level(tf_ops: bool = True):
    """A Sequential block inside a two-input, two-output Functional model inside the outer
    model; layer names clash across the levels; BatchNormalization with real moving
    statistics inside; with ``tf_ops``, also Rescaling, ``x + y`` and ``tf.reduce_mean``
    (TFOpLambda layers, one reading a tensor by keyword), which TF-MOT does not support."""
    from autotune._keras import tf

    k, t = _k(), tf()
    L = k.layers
    block = k.Sequential(
        [L.Input((8, 8, 8)), L.Conv2D(8, 3, padding="same", name="conv"), L.BatchNormalization(name="bn"), L.ReLU(name="relu")],
        name="block",
    )
    rng = np.random.default_rng(3)
    block.get_layer("bn").set_weights([rng.uniform(0.5, 2, 8), rng.normal(size=8), rng.normal(size=8), rng.uniform(0.5, 2, 8)])
    a, b = k.Input((16, 16, 3), name="a"), k.Input((16, 16, 3), name="b")
    x = L.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(a) if tf_ops else a
    x = L.Add(name="add")([x, b])
    x = L.Conv2D(8, 3, strides=2, padding="same", name="conv")(x)
    s = x + block(x) if tf_ops else L.Add(name="residual")([x, block(x)])
    g = t.reduce_mean(s, axis=[1, 2]) if tf_ops else L.GlobalAveragePooling2D(name="pool")(s)
    middle = k.Model([a, b], [s, g], name="middle")
    inp = k.Input((16, 16, 3), name="image")
    c = L.Conv2D(3, 1, name="conv")(inp)
    s, g = middle([inp, c], training=False)  # the block's BatchNormalization stays in inference mode
    h = L.Concatenate(name="cat")([L.GlobalAveragePooling2D(name="gap")(s), g])
    return k.Model(inp, L.Dense(4, name="head")(h))


# --- flattening ------------------------------------------------------------------------


def test_a_nested_mobilenet_flattens_to_the_same_function(nested, flat, images):
    assert _nested_models(nested) and not _nested_models(flat)
    assert flat.count_params() == nested.count_params()
    _predictions_match(nested, flat, images)
    # base(x, training=False) keeps the base's BatchNormalization in inference mode even
    # when the whole model trains: the flat copy keeps that too.
    _predictions_match(nested, flat, images, training=True)
    names = [layer.name for layer in flat.layers]
    assert len(names) == len(set(names))
    assert {"Conv1", "bn_Conv1", "block_16_project", "head"} <= set(names)
    assert flat.input_shape == nested.input_shape and flat.output_shape == nested.output_shape


def test_a_sequential_around_the_base_flattens(base, images):
    from autotune.inputs.flatten import flatten_nested

    k = _k()
    seq = k.Sequential([base, k.layers.GlobalAveragePooling2D(), k.layers.Dense(10)])
    flat = flatten_nested(seq)
    assert not _nested_models(flat) and flat.count_params() == seq.count_params()
    x = np.repeat(images, 3, axis=-1)
    _predictions_match(seq, flat, x)


def test_two_levels_of_nesting_flatten_with_unique_names_and_copied_statistics():
    from autotune.inputs.flatten import flatten_nested

    model = _two_level()
    flat = flatten_nested(model)
    assert not _nested_models(flat) and flat.count_params() == model.count_params()
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    _predictions_match(model, flat, x)
    _predictions_match(model, flat, x, training=True)
    names = [layer.name for layer in flat.layers]
    assert len(names) == len(set(names))
    # The outer "conv" keeps its name; the inner ones are prefixed with their model's name.
    assert {"image", "conv", "middle_conv", "block_conv", "bn", "rescale", "head"} <= set(names)
    assert not {"a", "b", "middle", "block"} & set(names)  # nested InputLayers and models are gone
    assert sum(type(layer).__name__ == "TFOpLambda" for layer in flat.layers) == 2
    source = model.get_layer("middle").get_layer("block").get_layer("bn").get_weights()
    for got, want in zip(flat.get_layer("bn").get_weights(), source):
        np.testing.assert_array_equal(got, want)


def test_a_model_without_nested_models_is_returned_as_it_is():
    from autotune.inputs.flatten import flatten_nested

    k = _k()
    model = k.Sequential([k.layers.Input((4,)), k.layers.Dense(3), k.layers.Dense(2)])
    assert flatten_nested(model) is model


def test_a_shared_nested_model_is_refused():
    from autotune.inputs.flatten import flatten_nested

    k = _k()
    encoder = k.Sequential([k.layers.Input((4,)), k.layers.Dense(3)], name="encoder")
    inp = k.Input((4,))
    model = k.Model(inp, k.layers.Add()([encoder(inp), encoder(k.layers.Dense(4)(inp))]))
    with pytest.raises(ConfigError, match="'encoder' is called more than once"):
        flatten_nested(model)


def test_a_subclassed_nested_model_is_refused():
    from autotune.inputs.flatten import flatten_nested

    k = _k()

    class Tower(k.Model):
        def __init__(self):
            super().__init__(name="tower")
            self.dense = k.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    inp = k.Input((4,))
    with pytest.raises(ConfigError, match="'tower' is a subclassed"):
        flatten_nested(k.Model(inp, Tower()(inp)))


def test_a_layer_whose_config_loses_state_fails_the_prediction_check():
    from autotune.inputs.flatten import flatten_nested

    k = _k()

    class Scale(k.layers.Layer):
        def __init__(self, factor=1.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):  # forgets ``factor``: a copy made from it computes something else
            return super().get_config()

    inner = k.Sequential([k.layers.Input((4,)), Scale(3.0, name="scale")], name="inner")
    inp = k.Input((4,))
    with pytest.raises(ConfigError, match="nested model 'inner' changes the predictions"):
        flatten_nested(k.Model(inp, inner(inp)))


# --- the techniques on the flat model --------------------------------------------------


def test_channel_surgery_thins_the_flat_mobilenet(nested, flat, images):
    from autotune.techniques import _surgery as channels

    with pytest.raises(CandidateFailed, match="no layer of this model can lose channels"):
        channels.thinned(nested, 0.5)  # why flattening exists: the base is one opaque layer
    assert channels.plan(flat).prunable()
    thin = channels.thinned(flat, 0.5)
    assert thin.count_params() < 0.6 * flat.count_params()
    assert thin.output_shape == flat.output_shape
    assert thin.predict(images, verbose=0).shape == (8, 10)


def test_tf_mot_pruning_wraps_the_layers_of_the_former_base(nested, flat):
    import tensorflow_model_optimization as tfmot

    wrap = tfmot.sparsity.keras.prune_low_magnitude
    assert [type(layer).__name__ for layer in wrap(nested).layers].count("Functional") == 1  # not entered
    wrapped = {layer.layer.name: layer for layer in wrap(flat).layers if hasattr(layer, "pruning_vars")}
    assert {"Conv1", "block_3_expand", "block_16_project", "head"} <= set(wrapped)
    assert all(w.pruning_vars for name, w in wrapped.items() if name.endswith(("_expand", "_project")))


def test_magnitude_pruning_reaches_its_target_inside_a_flattened_model(tmp_path):
    from autotune.build.cache import ContentCache
    from autotune.build.context import TechniqueContext
    from autotune.inputs.data import Dataset
    from autotune.inputs.flatten import flatten_nested
    from autotune.techniques import MagnitudePrune

    rng = np.random.default_rng(0)
    x = rng.standard_normal((160, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 4, 160).astype(np.int64)
    ctx = TechniqueContext(data=Dataset(x[:128], y[:128], x[128:], y[128:]), seed=0, cache=ContentCache(tmp_path), key="k")
    pruned = MagnitudePrune(sparsity=0.5, epochs=1).apply(flatten_nested(_two_level(tf_ops=False)), ctx)
    per_layer = ctx.facts["sparsity_per_layer"]
    for name in ("block_conv", "middle_conv", "head"):  # two levels deep, one deep, outer
        assert abs(per_layer[name] - 0.5) < 0.02, name
    assert not _nested_models(pruned)


def test_the_flat_model_converts_to_tflite_with_the_same_predictions(flat, images, tmp_path):
    from autotune._keras import litert_interpreter_class
    from autotune.build.convert import to_tflite

    path = to_tflite(flat, "fp32", images, tmp_path)
    interpreter = litert_interpreter_class()(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    got = []
    for sample in images:
        interpreter.set_tensor(inp["index"], sample[None])
        interpreter.invoke()
        got.append(interpreter.get_tensor(out["index"])[0])
    want = flat.predict(images, verbose=0)
    assert np.max(np.abs(want)) > 1e-3
    assert np.max(np.abs(np.array(got) - want)) <= 1e-4 * np.max(np.abs(want))


# --- loading ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_load_model_returns_a_saved_nested_model_flat(nested, images, tmp_path, suffix):
    import warnings

    from autotune.inputs.model import load_model

    path = tmp_path / f"nested{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # h5 is "legacy"
        nested.save(path)
    loaded = load_model(path)
    assert not _nested_models(loaded)
    assert loaded.count_params() == nested.count_params()
    _predictions_match(nested, loaded, images)


def test_load_model_returns_a_nested_saved_model_flat(tmp_path):
    from autotune.inputs.model import load_model

    model = _two_level()
    model.save(tmp_path / "saved", save_format="tf")
    loaded = load_model(tmp_path / "saved")
    assert not _nested_models(loaded)
    assert {"middle_conv", "block_conv"} <= {layer.name for layer in loaded.layers}
    _predictions_match(model, loaded, np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32))


def test_load_model_names_the_file_when_flattening_is_refused(tmp_path):
    from autotune.inputs.model import load_model

    k = _k()
    encoder = k.Sequential([k.layers.Input((4,)), k.layers.Dense(4)], name="encoder")
    inp = k.Input((4,))
    path = tmp_path / "shared.keras"
    k.Model(inp, encoder(encoder(inp))).save(path)
    with pytest.raises(ConfigError, match=r"shared\.keras: nested model 'encoder' is called more than once"):
        load_model(path)
