"""Reading TFLite flatbuffers without an interpreter: every subgraph's ops, shapes and small
constants (the interpreter lists only the main subgraph's ops), and whether the model keeps
state in variable tensors. Conversion checks for loops with it; the MAC count reads it."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np

from autotune._keras import litert_schema


def tflite_subgraphs(blob: bytes) -> list[dict[str, Any]]:
    """Every subgraph of a TFLite flatbuffer: its ops (as ``_get_ops_details`` gives them, with
    WHILE's cond and body subgraph indices), its tensors' shapes and its small integer
    constants. The interpreter lists only the main subgraph's ops; loop bodies live here."""
    schema = litert_schema()
    model = schema.Model.GetRootAs(blob, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ints = {schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64}
    out = []
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        shapes, consts = {}, {}
        for i in range(sg.TensorsLength()):
            tensor = sg.Tensors(i)
            shapes[i] = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
            data = model.Buffers(tensor.Buffer()).DataAsNumpy() if tensor.Buffer() < model.BuffersLength() else 0
            if tensor.Type() in ints and not isinstance(data, int) and 0 < len(data) <= 8:
                consts[i] = int(np.frombuffer(data.tobytes(), dtype=ints[tensor.Type()])[0])
        ops = []
        for j in range(sg.OperatorsLength()):
            op = sg.Operators(j)
            code = model.OperatorCodes(op.OpcodeIndex())
            entry: dict[str, Any] = {
                "op_name": names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM"),
                "inputs": [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else [],
                "outputs": [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else [],
            }
            table = op.BuiltinOptions()
            if entry["op_name"] == "WHILE" and table is not None:
                opts = schema.WhileOptions()
                opts.Init(table.Bytes, table.Pos)
                entry |= {"cond": opts.CondSubgraphIndex(), "body": opts.BodySubgraphIndex()}
            elif entry["op_name"] == "BATCH_MATMUL" and table is not None:
                opts = schema.BatchMatMulOptions()
                opts.Init(table.Bytes, table.Pos)
                entry["builtin_options"] = {"adj_x": bool(opts.AdjX())}
            ops.append(entry)
        inputs = [int(i) for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
        out.append({"ops": ops, "shapes": shapes, "consts": consts, "inputs": inputs})
    return out


def has_variable_tensors(path: Path) -> bool:
    """True if the flatbuffer holds variable tensors (the states of fused LSTM/RNN ops)."""
    schema = litert_schema()

    # Mapped, not read: only the tensor tables are touched, not the weights.
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        model = schema.Model.GetRootAs(buf, 0)
        graphs = [model.Subgraphs(s) for s in range(model.SubgraphsLength())]
        return any(g.Tensors(i).IsVariable() for g in graphs for i in range(g.TensorsLength()))
