"""The single place that decides which TensorFlow / Keras is imported, and how quietly.

TF-MOT needs Keras 2, so ``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first
imported; every module that needs TensorFlow gets it from here. Importing TensorFlow costs
seconds and hundreds of MB, so nothing imports this module at package import time.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from functools import cache
from types import ModuleType

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
