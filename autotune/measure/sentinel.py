"""A small model's clock: the host's sentinel artifact, timed just before and after every
comparison at the candidate's thread count, tells whether the machine was running small
models as usual while the comparison was taken.

Interleaving with the baseline cancels a slowdown that hits both sides alike, not one that
hits a 40 KB student harder than the 2 MB baseline. On a 2-core AMD EPYC (Zen 4) a width-0.25
student's p50 at 2 threads switched every few seconds between 0.016 and 0.030–0.035 ms while
the baseline's moved between 0.255 and 0.307 (its speed-up read ×16.4 and ×9.3 a second
apart), and a study timed that student's first deployments at ×5.6–7.8 where later ones read
×10.5. The baseline's own drift (``TimingPolicy.drift_limit``) misses it: ×1.13 there.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

# Bumped when the sentinel model changes, so a kept one is built again.
SENTINEL_VERSION = 1
# Input of the sentinel: an 8×8 one-channel image, as the demo's digits.
SENTINEL_INPUT = (1, 8, 8, 1)


def host_sentinel(host_dir: Path) -> Path:
    """The sentinel artifact, built once per host folder and kept: a small CNN (two 3×3
    convolutions and two dense layers, about 0.45 M MACs) in TFLite fp32, of the size and
    latency of the small students that make most fronts."""
    path = host_dir / f"sentinel-v{SENTINEL_VERSION}.tflite"
    if path.exists():
        return path
    from autotune._keras import keras
    from autotune.build.convert import to_tflite

    k = keras()
    inp = k.Input(SENTINEL_INPUT[1:])
    x = k.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = k.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = k.layers.Dense(64, activation="relu")(k.layers.Flatten()(x))
    model = k.Model(inp, k.layers.Dense(10)(x))
    host_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=host_dir, prefix=".sentinel-") as tmp:
        built = to_tflite(model, "fp32", np.zeros(SENTINEL_INPUT, np.float32), Path(tmp))
        os.replace(built, path)  # a reader never sees half a file
    return path


def sentinel_call(path: Path, threads: int) -> Callable[[], object]:
    """One inference of the sentinel at ``threads``, as a deployment would run it."""
    from autotune.measure.artifact import LiteRTExecutor

    return LiteRTExecutor(path, threads).timed_call(np.zeros(SENTINEL_INPUT, np.float32))


def usual_ms(seen: list[float]) -> float:
    """What the sentinel usually takes, from its recent readings: their fast fifth (the
    machine's own speed, which a slow phase can hold most of the time)."""
    return sorted(seen)[(len(seen) - 1) // 5]
