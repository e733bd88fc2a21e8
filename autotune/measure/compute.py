"""How much arithmetic a deployed artifact does, read from its graph; with the machine's
measured peak (``autotune.measure.host``) it gives each candidate's compute floor.

Multiply-accumulates are counted from the ops the runtime will execute (the TFLite flatbuffer's
ops, or the frozen graph of a SavedModel's serving function) with the shapes allocated for a
call; nothing is estimated from parameter counts. Convolutions, depthwise convolutions,
transposed convolutions, matrix products and the fused sequence ops (LSTM, RNN: every weight
matrix once per time step and sample) carry the MACs of the networks autotune builds; a loop
(TFLite WHILE, TensorFlow While) counts its body once per iteration, the iterations read from
the graph's constants. Element-wise ops, pooling and activations are not counted (they are
memory-bound).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from autotune.build.flatbuffer import tflite_subgraphs


def _prod(shape: Iterable[int]) -> int:
    return int(np.prod([int(d) for d in shape], dtype=np.int64))


def conv_macs(out_shape: Sequence[int], kernel_hw: Sequence[int], in_channels_per_group: int) -> int:
    """Every output element of a convolution is a dot product over kernel × input channels."""
    return _prod(out_shape) * _prod(kernel_hw) * int(in_channels_per_group)


# Weight matrices of the fused sequence ops, by input position (TFLite's op definitions):
# LSTM input-to-gate 1-4, recurrent-to-gate 5-8, projection 16 (backward: +17); RNN input
# and recurrent weights 1-2 (backward 5-6).
_SEQUENCE_WEIGHTS = {
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (*range(1, 9), 16),
    "BIDIRECTIONAL_SEQUENCE_LSTM": (*range(1, 9), 16, *range(18, 26), 33),
    "UNIDIRECTIONAL_SEQUENCE_RNN": (1, 2),
    "BIDIRECTIONAL_SEQUENCE_RNN": (1, 2, 5, 6),
}
_TFLITE_MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL")


def _sequence_macs(ins: list[int], shapes: dict[int, Sequence[int]], positions: Sequence[int]) -> int:
    """Every weight matrix multiplies one vector per time step and sample (absent optional
    weights, e.g. a coupled input gate, are -1)."""
    steps_and_batch = _prod(shapes[ins[0]][:-1])
    return steps_and_batch * sum(_prod(shapes[ins[i]]) for i in positions if i < len(ins) and ins[i] >= 0)


def tflite_macs(ops: list[dict[str, Any]], shapes: dict[int, Sequence[int]]) -> int:
    """MACs of one call from a LiteRT interpreter's op list (``_get_ops_details``) and tensor
    shapes by index, at the batch the interpreter is allocated for (WHILE loops: see
    ``while_loop_macs``)."""
    total = 0
    for op in ops:
        name, ins, outs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if name in _SEQUENCE_WEIGHTS:
            total += _sequence_macs(ins, shapes, _SEQUENCE_WEIGHTS[name])
            continue
        if name not in _TFLITE_MAC_OPS:
            continue
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


def _trip_count(subgraphs: list[dict[str, Any]], caller: dict[str, Any], op: dict[str, Any]) -> int:
    """Iterations of a WHILE: its cond compares a loop variable with a bound (LESS, LESS_EQUAL),
    both read from constants of the cond or of the caller's WHILE inputs; with several such
    tests (while_v2's iteration cap and the sequence length), the tightest."""
    cond = subgraphs[op["cond"]]

    def value(index: int) -> int | None:
        if index in cond["consts"]:
            return cond["consts"][index]
        if index in cond["inputs"]:
            return caller["consts"].get(op["inputs"][cond["inputs"].index(index)])
        return None

    trips = []
    for test in cond["ops"]:
        if test["op_name"] in ("LESS", "LESS_EQUAL") and len(test["inputs"]) == 2:
            start, bound = (value(i) for i in test["inputs"])
            if start is not None and bound is not None and bound >= 0:
                trips.append(bound - start + (test["op_name"] == "LESS_EQUAL"))
    if not trips:
        raise ValueError("the WHILE loop's iteration count is not a constant of the graph")
    return max(0, min(trips))


def while_loop_macs(subgraphs: list[dict[str, Any]], index: int = 0) -> int:
    """MACs of the WHILE loops a subgraph runs (nested loops included): body × iterations."""
    graph = subgraphs[index]
    total = 0
    for op in graph["ops"]:
        if op["op_name"] == "WHILE":
            body = subgraphs[op["body"]]
            per_iteration = tflite_macs(body["ops"], body["shapes"]) + while_loop_macs(subgraphs, op["body"])
            total += _trip_count(subgraphs, graph, op) * per_iteration
    return total


def litert_macs(interpreter: Any, blob: bytes | None = None) -> int | None:
    """MACs per sample of an allocated LiteRT interpreter; with loops (WHILE), their bodies
    are read from the model's flatbuffer ``blob`` (None without it: nothing is claimed)."""
    details = interpreter.get_tensor_details()
    shapes = {int(t["index"]): tuple(int(d) for d in t["shape"]) for t in details}
    batch = max(1, int(interpreter.get_input_details()[0]["shape"][0]))
    ops = interpreter._get_ops_details()
    total = tflite_macs(ops, shapes)
    if any(op["op_name"] == "WHILE" for op in ops):
        if blob is None:
            return None
        total += while_loop_macs(tflite_subgraphs(blob))
    return total // batch


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
_LOOP_OPS = ("While", "StatelessWhile")


def _static_value(tensor: Any) -> Any:
    """The value of a scalar or 1-D integer tensor known from the graph alone (constants, and
    shapes with the dimensions shape inference knows; None for an unknown element), or None."""
    from autotune._keras import tf_graph_tools

    tensor_util = tf_graph_tools().tensor_util
    op = tensor.op
    if op.type == "Const":
        return tensor_util.MakeNdarray(op.get_attr("value")).tolist()
    if op.type == "Identity":
        return _static_value(op.inputs[0])
    if op.type == "Shape":
        return op.inputs[0].shape.as_list() if op.inputs[0].shape.rank is not None else None
    if op.type == "StridedSlice" and op.get_attr("shrink_axis_mask") == 1:
        dims, begin = _static_value(op.inputs[0]), _static_value(op.inputs[1])
        if isinstance(dims, list) and isinstance(begin, list) and len(begin) == 1 and -len(dims) <= begin[0] < len(dims):
            return dims[begin[0]]
    return None


def _iterations(op: Any, library: dict[str, Any]) -> int:
    """A while_v2 loop's iterations: its ``maximum_iterations`` input (the second loop variable)
    if set, else the bound its cond compares a loop variable with (Keras' recurrent loops:
    ``time < time steps``, the steps read from the input's static shape)."""
    from autotune._keras import tf_graph_tools

    function_def_to_graph = tf_graph_tools().function_def_to_graph
    bounds = []
    cap = _static_value(op.inputs[1])
    if isinstance(cap, int) and cap >= 0:
        bounds.append(cap)
    cond = function_def_to_graph(library[op.get_attr("cond").name], input_shapes=[i.shape for i in op.inputs])
    args = {id(t.op): k for k, t in enumerate(cond.inputs)}
    for test in cond.get_operations():
        if test.type != "Less" or not all(id(i.op) in args for i in test.inputs):
            continue
        start, bound = (_static_value(op.inputs[args[id(i.op)]]) for i in test.inputs)
        if isinstance(start, int) and isinstance(bound, int):
            bounds.append(max(0, bound - start))
    if not bounds:
        raise ValueError(f"loop {op.name} has no iteration count known from the graph")
    return min(bounds)


def graph_macs(graph: Any, library: dict[str, Any] | None = None) -> int:
    """MACs per sample of a frozen TensorFlow graph (leading unknown dimensions are the batch).

    Function calls the freezing left in place (an XLA-compiled function stays one call) are
    followed into their function bodies, traced at the caller's input shapes; a loop's body
    counts once per iteration.
    """
    from autotune._keras import tf_graph_tools

    function_def_to_graph = tf_graph_tools().function_def_to_graph
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
        if kind in _LOOP_OPS:
            fdef = library[op.get_attr("body").name]
            body = function_def_to_graph(fdef, input_shapes=[i.shape for i in op.inputs])
            total += _iterations(op, library) * graph_macs(body, library)
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


def saved_model_macs(fn: Any, sample_shape: Sequence[int], dtype: Any = None) -> int | None:
    """MACs per sample of a SavedModel's serving function, from its frozen graph; None when
    the graph cannot be frozen or has unknown shapes (then nothing is claimed)."""
    from autotune._keras import native_stderr_silenced, tf, tf_graph_tools

    t = tf()
    convert_variables_to_constants_v2 = tf_graph_tools().convert_variables_to_constants_v2
    try:
        with native_stderr_silenced():
            concrete = fn.get_concrete_function(t.TensorSpec(list(sample_shape), dtype or t.float32))
            # Loops stay While ops with their bodies (lowered, their shapes would be lost).
            frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
        return graph_macs(frozen.graph)
    except (ValueError, TypeError, KeyError, t.errors.OpError):
        return None
