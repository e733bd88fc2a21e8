"""Conversion of a Keras model to a deployable artifact: TFLite at a precision, or a SavedModel
whose serving function is compiled with XLA or not."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from autotune._keras import native_stderr_silenced, tf
from autotune.artifact import SAVED_MODEL_DIR, TFLITE_FILE
from autotune.errors import CandidateFailed, first_line

REPRESENTATIVE_SAMPLES = 100


def representative_sample(x_train: np.ndarray, seed: int) -> np.ndarray:
    """The calibration set of full-integer quantisation: a seeded sample of training inputs."""
    rng = np.random.default_rng(seed)
    n = min(REPRESENTATIVE_SAMPLES, len(x_train))
    return x_train[rng.choice(len(x_train), size=n, replace=False)]


def to_tflite(model: Any, precision: str, calibration: np.ndarray, out_dir: Path) -> Path:
    """Convert ``model`` and write ``out_dir/model.tflite``.

    ``int8`` is full-integer post-training quantisation with int8 input and output (the
    usual "seeds" recipe); ``dynamic-int8`` quantises weights only; ``fp16`` stores fp16
    weights (computed in fp32 on CPUs without native fp16 arithmetic).
    """
    from tensorflow.lite.python.convert_phase import ConverterError

    t = tf()
    converter = t.lite.TFLiteConverter.from_keras_model(model)
    if precision in ("fp16", "dynamic-int8", "int8"):
        converter.optimizations = [t.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [t.float16]
    elif precision == "int8":
        converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
        converter.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = t.int8
        converter.inference_output_type = t.int8
    try:
        with native_stderr_silenced(), warnings.catch_warnings():
            # "Statistics for quantized inputs were expected": QAT models carry their own ranges.
            warnings.simplefilter("ignore", UserWarning)
            blob = converter.convert()
    except (ConverterError, RuntimeError, ValueError) as e:
        raise CandidateFailed(f"TFLite {precision} conversion failed: {first_line(e)}") from e
    path = out_dir / TFLITE_FILE
    path.write_bytes(blob)
    return path


def to_saved_model(model: Any, xla: bool, out_dir: Path) -> Path:
    """Write a SavedModel whose ``serve`` function carries ``jit_compile=xla``.

    The XLA attribute is saved with the function, so whoever loads the SavedModel runs it
    the way it was measured.
    """
    t = tf()
    spec = t.TensorSpec([None, *model.input_shape[1:]], t.float32)
    module = t.Module()
    module.model = model
    module.serve = t.function(lambda x: model(x, training=False), jit_compile=xla, input_signature=[spec])
    path = out_dir / SAVED_MODEL_DIR
    try:
        with native_stderr_silenced():
            t.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    except (ValueError, TypeError) as e:
        raise CandidateFailed(f"SavedModel export failed: {first_line(e)}") from e
    return path

