"""The compute peak, shape by shape: what LiteRT's kernels reach on this machine.

``measure_peak`` keeps, per precision kind and thread count, the fastest call of the fastest of
its shapes; this prints every shape's figures side by side so you can see which shape sets the
peak here, and how a typical CNN compares (the demo's model, which is not part of the peak).
Each cell is G MAC/s: the fastest call, and the p50 in brackets.

    python benchmarks/peak.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from autotune.build.convert import to_tflite
from autotune.inputs.data import load_npz
from autotune.inputs.demo import ensure_demo
from autotune.measure.artifact import LiteRTExecutor
from autotune.inputs.model import load_model
from autotune.measure.host import ALLOWED_CORES, PEAK_PROTOCOL, PEAK_CONVERSIONS, HostLock, _peak_models, cores_for, measure_peak, pinning
from autotune.measure.stats import _cpu_model, fastest_call_ms, measure_latency


def _figures(path: Path, threads: int, x, macs: int | None, lock: HostLock) -> tuple[float, float]:
    executor = LiteRTExecutor(path, threads)
    macs = macs or executor.macs(x)
    call = executor.timed_call(x)
    with lock.exclusive(), pinning() as pin:
        pin(cores_for(threads))
        best_ms = fastest_call_ms(call, PEAK_PROTOCOL)
        p50_ms = measure_latency(call, PEAK_PROTOCOL).p50_ms
    return macs / best_ms / 1e6, macs / p50_ms / 1e6


def main() -> None:
    lock = HostLock()
    threads = range(1, len(ALLOWED_CORES) + 1)
    precisions = [precision for precision, _kind in PEAK_CONVERSIONS]
    cols = [f"{p} {t} thr" for p in precisions for t in threads]
    print(f"CPU: {_cpu_model()}; G MAC/s, fastest call [p50]\n")
    print(f"{'shape':<28}" + "".join(f"{c:>20}" for c in cols))
    with tempfile.TemporaryDirectory() as tmp:
        rows: dict[str, dict[str, str]] = {}
        for name, precision, _kind, path, x, macs in _peak_models(Path(tmp)):
            for t in threads:
                best, p50 = _figures(path, t, x, macs, lock)
                rows.setdefault(name, {})[f"{precision} {t} thr"] = f"{best:.1f} [{p50:.1f}]"
        model_path, data_path = ensure_demo(Path(tmp) / "studies")
        model = load_model(model_path)
        data = load_npz(data_path)
        for precision in precisions:
            d = Path(tmp) / f"demo-{precision}"
            d.mkdir()
            path = to_tflite(model, precision, data.x_train[:64], d)
            for t in threads:
                best, p50 = _figures(path, t, data.x_val[:1], None, lock)
                rows.setdefault("the demo CNN (not in peak)", {})[f"{precision} {t} thr"] = f"{best:.1f} [{p50:.1f}]"
    for name, cells in rows.items():
        print(f"{name:<28}" + "".join(f"{cells.get(c, '—'):>20}" for c in cols))
    peak = measure_peak(lock)
    kind_of = dict(PEAK_CONVERSIONS)
    print(f"{'peak kept (measure_peak)':<28}" + "".join(f"{peak[f'{kind_of[p]}/{t}'] / 1e9:>20.1f}" for p in precisions for t in threads))
    print(f"\n(the kept peak is per kind: {', '.join(f'{p} counts as {k}' for p, k in PEAK_CONVERSIONS)})")


if __name__ == "__main__":
    main()
