"""Running a deployable artifact the way it will be deployed: LiteRT for ``.tflite``,
TensorFlow for a SavedModel. The same executor serves accuracy (batched) and latency
(one call at the runtime's batch size), so accuracy is that of the deployed artifact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from autotune._keras import litert_interpreter_class, native_stderr_silenced
from autotune.errors import CandidateFailed
from autotune.recipe import Runtime

EVAL_BATCH = 64
TFLITE_FILE = "model.tflite"
SAVED_MODEL_DIR = "saved_model"


class Executor(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores for a batch of any size, dequantised to float."""

    def timed_call(self, sample: np.ndarray) -> Callable[[], object]:
        """A call that runs one inference on ``sample`` exactly as a deployment would."""

    def macs(self, sample: np.ndarray) -> int | None:
        """Multiply-accumulates per sample, counted from the executed graph (None: unknown)."""


class LiteRTExecutor:
    def __init__(self, path: Path, threads: int) -> None:
        Interpreter = litert_interpreter_class()
        try:
            with native_stderr_silenced():
                self._interp = Interpreter(model_path=str(path), num_threads=threads)
                self._interp.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise CandidateFailed(f"LiteRT cannot load the model: {e}") from e
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._batch = int(self._in["shape"][0])

    def _resize(self, batch: int) -> None:
        if batch == self._batch:
            return
        if int(self._in["shape_signature"][0]) != -1:
            raise CandidateFailed(f"the model's batch dimension is fixed at {self._batch}; cannot run batch {batch}")
        self._interp.resize_tensor_input(self._in["index"], [batch, *self._in["shape"][1:]])
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._batch = batch

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self._in["dtype"]
        if dtype in (np.int8, np.uint8):
            scale, zero = self._in["quantization"]
            info = np.iinfo(dtype)
            return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        return x.astype(dtype, copy=False)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self._out["dtype"] in (np.int8, np.uint8):
            scale, zero = self._out["quantization"]
            return (y.astype(np.float32) - zero) * scale
        return y

    def _run(self, x: np.ndarray) -> np.ndarray:
        self._interp.set_tensor(self._in["index"], self._quantize(x))
        self._interp.invoke()
        return self._interp.get_tensor(self._out["index"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        outs = []
        try:
            for i in range(0, len(x), EVAL_BATCH):
                chunk = x[i : i + EVAL_BATCH]
                self._resize(len(chunk))
                outs.append(self._dequantize(self._run(chunk)))
        except (RuntimeError, ValueError) as e:
            raise CandidateFailed(f"LiteRT inference failed: {e}") from e
        return np.concatenate(outs)

    def timed_call(self, sample: np.ndarray) -> Callable[[], object]:
        self._resize(len(sample))
        # Quantising the float input is part of what a deployment of an int8-input model does.
        return lambda: self._run(sample)

    def macs(self, sample: np.ndarray) -> int | None:
        from autotune.compute import litert_macs

        # Counted at batch 1 where the batch can change: LiteRT's tensor details do not all
        # follow a resize until the next invoke.
        if int(self._in["shape_signature"][0]) == -1:
            self._resize(1)
        return litert_macs(self._interp)


class TensorFlowExecutor:
    def __init__(self, path: Path) -> None:
        from autotune._keras import tf

        try:
            with native_stderr_silenced():
                # Keep the loaded object: its variables die with it, not with ``serve``.
                self._loaded = tf().saved_model.load(str(path))
                self._fn = self._loaded.serve
        except (OSError, ValueError, AttributeError) as e:
            raise CandidateFailed(f"TensorFlow cannot load the SavedModel: {e}") from e

    def predict(self, x: np.ndarray) -> np.ndarray:
        from autotune._keras import tf

        try:
            return np.concatenate([self._fn(x[i : i + EVAL_BATCH]).numpy() for i in range(0, len(x), EVAL_BATCH)])
        except tf().errors.OpError as e:  # e.g. an op XLA cannot compile
            raise CandidateFailed(f"TensorFlow inference failed: {str(e).splitlines()[0][:300]}") from e

    def timed_call(self, sample: np.ndarray) -> Callable[[], object]:
        return lambda: self._fn(sample).numpy()

    def macs(self, sample: np.ndarray) -> int | None:
        from autotune.compute import saved_model_macs

        return saved_model_macs(self._fn, [1, *sample.shape[1:]])


def artifact_file(root: Path, fmt: str) -> Path:
    return root / (TFLITE_FILE if fmt == "tflite" else SAVED_MODEL_DIR)


def open_executor(path: Path, runtime: Runtime) -> tuple[Executor, float]:
    """Load the artifact for ``runtime``; return the executor and the seconds loading took."""
    t0 = time.perf_counter()
    if runtime.engine == "litert":
        ex: Executor = LiteRTExecutor(path, runtime.threads)
    else:
        ex = TensorFlowExecutor(path)
    return ex, time.perf_counter() - t0
