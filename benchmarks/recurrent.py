"""A recurrent model deployed every way autotune builds it: LSTM(64) over the 16 rows of a
digit (scikit-learn's 8×8 digits upsampled to 16×16), trained here, then TFLite at fp32, fp16,
dynamic-range int8 and full int8, a distilled student at width 0.5 (fp32), and the TensorFlow
SavedModel with and without XLA (and, for comparison only, the model unrolled over its time
steps, which autotune does only where full int8 needs it). Every row: p50 of one call at batch 1, pinned, under the host
lock, with the protocol trials use; accuracy on the whole validation set through that same
artifact; the ops TFLite wrote; the MACs counted from the graph.

    python benchmarks/recurrent.py [--threads 1] [--units 64] [--epochs 8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from autotune.build.cache import ContentCache
from autotune.build.context import TechniqueContext
from autotune.inputs.data import Dataset
from autotune.measure.artifact import LiteRTExecutor, TensorFlowExecutor
from autotune.measure.host import HostLock, cores_for, pinning
from autotune.measure.stats import LatencyProtocol, measure_latency, quality


def digits16() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.kron(d.images / 16.0, np.ones((2, 2))).astype(np.float32)  # (n, 16, 16): 16 rows of 16
    y = d.target.astype(np.int64)
    return Dataset(x[:1400], y[:1400], x[1400:], y[1400:])


def ops(path: Path) -> str:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    names = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    return ",".join(n for n in names if n in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "WHILE", "FULLY_CONNECTED", "UNPACK")) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    from autotune._keras import keras
    from autotune.build.convert import to_saved_model, to_tflite
    from autotune.techniques import Distill
    from autotune.techniques.recurrent import unrolled
    from autotune.techniques.training import fine_tune

    k = keras()
    data = digits16()
    model = k.Sequential([k.layers.Input((16, 16)), k.layers.LSTM(args.units), k.layers.Dense(10)])
    fine_tune(model, data, epochs=args.epochs, seed=0, learning_rate=3e-3)
    protocol = LatencyProtocol()
    one = data.x_val[:1]
    rows = []

    def time_it(label: str, executor, path: Path, op_list: str) -> None:
        acc = quality(executor.predict, data.x_val, data.y_val, data.task)["accuracy"]
        call = executor.timed_call(one)
        call()
        with HostLock().exclusive(), pinning() as pin:
            pin(cores_for(args.threads))
            p50 = measure_latency(call, protocol).p50_ms
        rows.append((label, p50, acc, executor.macs(one), path.stat().st_size if path.is_file() else None, op_list))

    with tempfile.TemporaryDirectory(prefix="autotune-recurrent-") as tmp:
        root = Path(tmp)
        ctx = TechniqueContext(data=data, seed=0, cache=ContentCache(root / "cache"), key="k")
        student = Distill(width=0.5, epochs=args.epochs).apply(model, ctx)
        for label, source, precision in [
            ("TFLite fp32", model, "fp32"),
            ("TFLite fp16", model, "fp16"),
            ("TFLite dynamic-int8", model, "dynamic-int8"),
            ("TFLite int8", model, "int8"),
            (f"student w0.5 ({student.layers[0].units} units) fp32", student, "fp32"),
            (f"student w0.5 ({student.layers[0].units} units) int8", student, "int8"),
            # Not a search option: the same model unrolled over its 16 steps, for comparison.
            ("TFLite fp32, unrolled", unrolled(model), "fp32"),
            ("TFLite int8, unrolled", unrolled(model), "int8"),
        ]:
            out = root / label.replace(" ", "_")
            out.mkdir()
            path = to_tflite(source, precision, data.x_train[:100], out)
            time_it(label, LiteRTExecutor(path, args.threads), path, ops(path))
        for xla in (False, True):
            out = root / f"saved_model_{xla}"
            out.mkdir()
            path = to_saved_model(model, xla, out)
            time_it("TensorFlow SavedModel" + (" XLA" if xla else ""), TensorFlowExecutor(path), path, "-")

    keras_acc = float(np.mean(np.argmax(model.predict(data.x_val, verbose=0), axis=1) == data.y_val))
    print(f"LSTM({args.units}) over 16×16 digit rows, Keras accuracy {keras_acc:.4f}; batch 1, {args.threads} thread(s)")
    print(f"{'':38} {'p50 ms':>8} {'accuracy':>9} {'MACs':>9} {'size KB':>8}  ops")
    for label, p50, acc, macs, size, op_list in rows:
        size_kb = f"{size / 1024:8.0f}" if size else f"{'':>8}"
        print(f"{label:38} {p50:8.3f} {acc:9.4f} {macs or 0:9d} {size_kb}  {op_list}")


if __name__ == "__main__":
    main()
