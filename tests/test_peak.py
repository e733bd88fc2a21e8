"""The machine's compute peak is a ceiling: no artifact a study measures runs faster than its
MACs at that rate, whatever the shape, precision or thread count ("× floor" is never below 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.measure.compute import litert_macs
from autotune.measure.host import ALLOWED_CORES, PEAK_SHAPES, cores_for, measure_peak, peak_key, pinning
from autotune.measure.stats import LatencyProtocol, measure_latency

pytestmark = pytest.mark.slow

PROTOCOL = LatencyProtocol(warmup_calls=5, warmup_seconds=0.05, min_calls=50, min_seconds=0.3)


def _models():
    """Shapes users bring, none of them one of the peak's own: a VGG-style CNN (the one whose
    "× floor" showed 0.8 against the old single-matrix-product peak), a MobileNet-style block
    stack (depthwise + pointwise) and an MLP."""
    from autotune._keras import keras

    k = keras()
    inp = k.Input((32, 32, 3))
    x = inp
    for c in (32, 64, 128):
        x = k.layers.Conv2D(c, 3, padding="same", activation="relu")(x)
        x = k.layers.Conv2D(c, 3, padding="same", activation="relu")(x)
        x = k.layers.MaxPool2D()(x)
    vgg = k.Model(inp, k.layers.Dense(10)(k.layers.Flatten()(x)))

    inp = k.Input((48, 48, 16))
    x = inp
    for c in (32, 64, 96):
        x = k.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = k.layers.Conv2D(c, 1, activation="relu")(x)
    mobile = k.Model(inp, k.layers.Dense(10)(k.layers.GlobalAveragePooling2D()(x)))

    inp = k.Input((384,))
    x = k.layers.Dense(768, activation="relu")(inp)
    mlp = k.Model(inp, k.layers.Dense(10)(k.layers.Dense(384, activation="relu")(x)))
    return {"vgg": vgg, "mobile": mobile, "mlp": mlp}


def test_no_artifact_beats_the_measured_peak(tmp_path: Path) -> None:
    from autotune.build.convert import to_tflite
    from autotune.measure.artifact import LiteRTExecutor

    peak = measure_peak()
    threads_range = range(1, len(ALLOWED_CORES) + 1)
    assert set(peak) == {f"{kind}/{t}" for kind in ("fp32", "int8") for t in threads_range}
    assert len(PEAK_SHAPES) >= 3  # convolutions and products, not one shape
    rng = np.random.default_rng(0)
    ratios = {}
    for name, model in _models().items():
        calib = rng.standard_normal((8, *model.input_shape[1:])).astype(np.float32)
        for precision in ("fp32", "int8", "dynamic-int8"):
            folder = tmp_path / f"{name}-{precision}"
            folder.mkdir()
            path = to_tflite(model, precision, calib, folder)
            for threads in threads_range:
                executor = LiteRTExecutor(path, threads)
                macs = litert_macs(executor._interp)
                assert macs and macs > 0
                call = executor.timed_call(calib[:1])
                with pinning() as pin:
                    pin(cores_for(threads))
                    p50 = measure_latency(call, PROTOCOL).p50_ms
                floor_ms = macs / peak[peak_key(precision, "litert", threads)] * 1e3
                ratios[f"{name} {precision} {threads}t"] = p50 / floor_ms
    beaten = {k: round(v, 2) for k, v in ratios.items() if v < 1.0}
    assert not beaten, f"faster than the measured peak: {beaten} (all: {ratios})"
