"""Running a deployable artifact the way it will be deployed: LiteRT for ``.tflite``,
TensorFlow for a SavedModel. The same executor serves accuracy (batched) and latency
(one call at the runtime's batch size), so accuracy is that of the deployed artifact.

A TFLite artifact whose batch is fixed (recurrent models are converted at the deployed batch)
is fed the validation set in chunks of exactly that batch, the last one padded and the
padding's outputs dropped. TFLite's fused sequence ops keep their state in variable tensors
that persist from one call to the next; every call of such an artifact resets them first, as
a deployment must, or each sequence would start where the previous one ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from autotune._keras import litert_interpreter_class, native_stderr_silenced
from autotune.build.flatbuffer import has_variable_tensors
from autotune.errors import CandidateFailed
from autotune.search.recipe import Runtime

EVAL_BATCH = 64


class Executor(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores for a batch of any size, dequantised to float."""

    def timed_call(self, sample: np.ndarray) -> Callable[[], object]:
        """A call that runs one inference on ``sample`` exactly as a deployment would."""

    def macs(self, sample: np.ndarray) -> int | None:
        """Multiply-accumulates per sample, counted from the executed graph (None: unknown)."""

    def input_spec(self) -> dict[str, object]:
        """The input the artifact takes: shape (None where any size goes), dtype, batch (None: any)."""


class LiteRTExecutor:
    def __init__(self, path: Path, threads: int) -> None:
        Interpreter = litert_interpreter_class()
        try:
            with native_stderr_silenced():
                self._interp = Interpreter(model_path=str(path), num_threads=threads)
                self._interp.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise CandidateFailed(f"LiteRT cannot load the model: {e}") from e
        self._path = path
        self.stateful = has_variable_tensors(path)
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._batch = int(self._in["shape"][0])
        # None: the batch dimension can be resized to any size.
        self.fixed_batch: int | None = None if int(self._in["shape_signature"][0]) == -1 else self._batch

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
        if self.stateful:
            self._interp.reset_all_variables()
        self._interp.set_tensor(self._in["index"], self._quantize(x))
        self._interp.invoke()
        return self._interp.get_tensor(self._out["index"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        outs = []
        step = self.fixed_batch or EVAL_BATCH
        try:
            for i in range(0, len(x), step):
                chunk = x[i : i + step]
                n = len(chunk)
                if self.fixed_batch is not None and n < step:
                    # The artifact takes exactly its batch: pad with copies of the last sample.
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
                self._resize(len(chunk))
                outs.append(self._dequantize(self._run(chunk))[:n])
        except (RuntimeError, ValueError) as e:
            raise CandidateFailed(f"LiteRT inference failed: {e}") from e
        return np.concatenate(outs)

    def timed_call(self, sample: np.ndarray) -> Callable[[], object]:
        self._resize(len(sample))
        # Quantising the float input is part of what a deployment of an int8-input model does.
        return lambda: self._run(sample)

    def macs(self, sample: np.ndarray) -> int | None:
        from autotune.measure.compute import litert_macs

        # Counted at batch 1 where the batch can change: LiteRT's tensor details do not all
        # follow a resize until the next invoke.
        if self.fixed_batch is None:
            self._resize(1)
        return litert_macs(self._interp, self._path.read_bytes())

    def input_spec(self) -> dict[str, object]:
        signature = [None if int(d) == -1 else int(d) for d in self._in["shape_signature"]]
        spec: dict[str, object] = {"shape": signature, "dtype": np.dtype(self._in["dtype"]).name, "batch": self.fixed_batch}
        if self._in["dtype"] in (np.int8, np.uint8):
            scale, zero = self._in["quantization"]
            spec["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
        if self.stateful:
            spec["reset_variables_each_call"] = True
        return spec


class TensorFlowExecutor:
    def __init__(self, path: Path) -> None:
        from autotune._keras import tf

        try:
            with native_stderr_silenced():
                # Keep the loaded object: its variables die with it, not with ``serve``.
                self._loaded = tf().saved_model.load(str(path))
                self._fn = self._loaded.serve
            self._spec = self._fn.input_signature[0]
        except (OSError, ValueError, AttributeError, IndexError, TypeError) as e:
            raise CandidateFailed(f"TensorFlow cannot load the SavedModel: {e}") from e
        # Token ids arrive as float32 from the data; the serving function takes its own dtype.
        self._dtype = self._spec.dtype.as_numpy_dtype

    def predict(self, x: np.ndarray) -> np.ndarray:
        from autotune._keras import tf

        try:
            x = x.astype(self._dtype, copy=False)
            return np.concatenate([self._fn(x[i : i + EVAL_BATCH]).numpy() for i in range(0, len(x), EVAL_BATCH)])
        except tf().errors.OpError as e:  # e.g. an op XLA cannot compile
            raise CandidateFailed(f"TensorFlow inference failed: {str(e).splitlines()[0][:300]}") from e

    def timed_call(self, sample: np.ndarray) -> Callable[[], object]:
        sample = sample.astype(self._dtype, copy=False)
        return lambda: self._fn(sample).numpy()

    def macs(self, sample: np.ndarray) -> int | None:
        from autotune.measure.compute import saved_model_macs

        return saved_model_macs(self._fn, [1, *sample.shape[1:]], self._spec.dtype)

    def input_spec(self) -> dict[str, object]:
        shape = self._spec.shape.as_list()
        return {"shape": shape, "dtype": self._spec.dtype.name, "batch": shape[0]}


def open_executor(path: Path, runtime: Runtime) -> tuple[Executor, float]:
    """Load the artifact for ``runtime``; return the executor and the seconds loading took."""
    t0 = time.perf_counter()
    if runtime.engine == "litert":
        ex: Executor = LiteRTExecutor(path, runtime.threads)
    else:
        ex = TensorFlowExecutor(path)
    return ex, time.perf_counter() - t0
