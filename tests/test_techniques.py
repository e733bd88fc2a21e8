"""Each technique keeps its promise on small models made here, with the real TF-MOT, Keras
and LiteRT: target sparsity reached, thinner models that compute the same function, smaller
students, int8 QAT artifacts, and cached candidates returned without retraining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.build.cache import ContentCache
from autotune.build.context import TechniqueContext
from autotune.inputs.data import Dataset
from autotune.search.recipe import Recipe, Runtime

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data() -> Dataset:
    """Learnable 8×8×3 images: the class is the brightest quadrant."""
    rng = np.random.default_rng(0)

    def make(n):
        x = rng.random((n, 8, 8, 3), dtype=np.float32) * 0.5
        y = rng.integers(0, 4, n)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, r * 4 : r * 4 + 4, q * 4 : q * 4 + 4, :] += 0.5
        return x, y.astype(np.int64)

    x_train, y_train = make(256)
    x_val, y_val = make(64)
    return Dataset(x_train, y_train, x_val, y_val)


def _sequential(batch_norm: bool = True):
    from autotune._keras import keras

    k = keras()
    L = k.layers
    return k.Sequential(
        [
            L.Input((8, 8, 3)),
            L.Conv2D(16, 3, padding="same", activation="relu"),
            *([L.BatchNormalization()] if batch_norm else []),
            L.Conv2D(16, 3, padding="same", activation="relu"),
            L.MaxPool2D(),
            L.Flatten(),
            L.Dense(32, activation="relu"),
            L.Dense(4),
        ]
    )


def _mobilenet_block():
    """Stem, an inverted-residual block (expand, depthwise, project, add) and a head."""
    from autotune._keras import keras

    k = keras()
    L = k.layers
    x0 = L.Input((8, 8, 3))
    stem = L.Conv2D(16, 3, padding="same", name="stem")(x0)
    stem = L.BatchNormalization(name="stem_bn")(stem)
    stem = L.ReLU(name="stem_relu")(stem)
    x = L.Conv2D(32, 1, name="expand")(stem)
    x = L.BatchNormalization(name="expand_bn")(x)
    x = L.ReLU(6.0, name="expand_relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(6.0, name="dw_relu")(x)
    x = L.Conv2D(16, 1, name="project")(x)
    x = L.BatchNormalization(name="project_bn")(x)
    x = L.Add(name="add")([stem, x])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(4, name="head")(x)
    return k.Model(x0, out)


def _context(data, tmp_path: Path) -> TechniqueContext:
    return TechniqueContext(data=data, seed=0, cache=ContentCache(tmp_path / "cache"), key="k")


def _kernels(model):
    return {layer.name: layer.get_weights()[0] for layer in model.layers if type(layer).__name__ in ("Conv2D", "Dense")}


@pytest.mark.parametrize("schedule", ["constant", "polynomial"])
def test_magnitude_pruning_reaches_its_target_sparsity(data, tmp_path, schedule):
    from autotune.techniques import MagnitudePrune

    ctx = _context(data, tmp_path)
    pruned = MagnitudePrune(sparsity=0.7, schedule=schedule, epochs=2).apply(_sequential(), ctx)
    for name, kernel in _kernels(pruned).items():
        assert abs(np.mean(kernel == 0) - 0.7) < 0.02, name
    assert set(ctx.facts["sparsity_per_layer"]) == set(_kernels(pruned))
    assert abs(ctx.facts["sparsity"] - 0.7) < 0.02
    # strip_pruning left plain layers: the model converts and saves like any other.
    assert not any("prune" in type(layer).__name__.lower() for layer in pruned.layers)


def test_two_of_four_sparsity_zeroes_two_of_every_four_weights(data, tmp_path):
    from autotune.techniques import MagnitudePrune

    pruned = MagnitudePrune(structure="2:4", epochs=1).apply(_sequential(), _context(data, tmp_path))
    dense = pruned.layers[-2].get_weights()[0]  # (inputs, units): blocks of 4 along the inputs
    blocks = dense.T.reshape(dense.shape[1], -1, 4)
    assert np.all(np.sum(blocks == 0, axis=-1) >= 2)


@pytest.mark.parametrize("make", [_sequential, _mobilenet_block], ids=["sequential", "mobilenet-block"])
def test_channel_pruning_builds_a_thinner_model_with_the_same_outputs_shape(data, tmp_path, make):
    from autotune.techniques import ChannelPrune

    model = make()
    ctx = _context(data, tmp_path)
    thin = ChannelPrune(keep=0.5, epochs=1).apply(model, ctx)
    assert thin.count_params() < 0.6 * model.count_params()
    assert thin.output_shape == model.output_shape
    assert ctx.facts["params"] < ctx.facts["params_before"]
    assert thin.predict(data.x_val[:4], verbose=0).shape == (4, 4)


def test_channels_tied_by_a_residual_add_are_pruned_together(tmp_path):
    from autotune.techniques._surgery import thinned

    thin = thinned(_mobilenet_block(), 0.5)
    widths = {layer.name: layer.output_shape[-1] for layer in thin.layers}
    assert widths["stem"] == widths["project"] == widths["add"] == 8
    assert widths["expand"] == widths["dw"] == 16
    assert widths["head"] == 4  # the output layer keeps its units


@pytest.mark.parametrize("make", [_sequential, _mobilenet_block], ids=["sequential", "mobilenet-block"])
def test_removing_dead_channels_leaves_the_function_unchanged(data, make):
    """Zero half of each prunable group's channels (in every layer that writes them); the
    surgery must remove exactly those, and the thinner model compute the same outputs —
    through batch normalisation, depthwise convolution, the residual add and Flatten→Dense."""
    from autotune.techniques._surgery import kept_channels, plan, thinned

    model = make()
    channel_plan = plan(model)
    rng = np.random.default_rng(1)
    for root in channel_plan.prunable():
        size = channel_plan.groups.size[root]
        dead = rng.choice(size, size // 2, replace=False)
        for name in channel_plan.producers[root]:
            layer = model.get_layer(name)
            kernel, bias = layer.get_weights()
            kernel[..., dead] = 0.0
            bias[dead] = 0.0
            layer.set_weights([kernel, bias])
        # A dead channel stays dead through batch normalisation only if beta and mean are 0.
        for layer in model.layers:
            if type(layer).__name__ == "BatchNormalization":
                gamma, beta, mean, var = layer.get_weights()
                layer.set_weights([gamma, np.zeros_like(beta), np.zeros_like(mean), var])
    kept = kept_channels(model, channel_plan, 0.5)
    for root, idx in kept.items():
        assert len(idx) == channel_plan.groups.size[root] // 2
    thin = thinned(model, 0.5)
    x = data.x_val[:16]
    np.testing.assert_allclose(thin.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    assert thin.count_params() < model.count_params()


def test_the_first_layer_of_a_sequential_model_is_thinned_too():
    from autotune.techniques._surgery import thinned

    thin = thinned(_sequential(), 0.5)
    assert [layer.output_shape[-1] for layer in thin.layers if type(layer).__name__ in ("Conv2D", "Dense")] == [8, 8, 16, 4]


def test_a_broadcasting_merge_does_not_tie_channels_of_different_widths(data):
    """Spatial attention: x * sigmoid(conv1x1(x)) with one filter broadcast over x's channels."""
    from autotune._keras import keras
    from autotune.techniques._surgery import thinned

    k = keras()
    L = k.layers
    x0 = L.Input((8, 8, 3))
    x = L.Conv2D(16, 3, padding="same", activation="relu")(x0)
    attention = L.Conv2D(1, 1, activation="sigmoid")(x)
    x = L.Multiply()([x, attention])
    out = L.Dense(4)(L.GlobalAveragePooling2D()(x))
    model = k.Model(x0, out)
    thin = thinned(model, 0.5)
    assert thin.output_shape == model.output_shape
    assert thin.predict(data.x_val[:2], verbose=0).shape == (2, 4)


def test_a_model_whose_channels_all_reach_unsupported_layers_fails_clearly(tmp_path, data):
    from autotune._keras import keras
    from autotune.errors import CandidateFailed
    from autotune.techniques._surgery import thinned

    k = keras()
    x0 = k.layers.Input((8, 8, 3))
    a = k.layers.Conv2D(8, 3, padding="same")(x0)
    b = k.layers.Conv2D(8, 3, padding="same")(x0)
    x = k.layers.Concatenate()([a, b])
    out = k.layers.Dense(4)(k.layers.Flatten()(x))
    with pytest.raises(CandidateFailed, match="no layer of this model can lose channels"):
        thinned(k.Model(x0, out), 0.5)


def test_a_distilled_student_is_smaller_and_learns_from_its_teacher(data, tmp_path):
    from autotune.techniques import Distill
    from autotune.techniques.training import fine_tune, keras_quality

    teacher = _sequential()
    fine_tune(teacher, data, epochs=8, seed=0, learning_rate=3e-3)
    ctx = _context(data, tmp_path)
    student = Distill(width=0.5, temperature=4.0, alpha=0.7, epochs=4).apply(teacher, ctx)
    assert student.count_params() < 0.5 * teacher.count_params()
    assert student.output_shape == teacher.output_shape
    assert ctx.facts["accuracy_keras"] == keras_quality(student, data)["accuracy_keras"]
    assert ctx.facts["accuracy_keras"] > 0.5  # four classes: chance is 0.25


def test_qat_output_converts_to_an_int8_artifact(data, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from autotune.build.convert import to_tflite
    from autotune.techniques import QuantizeAware
    from autotune.techniques.training import load_entry, save_entry

    ctx = _context(data, tmp_path)
    qat = QuantizeAware(epochs=1).apply(_sequential(batch_norm=False), ctx)
    # It survives the cache's save and load.
    entry = tmp_path / "entry"
    entry.mkdir()
    save_entry(qat, ctx.facts, entry)
    reloaded = load_entry(entry)
    np.testing.assert_allclose(reloaded.predict(data.x_val[:8], verbose=0), qat.predict(data.x_val[:8], verbose=0), atol=1e-5)
    path = to_tflite(reloaded, "int8", data.x_train[:32], tmp_path)
    interpreter = Interpreter(model_path=str(path))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    weights = [t for t in interpreter.get_tensor_details() if len(t["shape"]) == 4 and t["shape"][0] == 16]
    assert weights and all(t["dtype"] == np.int8 for t in weights)


def test_qat_of_a_layer_tf_mot_cannot_quantise_fails_before_training(data, tmp_path):
    from autotune.errors import CandidateFailed
    from autotune.techniques import QuantizeAware

    # TF-MOT folds BatchNormalization only right after a convolution without activation.
    with pytest.raises(CandidateFailed, match="TF-MOT cannot quantise this model: Layer batch_normalization"):
        QuantizeAware(epochs=1).apply(_sequential(batch_norm=True), _context(data, tmp_path))


def test_a_cached_candidate_is_returned_without_retraining(data, tmp_path, monkeypatch):
    from autotune.build.candidate import Builder
    from autotune.techniques import ChannelPrune, MagnitudePrune

    model = _sequential()
    model.save(tmp_path / "m.keras")
    cache = ContentCache(tmp_path / "cache")
    builder = Builder(tmp_path / "m.keras", "mkey", data, "dkey", cache, seed=0, model=model)
    recipe = Recipe("int8", Runtime("litert"), steps=(ChannelPrune(keep=0.5, epochs=1), MagnitudePrune(sparsity=0.5, epochs=1)))
    first = builder.build(recipe)
    counts = cache.take_counts()
    assert counts.misses == ["channel-prune", "prune", "convert:int8:tflite"] and counts.epochs_trained == 2

    def no_training(*args, **kwargs):
        raise AssertionError("a cached candidate must not be trained again")

    monkeypatch.setattr("autotune.techniques.training.fine_tune", no_training)
    monkeypatch.setattr("autotune.techniques.prune.fine_tune_watched", no_training)
    again = builder.build(recipe)
    counts = cache.take_counts()
    assert counts.misses == [] and counts.hits == ["channel-prune", "prune", "convert:int8:tflite"]
    assert counts.epochs_reused == 2
    assert again.path == first.path and again.lineage == first.lineage
    # A new precision on the same trained model: training comes from the cache, only conversion runs.
    fp16 = builder.build(Recipe("fp16", Runtime("litert"), steps=recipe.steps))
    counts = cache.take_counts()
    assert counts.misses == ["convert:fp16:tflite"] and counts.epochs_trained == 0
    assert fp16.lineage[-2]["sparsity"] == first.lineage[-2]["sparsity"]
    # The base model was not trained in place by the techniques.
    np.testing.assert_array_equal(builder.base_model().get_weights()[0], model.get_weights()[0])
