"""How much arithmetic a deployed artifact does, read from its graph, and how fast this machine
can do arithmetic at best: together they give each candidate's compute floor.

Multiply-accumulates are counted from the ops the runtime will execute (the TFLite flatbuffer's
ops, or the frozen graph of a SavedModel's serving function) with the shapes allocated for a
call; nothing is estimated from parameter counts. Convolutions, depthwise convolutions,
transposed convolutions and matrix products carry the MACs of the networks autotune builds;
element-wise ops, pooling and activations are not counted (they are memory-bound).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autotune.host import ALLOWED_CORES, HostLock, cores_for, pinning
from autotune.measure import LatencyProtocol, measure_latency

# A matrix product big enough to keep every core's vector units busy: (256 × 1024) · (1024 × 1024).
PEAK_ROWS, PEAK_DEPTH, PEAK_COLS = 256, 1024, 1024
PEAK_PROTOCOL = LatencyProtocol(warmup_calls=3, warmup_seconds=0.1, min_calls=20, min_seconds=0.5, max_seconds=5.0)


def _prod(shape: Iterable[int]) -> int:
    return int(np.prod([int(d) for d in shape], dtype=np.int64))


def conv_macs(out_shape: Sequence[int], kernel_hw: Sequence[int], in_channels_per_group: int) -> int:
    """Every output element of a convolution is a dot product over kernel × input channels."""
    return _prod(out_shape) * _prod(kernel_hw) * int(in_channels_per_group)


def tflite_macs(ops: list[dict[str, Any]], shapes: dict[int, Sequence[int]]) -> int:
    """MACs of one call from a LiteRT interpreter's op list (``_get_ops_details``) and tensor
    shapes by index, at the batch the interpreter is allocated for."""
    total = 0
    for op in ops:
        name, ins, outs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        out = shapes[outs[0]]
        if name == "CONV_2D":  # filter: [out_c, kh, kw, in_c / groups]
            f = shapes[ins[1]]
            total += conv_macs(out, f[1:3], f[3])
        elif name == "DEPTHWISE_CONV_2D":  # filter: [1, kh, kw, out_c]
            total += conv_macs(out, shapes[ins[1]][1:3], 1)
        elif name == "CONV_3D":  # filter: [kd, kh, kw, in_c, out_c]
            f = shapes[ins[1]]
            total += conv_macs(out, f[0:3], f[3])
        elif name == "TRANSPOSE_CONV":  # inputs: output shape, filter [out_c, kh, kw, in_c], input
            f, x = shapes[ins[1]], shapes[ins[2]]
            total += _prod(x) * _prod(f[1:3]) * int(f[0])
        elif name == "FULLY_CONNECTED":  # weights: [units, depth]
            total += _prod(out) * int(shapes[ins[1]][-1])
        elif name == "BATCH_MATMUL":
            adj_x = bool(op.get("builtin_options", {}).get("adj_x", False))
            a = shapes[ins[0]]
            total += _prod(out) * int(a[-2] if adj_x else a[-1])
    return total


def litert_macs(interpreter: Any) -> int:
    """MACs per sample of an allocated LiteRT interpreter."""
    details = interpreter.get_tensor_details()
    shapes = {int(t["index"]): tuple(int(d) for d in t["shape"]) for t in details}
    batch = max(1, int(interpreter.get_input_details()[0]["shape"][0]))
    return tflite_macs(interpreter._get_ops_details(), shapes) // batch


_GRAPH_MAC_OPS = ("Conv2D", "DepthwiseConv2dNative", "Conv3D", "MatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2DBackpropInput")


def _per_sample(shape: Any) -> list[int]:
    """A static shape with an unknown batch read as one sample; any other unknown is an error."""
    dims = shape.as_list()
    if dims and dims[0] is None:
        dims[0] = 1
    if None in dims:
        raise ValueError(f"shape {dims} is not fully known")
    return dims


_CALL_OPS = ("StatefulPartitionedCall", "PartitionedCall")


def graph_macs(graph: Any, library: dict[str, Any] | None = None) -> int:
    """MACs per sample of a frozen TensorFlow graph (leading unknown dimensions are the batch).

    Function calls the freezing left in place (an XLA-compiled function stays one call) are
    followed into their function bodies, traced at the caller's input shapes.
    """
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph

    if library is None:
        library = {f.signature.name: f for f in graph.as_graph_def().library.function}
    total = 0
    for op in graph.get_operations():
        kind = op.type
        if kind in _CALL_OPS:
            fdef = library.get(op.get_attr("f").name)
            if fdef is not None:
                body = function_def_to_graph(fdef, input_shapes=[i.shape for i in op.inputs])
                total += graph_macs(body, library)
            continue
        if kind not in _GRAPH_MAC_OPS:
            continue
        out = _per_sample(op.outputs[0].shape)
        if kind == "Conv2D":  # filter: [kh, kw, in_c / groups, out_c]
            f = _per_sample(op.inputs[1].shape)
            total += conv_macs(out, f[0:2], f[2])
        elif kind == "DepthwiseConv2dNative":  # filter: [kh, kw, in_c, multiplier]
            total += conv_macs(out, _per_sample(op.inputs[1].shape)[0:2], 1)
        elif kind == "Conv3D":
            f = _per_sample(op.inputs[1].shape)
            total += conv_macs(out, f[0:3], f[3])
        elif kind == "Conv2DBackpropInput":  # inputs: sizes, filter [kh, kw, out_c, in_c], input
            f, x = _per_sample(op.inputs[1].shape), _per_sample(op.inputs[2].shape)
            total += _prod(x) * _prod(f[0:2]) * int(f[2])
        else:
            a = _per_sample(op.inputs[0].shape)
            transposed = op.get_attr("transpose_a") if kind == "MatMul" else op.get_attr("adj_x")
            total += _prod(out) * int(a[-2] if transposed else a[-1])
    return total


def saved_model_macs(fn: Any, sample_shape: Sequence[int]) -> int | None:
    """MACs per sample of a SavedModel's serving function, from its frozen graph; None when
    the graph cannot be frozen or has unknown shapes (then nothing is claimed)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from autotune._keras import native_stderr_silenced, tf

    t = tf()
    try:
        with native_stderr_silenced():
            concrete = fn.get_concrete_function(t.TensorSpec(list(sample_shape), t.float32))
            frozen = convert_variables_to_constants_v2(concrete)
        return graph_macs(frozen.graph)
    except (ValueError, TypeError, t.errors.OpError):
        return None


def _peak_models(out_dir: Path) -> dict[str, Path]:
    """The matrix product as an fp32 and a full-int8 TFLite model."""
    from autotune._keras import keras
    from autotune.techniques.convert import to_tflite

    k = keras()
    inp = k.Input((PEAK_DEPTH,))
    model = k.Model(inp, k.layers.Dense(PEAK_COLS, use_bias=False)(inp))
    calib = np.random.default_rng(0).standard_normal((16, PEAK_DEPTH)).astype(np.float32)
    paths = {}
    for precision in ("fp32", "int8"):
        d = out_dir / precision
        d.mkdir()
        paths[precision] = to_tflite(model, precision, calib, d)
    return paths


def measure_peak(lock: HostLock | None = None) -> dict[str, float]:
    """MACs per second of a large matrix product in LiteRT, for fp32 and int8 kernels at each
    thread count from 1 to the usable cores, pinned and under the host's measurement lock."""
    from autotune.artifact import LiteRTExecutor

    lock = lock or HostLock()
    macs = PEAK_ROWS * PEAK_DEPTH * PEAK_COLS
    peak: dict[str, float] = {}
    x = np.random.default_rng(1).standard_normal((PEAK_ROWS, PEAK_DEPTH)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="autotune-peak-") as tmp:
        with lock.shared():
            models = _peak_models(Path(tmp))
        for kind, path in models.items():
            for threads in range(1, len(ALLOWED_CORES) + 1):
                executor = LiteRTExecutor(path, threads)
                call = executor.timed_call(x)
                with lock.exclusive(), pinning() as pin:
                    pin(cores_for(threads))
                    stats = measure_latency(call, PEAK_PROTOCOL)
                peak[f"{kind}/{threads}"] = macs / (stats.p50_ms / 1e3)
                del executor
    return peak
