"""What a measurement needs from the machine: cores to pin to, a host-wide lock so that only
one process times at a time, and the machine's compute peak (measured once, then kept).

Pinning: the p50 of one MobileNetV2 measured in 6 separate processes varied by 6.6 % unpinned
and 0.5 % pinned, on this project's 2-core reference machine. The lock: workers on one host
must not time each other's noise.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from autotune._files import write_text_atomically
from autotune.measure.stats import LatencyProtocol, fastest_call_ms

# The cores this process may use, read once: pinning narrows the live affinity for a while.
try:
    ALLOWED_CORES: tuple[int, ...] = tuple(sorted(os.sched_getaffinity(0)))
except AttributeError:  # not Linux: no affinity control
    ALLOWED_CORES = tuple(range(os.cpu_count() or 1))

# What the kernels reach at best on this machine, per precision kind and thread count: the
# fastest of several shapes, since no single one shows it. On an AVX2 Zen 3 a 3×3 convolution
# ran at 43 GMAC/s on one core where a (256 × 1024) · (1024 × 1024) product, the only shape
# measured before, ran at 24 (its weights do not fit the L2 cache), and a VGG-style CNN then
# showed "× floor" 0.8: faster than the peak. Each shape is timed by its fastest call.
# (name, input shape with batch, layer): a Dense of ``units`` or a 3×3 convolution of ``filters``.
PEAK_SHAPES: tuple[tuple[str, tuple[int, ...], str, int], ...] = (
    ("matmul 256x512x512", (256, 512), "dense", 512),
    ("matmul 256x1024x1024", (256, 1024), "dense", 1024),
    ("conv3x3 32x32x64", (1, 32, 32, 64), "conv", 64),
    ("conv3x3 16x16x128", (1, 16, 16, 128), "conv", 128),
    ("conv3x3 8x8x256", (1, 8, 8, 256), "conv", 256),
)
# Bumped when the way the peak is measured changes, so a peak kept from before is measured again.
# 3: dynamic-range int8 is timed too (on an AVX2 Zen 3 a VGG-style CNN in dynamic-int8 ran at
# ×0.97 of a peak measured on full int8 only: its hybrid kernels outran the full-int8 ones).
# 4: two passes, the second in reverse order (on a 2-core Intel Xeon the one-thread fp32 peak
# once came out low across a whole pass, and a MobileNet-style stack then ran at ×0.89 of it).
PEAK_METHOD = 4
# The peak shapes are timed this many times over, each pass in the other order, and each
# kind keeps its best: a slow phase of the machine must then last through every pass, not
# through the one that happened to time a shape, to leave the peak short.
PEAK_PASSES = 2
# The conversions each peak shape is timed in, and the peak kind each one counts towards: full
# and dynamic-range int8 share one kind, as ``peak_key`` bounds both by it.
PEAK_CONVERSIONS: tuple[tuple[str, str], ...] = (("fp32", "fp32"), ("int8", "int8"), ("dynamic-int8", "int8"))
# A shape's fastest call needs tens of calls, not seconds of them: on a 2-core Zen 4, 0.08 s a
# shape kept every peak within 5 % of what 0.25 s kept (and two runs of 0.25 s differed by 3 %),
# and the whole peak took 9 s instead of 22 s of a first run's wall time.
PEAK_PROTOCOL = LatencyProtocol(warmup_calls=3, warmup_seconds=0.02, min_calls=20, min_seconds=0.08, max_seconds=2.5)


def cores_for(threads: int) -> tuple[int, ...]:
    """The cores a runtime with ``threads`` threads is pinned to: the highest-numbered ones,
    since the kernel tends to deliver interrupts to core 0."""
    n = max(1, min(threads, len(ALLOWED_CORES)))
    return ALLOWED_CORES[-n:]


def _set_affinity_all_threads(cores: tuple[int, ...]) -> None:
    # os.sched_setaffinity(0, ...) moves only the calling thread; a runtime's worker
    # threads (LiteRT's pool, TensorFlow's executors) already exist and must move too.
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            os.sched_setaffinity(int(tid), cores)


@contextlib.contextmanager
def pinning() -> Iterator[Callable[[tuple[int, ...]], None]]:
    """Yield ``pin(cores)``, which moves every thread of this process onto ``cores``; on
    leaving, every thread may use all the allowed cores again."""
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
        yield lambda cores: None
        return
    try:
        yield _set_affinity_all_threads
    finally:
        _set_affinity_all_threads(ALLOWED_CORES)


def default_lock_path() -> Path:
    """One file per host (not per user or study): every autotune process here shares it."""
    return Path(os.environ.get("AUTOTUNE_LOCK_FILE") or Path(tempfile.gettempdir()) / "autotune-measure.lock")


class HostLock:
    """A readers-writer lock over a file (``flock``), shared by every process on the host.

    Measuring takes it exclusively; other heavy work (training, conversion) takes it shared.
    So a measurement waits until no other process computes, and nothing computes while one
    measures. ``flock`` locks die with their process, so a killed worker never leaves it held.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_lock_path()

    @contextlib.contextmanager
    def _hold(self, mode: int) -> Iterator[float]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # flock needs no write access: read-only lets every user of the host share one file.
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o666)
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o666)  # past the umask, so other users can open it too
        try:
            t0 = time.perf_counter()
            fcntl.flock(fd, mode)
            try:
                yield time.perf_counter() - t0
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def exclusive(self) -> contextlib.AbstractContextManager[float]:
        """Hold the lock alone; yields the seconds spent waiting for it."""
        return self._hold(fcntl.LOCK_EX)

    def shared(self) -> contextlib.AbstractContextManager[float]:
        """Hold the lock alongside other sharers; yields the seconds spent waiting."""
        return self._hold(fcntl.LOCK_SH)


def default_host_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("AUTOTUNE_HOST_DIR") or Path(base) / "autotune")


def load_peak(host_dir: Path, env_id: str) -> dict[str, float] | None:
    try:
        return json.loads((host_dir / f"peak-v{PEAK_METHOD}-{env_id}.json").read_text())
    except (OSError, ValueError):
        return None


def save_peak(host_dir: Path, env_id: str, peak: dict[str, float]) -> None:
    """Written under a temporary name and renamed: a reader never sees half a file."""
    host_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(host_dir / f"peak-v{PEAK_METHOD}-{env_id}.json", json.dumps(peak, indent=2))


def peak_key(precision: str, engine: str, threads: int) -> str:
    """Which measured peak bounds a runtime: int8 kernels (full and dynamic int8) have their
    own; fp16 runs in fp32 on a CPU without fp16 arithmetic, as does TensorFlow's fp32."""
    kind = "int8" if precision in ("int8", "dynamic-int8") and engine == "litert" else "fp32"
    return f"{kind}/{max(1, min(threads, len(ALLOWED_CORES)))}"


def host_peak(host_dir: Path, lock: HostLock, env_id: str) -> dict[str, float]:
    """The machine's compute peak, measured once per host and environment and kept."""
    peak = load_peak(host_dir, env_id)
    if peak is None:
        peak = measure_peak(lock)
        save_peak(host_dir, env_id, peak)
    return peak


def _peak_models(out_dir: Path) -> list[tuple[str, str, str, Path, np.ndarray, int]]:
    """Each peak shape in each of ``PEAK_CONVERSIONS``: (shape, precision, peak kind, path,
    one call's input, MACs of one call)."""
    from autotune._keras import keras
    from autotune.build.convert import to_tflite

    k = keras()
    rng = np.random.default_rng(0)
    models = []
    for i, (name, shape, layer, width) in enumerate(PEAK_SHAPES):
        inp = k.Input(shape[1:])
        if layer == "dense":
            out = k.layers.Dense(width, use_bias=False)(inp)
            macs = shape[0] * shape[1] * width
        else:
            out = k.layers.Conv2D(width, 3, padding="same", use_bias=False)(inp)
            macs = shape[0] * shape[1] * shape[2] * 9 * shape[3] * width
        model = k.Model(inp, out)
        x = rng.standard_normal(shape).astype(np.float32)
        calib = rng.standard_normal((8, *shape[1:])).astype(np.float32)
        for precision, kind in PEAK_CONVERSIONS:
            d = out_dir / f"{i}-{precision}"
            d.mkdir()
            models.append((name, precision, kind, to_tflite(model, precision, calib, d), x, macs))
    return models


def measure_peak(lock: HostLock | None = None) -> dict[str, float]:
    """MACs per second the LiteRT kernels reach at best, for fp32 and int8 at each thread count
    from 1 to the usable cores: the fastest call of the fastest of ``PEAK_SHAPES`` in any of
    ``PEAK_CONVERSIONS`` of the kind over ``PEAK_PASSES`` passes, pinned and under the host's
    measurement lock. An artifact's p50 is never below its MACs at this rate."""
    from autotune.measure.artifact import LiteRTExecutor

    lock = lock or HostLock()
    peak: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="autotune-peak-") as tmp:
        with lock.shared():
            models = _peak_models(Path(tmp))
        passes = [models if i % 2 == 0 else models[::-1] for i in range(PEAK_PASSES)]
        for _name, _precision, kind, path, x, macs in (m for each in passes for m in each):
            for threads in range(1, len(ALLOWED_CORES) + 1):
                executor = LiteRTExecutor(path, threads)
                call = executor.timed_call(x)
                with lock.exclusive(), pinning() as pin:
                    pin(cores_for(threads))
                    best_ms = fastest_call_ms(call, PEAK_PROTOCOL)
                key = f"{kind}/{threads}"
                peak[key] = max(peak.get(key, 0.0), macs / (best_ms / 1e3))
                del executor
    return peak
