"""The single place that decides which TensorFlow / Keras is imported, and how quietly.

TF-MOT needs Keras 2, so ``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first
imported; every module that needs TensorFlow, tf_keras, Keras 3, TF-MOT or LiteRT gets it
from here (``lint-imports`` enforces it), through functions that import on their first call.
Importing TensorFlow costs seconds and hundreds of MB, so importing this module imports none
of them: the sampling process and the fast tests never load TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from functools import cache
from types import ModuleType, SimpleNamespace

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# No GPU here or in most deployments we measure for; stops CUDA probing noise and time.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence what native code (TensorFlow, XNNPACK) writes straight to file descriptor 2.

    Those banners would tear the progress display; Python exceptions still carry the reasons.
    """
    if os.environ.get("AUTOTUNE_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@cache
def tf() -> ModuleType:
    with native_stderr_silenced():
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


@cache
def keras() -> ModuleType:
    tf()
    import tf_keras

    return tf_keras


def keras3() -> ModuleType:
    """Keras 3 itself (to read Keras 3 files), imported after TF_USE_LEGACY_KERAS is set."""
    import keras

    return keras


def tfmot() -> ModuleType:
    """TensorFlow Model Optimization (pruning and quantisation-aware training wrappers)."""
    import tensorflow_model_optimization

    return tensorflow_model_optimization


def tf_keras_builtin_layer(class_name: str) -> type | None:
    """tf_keras's own class for a serialised layer name (op layers included), or None."""
    keras()
    from tf_keras.src.layers.serialization import get_builtin_layer

    return get_builtin_layer(class_name)


def converter_error() -> type[Exception]:
    """The exception TFLite's converter raises for a model it cannot convert."""
    from tensorflow.lite.python.convert_phase import ConverterError

    return ConverterError


def tf_graph_tools() -> SimpleNamespace:
    """TensorFlow's graph internals the MAC counting reads: ``tensor_util``,
    ``function_def_to_graph`` and ``convert_variables_to_constants_v2``."""
    from tensorflow.python.framework import convert_to_constants, function_def_to_graph, tensor_util

    return SimpleNamespace(
        tensor_util=tensor_util,
        function_def_to_graph=function_def_to_graph.function_def_to_graph,
        convert_variables_to_constants_v2=convert_to_constants.convert_variables_to_constants_v2,
    )


def litert_schema() -> ModuleType:
    """LiteRT's flatbuffer schema (reading .tflite files); needs no TensorFlow."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def litert_interpreter_class() -> type:
    """LiteRT's interpreter (``tf.lite.Interpreter`` is deprecated); needs no TensorFlow."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter


def versions() -> dict[str, str]:
    """Versions of the runtimes that decide measured latency, without importing TensorFlow."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("tensorflow", "tf-keras", "ai-edge-litert", "tensorflow-model-optimization", "optuna"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "absent"
    return out
