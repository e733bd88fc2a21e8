"""Conversion of a Keras model to a deployable artifact: TFLite at a precision, or a SavedModel
whose serving function is compiled with XLA or not.

A recurrent model (any LSTM, GRU or SimpleRNN layer, also inside Bidirectional or
TimeDistributed) is converted from a concrete function with a static input signature at the
deployed batch: TFLite then emits its fused sequence ops (UNIDIRECTIONAL_SEQUENCE_LSTM) or a
WHILE loop with static shapes, where a dynamic batch fails (``tf.TensorListReserve`` needs a
static element shape). Such an artifact takes exactly that batch; the executor feeds it in
chunks. Other models keep a resizable batch dimension, as ``from_keras_model`` gives it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from autotune._keras import converter_error, native_stderr_silenced, tf
from autotune.build.flatbuffer import tflite_subgraphs
from autotune.errors import CandidateFailed, first_line

REPRESENTATIVE_SAMPLES = 100

TFLITE_FILE = "model.tflite"
SAVED_MODEL_DIR = "saved_model"


def artifact_file(root: Path, fmt: str) -> Path:
    """Where the artifact of format ``fmt`` (``tflite``, ``saved_model``) lies in ``root``."""
    return root / (TFLITE_FILE if fmt == "tflite" else SAVED_MODEL_DIR)


def representative_sample(x_train: np.ndarray, seed: int) -> np.ndarray:
    """The calibration set of full-integer quantisation: a seeded sample of training inputs."""
    rng = np.random.default_rng(seed)
    n = min(REPRESENTATIVE_SAMPLES, len(x_train))
    return x_train[rng.choice(len(x_train), size=n, replace=False)]


def input_dtype(model: Any) -> Any:
    """The model's input dtype: token ids for an Embedding stay integers."""
    t = tf()
    dtype = t.as_dtype(model.inputs[0].dtype)
    return dtype if dtype.is_integer or dtype.is_bool else t.float32


def _static_shape(model: Any, batch: int, sample: np.ndarray) -> list[int]:
    """The input shape at ``batch``, unknown dimensions (a variable sequence length) taken
    from the data."""
    dims = list(model.input_shape[1:])
    return [batch, *(int(s) if d is None else int(d) for d, s in zip(dims, sample.shape[1:]))]


def _converter(model: Any, batch: int | None, sample: np.ndarray) -> Any:
    """A converter of ``model``'s inference function, at ``batch`` or (None) any batch.

    It converts through a bare module that holds the model's variables and that function.
    ``from_keras_model`` passes the Keras model itself, which makes the converter save every
    layer's call functions too: 24-30 s instead of 7-8 s for the zoo's nested MobileNetV2,
    16 s instead of 1.7 s for a Bidirectional LSTM. The variables must be held, not frozen
    into constants: from constants the converter keeps an LSTM's WHILE loop instead of fusing
    it.
    """
    t = tf()
    if len(model.inputs) != 1:
        return t.lite.TFLiteConverter.from_keras_model(model)
    if batch is None:
        spec = t.TensorSpec([None, *model.input_shape[1:]], input_dtype(model))
    else:
        spec = t.TensorSpec(_static_shape(model, batch, sample), input_dtype(model))
    module = t.Module()
    module.held_variables = list(model.variables)
    module.serve = t.function(lambda x: model(x, training=False), input_signature=[spec])
    with native_stderr_silenced():
        concrete = module.serve.get_concrete_function()
    return t.lite.TFLiteConverter.from_concrete_functions([concrete], module)


def _convert(converter: Any, precision: str) -> bytes:
    ConverterError = converter_error()
    try:
        with native_stderr_silenced(), warnings.catch_warnings():
            # "Statistics for quantized inputs were expected": QAT models carry their own ranges.
            warnings.simplefilter("ignore", UserWarning)
            return converter.convert()
    except (ConverterError, RuntimeError, ValueError) as e:
        raise CandidateFailed(f"TFLite {precision} conversion failed: {first_line(e)}") from e


def _has_while_loop(blob: bytes) -> bool:
    return any(op["op_name"] == "WHILE" for op in tflite_subgraphs(blob)[0]["ops"])


def to_tflite(model: Any, precision: str, calibration: np.ndarray, out_dir: Path, batch: int = 1) -> Path:
    """Convert ``model`` and write ``out_dir/model.tflite``.

    ``int8`` is full-integer post-training quantisation with int8 input and output (the
    usual "seeds" recipe; integer inputs such as token ids keep their type); ``dynamic-int8``
    quantises weights only; ``fp16`` stores fp16 weights (computed in fp32 on CPUs without
    native fp16 arithmetic). A recurrent model is converted at ``batch`` (see the module
    docstring); for ``int8``, one whose float graph holds a WHILE loop (GRU, SimpleRNN, an
    LSTM reading a mask) is unrolled first, since TFLite's calibrator crashes the process on
    the loop.
    """
    from autotune.techniques.recurrent import is_recurrent, unrolled

    t = tf()
    fixed = batch if is_recurrent(model) else None
    sample = calibration[:1]
    if fixed is not None and precision == "int8" and _has_while_loop(_convert(_converter(model, fixed, sample), "fp32")):
        model = unrolled(model)
    converter = _converter(model, fixed, sample)
    if precision in ("fp16", "dynamic-int8", "int8"):
        converter.optimizations = [t.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [t.float16]
    elif precision == "int8":
        calib = calibration.astype(input_dtype(model).as_numpy_dtype)
        step = fixed or 1
        # Calibration batches of the signature's size, cycling through the sample.
        chunks = max(1, len(calib) // step)
        converter.representative_dataset = lambda: ([calib[(i * step + np.arange(step)) % len(calib)]] for i in range(chunks))
        converter.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = t.int8
        converter.inference_output_type = t.int8
    path = out_dir / TFLITE_FILE
    path.write_bytes(_convert(converter, precision))
    return path


def to_saved_model(model: Any, xla: bool, out_dir: Path) -> Path:
    """Write a SavedModel whose ``serve`` function carries ``jit_compile=xla``.

    The XLA attribute is saved with the function, so whoever loads the SavedModel runs it
    the way it was measured. The batch stays unknown: TensorFlow runs recurrent loops over a
    dynamic batch, unlike TFLite. Integer inputs keep their dtype.
    """
    t = tf()
    spec = t.TensorSpec([None, *model.input_shape[1:]], input_dtype(model))
    # The variables, not the Keras model: tracking the model would save every layer's call
    # functions too, several times slower for nothing the serving function needs.
    module = t.Module()
    module.held_variables = list(model.variables)
    module.serve = t.function(lambda x: model(x, training=False), jit_compile=xla, input_signature=[spec])
    path = out_dir / SAVED_MODEL_DIR
    try:
        with native_stderr_silenced():
            t.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    except (ValueError, TypeError) as e:
        raise CandidateFailed(f"SavedModel export failed: {first_line(e)}") from None
    return path
