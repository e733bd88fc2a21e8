"""Recurrent models (LSTM, GRU, SimpleRNN, Bidirectional; Embedding, Conv1D and Masking front
ends) on tiny models made here, with the real Keras, TFLite converter and LiteRT: conversion at
the deployed batch with the fused sequence op where TFLite has one, every precision, students
with fewer units, fixed-batch artifacts over a validation set, the SavedModel, and a search and
export through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autotune.build.cache import ContentCache
from autotune.build.context import TechniqueContext
from autotune.inputs.data import Dataset

pytestmark = pytest.mark.slow

VOCAB, TOKENS = 20, 12


@pytest.fixture(scope="module")
def digits() -> Dataset:
    """scikit-learn's digits, each 8×8 image read as a sequence of 8 rows of 8 pixels; 397
    validation samples (a prime: no batch divides it)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    return Dataset(x[:1400], y[:1400], x[1400:], y[1400:])


@pytest.fixture(scope="module")
def tokens() -> Dataset:
    """Token sequences (ids as the data loader gives them: float32); the class is whether
    token 1 occurs."""
    rng = np.random.default_rng(0)
    x = rng.integers(2, VOCAB, (600, TOKENS))
    y = rng.integers(0, 2, 600)
    for row, label in zip(x, y):
        if label:
            row[rng.integers(0, TOKENS)] = 1
    return Dataset(x[:500].astype(np.float32), y[:500], x[500:].astype(np.float32), y[500:])


def _model(name: str):
    from autotune._keras import keras

    k = keras()
    L = k.layers
    layers = {
        "lstm": [L.Input((8, 8)), L.LSTM(32), L.Dense(10)],
        "gru": [L.Input((8, 8)), L.GRU(32), L.Dense(10)],
        "bidirectional-lstm": [L.Input((8, 8)), L.Bidirectional(L.LSTM(16)), L.Dense(10)],
        "embedding-lstm": [L.Input((TOKENS,), dtype="int32"), L.Embedding(VOCAB, 16), L.LSTM(16), L.Dense(2)],
        "conv1d-gru": [L.Input((8, 8)), L.Conv1D(16, 3, activation="relu"), L.GRU(16), L.Dense(10)],
        "masking-simplernn": [L.Input((8, 8)), L.Masking(), L.SimpleRNN(32), L.Dense(10)],
    }[name]
    return k.Sequential(layers, name=name.replace("-", "_"))


# Multiply-accumulates per sample, by hand: a recurrent layer does gates · units · (inputs + units)
# per time step (LSTM 4 gates, GRU 3, SimpleRNN 1), plus the head's units · inputs.
MACS = {
    "lstm": 8 * 4 * 32 * (8 + 32) + 32 * 10,
    "gru": 8 * 3 * 32 * (8 + 32) + 32 * 10,
    "bidirectional-lstm": 2 * 8 * 4 * 16 * (8 + 16) + 32 * 10,
    "embedding-lstm": TOKENS * 4 * 16 * (16 + 16) + 16 * 2,
    "conv1d-gru": 6 * 16 * 3 * 8 + 6 * 3 * 16 * (16 + 16) + 16 * 10,
    "masking-simplernn": 8 * 32 * (8 + 32) + 32 * 10,
}
# TFLite's fused sequence op where it has one; GRU and SimpleRNN (and any masked layer) run as
# a WHILE loop over the time steps.
FUSED = {"lstm", "bidirectional-lstm", "embedding-lstm"}
MODELS = list(MACS)


@pytest.fixture(scope="module")
def trained(digits, tokens):
    """Each model trained for two epochs (once for the module)."""
    from autotune.techniques.training import fine_tune

    models = {}
    for name in MODELS:
        model = _model(name)
        fine_tune(model, tokens if name.startswith("embedding") else digits, epochs=2, seed=0, learning_rate=1e-2)
        models[name] = model
    return models


def _data(name, digits, tokens) -> Dataset:
    return tokens if name.startswith("embedding") else digits


def _ops(path: Path) -> list[str]:
    """The ops TFLite wrote (without the XNNPACK delegate, which would hide them)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return [op["op_name"] for op in interpreter._get_ops_details()]


def _context(data, tmp_path: Path) -> TechniqueContext:
    return TechniqueContext(data=data, seed=0, cache=ContentCache(tmp_path / "cache"), key="k")


@pytest.mark.parametrize("name", MODELS)
def test_fp32_conversion_uses_the_sequence_op_and_matches_keras(name, trained, digits, tokens, tmp_path):
    from autotune.build.convert import to_tflite
    from autotune.measure.artifact import LiteRTExecutor

    model, data = trained[name], _data(name, digits, tokens)
    path = to_tflite(model, "fp32", data.x_train[:16], tmp_path)
    ops = _ops(path)
    if name in FUSED:
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops and "WHILE" not in ops
    else:
        assert "WHILE" in ops
    executor = LiteRTExecutor(path, threads=1)
    assert executor.fixed_batch == 1
    spec = executor.input_spec()
    assert spec["batch"] == 1 and spec["shape"] == [1, *model.input_shape[1:]]
    assert spec["dtype"] == ("int32" if name.startswith("embedding") else "float32")  # token ids stay integers
    # One sequence after another: the fused op's state is reset before each call.
    np.testing.assert_allclose(executor.predict(data.x_val), model.predict(data.x_val, verbose=0), atol=1e-4, rtol=0)
    assert executor.macs(data.x_val[:1]) == MACS[name]


@pytest.mark.parametrize("name", MODELS)
def test_every_precision_converts_and_runs_or_fails_in_one_line(name, trained, digits, tokens, tmp_path):
    from autotune.build.convert import to_tflite
    from autotune.errors import CandidateFailed
    from autotune.measure.artifact import LiteRTExecutor
    from autotune.measure.stats import quality

    model, data = trained[name], _data(name, digits, tokens)
    keras_accuracy = float(np.mean(np.argmax(model.predict(data.x_val, verbose=0), axis=1) == data.y_val))
    for precision in ("fp16", "dynamic-int8", "int8"):
        out = tmp_path / precision
        out.mkdir()
        try:
            path = to_tflite(model, precision, data.x_train[:64], out)
        except CandidateFailed as e:
            assert precision == "int8" and "\n" not in str(e)
            continue
        executor = LiteRTExecutor(path, threads=1)
        accuracy = quality(executor.predict, data.x_val, data.y_val, data.task)["accuracy"]
        assert accuracy > keras_accuracy - (0.1 if precision == "int8" else 0.03), precision
        if precision == "int8" and not name.startswith("embedding"):
            assert executor.input_spec()["dtype"] == "int8"


@pytest.mark.parametrize("name", MODELS)
def test_a_student_at_half_width_has_half_the_units(name, trained, digits, tokens, tmp_path):
    from autotune.techniques import Distill

    teacher, data = trained[name], _data(name, digits, tokens)
    ctx = _context(data, tmp_path)
    student = Distill(width=0.5, epochs=1).apply(teacher, ctx)

    def widths(model):
        out = {}
        for layer in model.layers:
            cfg = layer.get_config()
            inner = cfg["layer"]["config"] if "layer" in cfg else cfg
            width = inner.get("units", inner.get("filters", inner.get("output_dim")))
            if width is not None:
                out[type(layer).__name__] = width
        return out

    before, after = widths(teacher), widths(student)
    recurrent = next(cls for cls in before if cls in ("LSTM", "GRU", "SimpleRNN", "Bidirectional"))
    assert after[recurrent] == before[recurrent] // 2
    for front_end in ("Conv1D", "Embedding"):
        if front_end in before:
            assert after[front_end] == before[front_end] // 2
    assert after["Dense"] == before["Dense"]  # the output layer keeps its units
    assert student.count_params() < 0.5 * teacher.count_params()
    assert student.output_shape == teacher.output_shape
    assert ctx.facts["params"] < ctx.facts["params_before"]


def _stacked_and_wrapped():
    from autotune._keras import keras

    k = keras()
    L = k.layers
    return k.Sequential(
        [
            L.Input((8, 8)),
            L.Conv1D(16, 3, padding="same"),
            L.Bidirectional(L.LSTM(16, return_sequences=True)),
            L.Dropout(0.1),
            L.GRU(16, reset_after=False, return_sequences=True),
            L.Bidirectional(L.GRU(8), merge_mode="sum"),
            L.Dense(10),
        ]
    )


@pytest.mark.parametrize("make", [lambda: _model("lstm"), lambda: _model("gru"), lambda: _model("masking-simplernn"),
                                  lambda: _model("embedding-lstm"), _stacked_and_wrapped],
                         ids=["lstm", "gru", "masking-simplernn", "embedding-lstm", "stacked-and-bidirectional"])  # fmt: skip
def test_removing_dead_units_leaves_the_function_unchanged(make, digits, tokens):
    """Zero every weight into half of each group's units (in every gate block): such a unit's
    state and output stay 0, so the surgery must remove exactly those units, in each gate
    block, in the recurrent kernel's rows and columns and in the next layer's rows, and the
    thinner model compute the same outputs."""
    from autotune.techniques._surgery import kept_channels, plan, thinned
    from autotune.techniques.recurrent import GATES

    model = make()
    channel_plan = plan(model)
    rng = np.random.default_rng(1)
    for root in channel_plan.prunable():
        size = channel_plan.groups.size[root]
        dead = rng.choice(size, size // 2, replace=False)
        for name in channel_plan.producers[root]:
            layer = model.get_layer(name)
            cfg = layer.get_config()
            gates = GATES.get((cfg["layer"]["class_name"] if "layer" in cfg else type(layer).__name__), 1)
            columns = (np.arange(gates)[:, None] * size + dead[None, :]).ravel()
            weights = layer.get_weights()
            for w in weights:
                w[..., columns if type(layer).__name__ != "Embedding" else dead] = 0.0
            layer.set_weights(weights)
    kept = kept_channels(model, channel_plan, 0.5)
    assert kept and all(len(idx) == channel_plan.groups.size[root] // 2 for root, idx in kept.items())
    thin = thinned(model, 0.5)
    x = (tokens if model.input.dtype.is_integer else digits).x_val[:32]
    np.testing.assert_allclose(thin.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5, rtol=1e-4)
    assert thin.count_params() < model.count_params()


def test_units_the_surgery_cannot_follow_are_kept():
    from autotune._keras import keras
    from autotune.errors import CandidateFailed
    from autotune.techniques._surgery import thinned

    k = keras()
    L = k.layers
    # A sequence reaching the output keeps its units; the Conv1D before it still thins.
    out_seq = thinned(k.Sequential([L.Input((8, 8)), L.Conv1D(16, 3), L.LSTM(8, return_sequences=True)]), 0.5)
    assert [layer.get_config().get("units", layer.get_config().get("filters")) for layer in out_seq.layers] == [8, 8]
    # A stateful layer carries its state across calls in variables of the old width.
    stateful = k.Sequential([L.Input(batch_shape=(4, 8, 8)), L.LSTM(16, stateful=True), L.Dense(10)])
    with pytest.raises(CandidateFailed, match="no layer of this model can lose channels"):
        thinned(stateful, 0.5)


def test_a_fixed_batch_artifact_evaluates_every_validation_sample(trained, digits, tmp_path):
    from autotune.build.convert import to_tflite
    from autotune.errors import CandidateFailed
    from autotune.measure.artifact import LiteRTExecutor
    from autotune.measure.stats import quality

    model = trained["lstm"]
    executor = LiteRTExecutor(to_tflite(model, "fp32", digits.x_train[:16], tmp_path, batch=4), threads=1)
    assert executor.fixed_batch == 4 and len(digits.x_val) % 4 != 0
    scores = executor.predict(digits.x_val)
    assert scores.shape == (len(digits.x_val), 10)
    np.testing.assert_allclose(scores, model.predict(digits.x_val, verbose=0), atol=1e-4, rtol=0)
    keras_accuracy = float(np.mean(np.argmax(model.predict(digits.x_val, verbose=0), axis=1) == digits.y_val))
    assert quality(executor.predict, digits.x_val, digits.y_val, "classification")["accuracy"] == keras_accuracy
    executor.timed_call(digits.x_val[:4])()
    with pytest.raises(CandidateFailed, match="fixed at 4"):
        executor.timed_call(digits.x_val[:1])


@pytest.mark.parametrize("xla", [False, True], ids=["tensorflow", "xla"])
def test_the_saved_model_of_a_recurrent_model_runs_any_batch(xla, trained, tokens, tmp_path):
    from autotune.build.convert import to_saved_model
    from autotune.measure.artifact import TensorFlowExecutor

    model = trained["embedding-lstm"]
    executor = TensorFlowExecutor(to_saved_model(model, xla, tmp_path))
    assert executor.input_spec() == {"shape": [None, TOKENS], "dtype": "int32", "batch": None}
    np.testing.assert_allclose(executor.predict(tokens.x_val), model.predict(tokens.x_val, verbose=0), atol=1e-4, rtol=0)
    if not xla:  # counted through the While loop's body, once per time step
        assert executor.macs(tokens.x_val[:1]) == MACS["embedding-lstm"]


def test_a_keras3_bidirectional_model_is_rebuilt(tmp_path):
    from autotune import _keras

    _keras.tf()
    import keras  # Keras 3

    from autotune.inputs.model import load_model

    k3 = keras.Sequential([keras.Input((8, 8)), keras.layers.Bidirectional(keras.layers.LSTM(8)), keras.layers.Dense(4)])
    k3.save(tmp_path / "bi.keras")
    rebuilt = load_model(tmp_path / "bi.keras")  # verified: outputs agree within 1e-4
    assert type(rebuilt.layers[0]).__name__ == "Bidirectional" and rebuilt.layers[0].forward_layer.units == 8


def test_a_throughput_timing_compares_with_the_baseline_at_the_same_batch(trained, digits, tmp_path):
    """The baseline artifact takes batch 1 only; a batch-4 candidate is timed against the
    baseline converted at batch 4."""
    from autotune.build.convert import to_tflite
    from autotune.measure.host import HostLock
    from autotune.measure.stats import LatencyProtocol
    from autotune.measure.timing import Timer, TimingPolicy
    from autotune.search.recipe import Recipe, Runtime

    model = trained["gru"]

    def convert(batch: int, precision: str = "fp32") -> Path:
        out = tmp_path / f"{precision}-{batch}"
        out.mkdir(exist_ok=True)
        return to_tflite(model, precision, digits.x_train[:16], out, batch=batch)

    fast = TimingPolicy(LatencyProtocol(warmup_calls=2, warmup_seconds=0.0, min_calls=20, min_seconds=0.05))
    timer = Timer(convert(1), Runtime("litert", 1), {}, HostLock(tmp_path / "lock"), fast, baseline_at=convert)
    timed = timer.time(convert(4, "dynamic-int8"), Recipe("dynamic-int8", Runtime("litert", 1, batch_size=4)), digits.x_val)
    assert timed.batch_size == 4 and timed.comparison.speedup > 0
    assert timed.macs == MACS["gru"]


def test_a_recurrent_model_is_searched_and_exported_through_the_cli(digits, empty_workdir):
    from typer.testing import CliRunner

    from autotune._keras import keras
    from autotune.cli import app
    from autotune.storage import store
    from autotune.techniques.training import fine_tune

    k = keras()
    model = k.Sequential([k.layers.Input((8, 8)), k.layers.LSTM(16), k.layers.Dense(10)])
    fine_tune(model, digits, epochs=2, seed=0, learning_rate=1e-2)
    model.save(empty_workdir / "m.keras")
    np.savez(empty_workdir / "d.npz", x_train=digits.x_train, y_train=digits.y_train, x_val=digits.x_val, y_val=digits.y_val)
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--model", "m.keras", "--data", "d.npz", "--space", "quick", "--budget", "3"])
    assert result.exit_code == 0, result.output
    import optuna

    study = optuna.load_study(study_name="m", storage=store.open_storage("sqlite:///studies/autotune.db"))
    trials = study.get_trials()
    base = trials[0]
    assert base.user_attrs[store.REFERENCE] == "fp32-baseline" and base.state.name == "COMPLETE"
    metrics = base.user_attrs[store.METRICS]
    assert metrics["accuracy"] > 0.5 and metrics["macs"] == 8 * 4 * 16 * (8 + 16) + 16 * 10
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 2, [t.user_attrs.get(store.FAIL_REASON) for t in trials]

    out = empty_workdir / "deploy"
    exported = runner.invoke(app, ["export", "m", "--out", str(out), "--trial", "0"])
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"] == {"shape": [1, 8, 8], "dtype": "float32", "batch": 1, "reset_variables_each_call": True}
    assert "exactly batch 1" in manifest["usage"] and "reset_all_variables()" in manifest["usage"]
    assert "exactly batch 1" in (out / "MODEL_CARD.md").read_text()
