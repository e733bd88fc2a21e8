"""Latency, accuracy and size of a built artifact, measured; and the environment they hold on.

The statistics here are pure functions of timings so they can be tested with a fake clock;
running an artifact lives in ``autotune.artifact``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

Clock = Callable[[], float]


@dataclass(frozen=True)
class LatencyProtocol:
    """How long to warm up and how much to time: both a count and a duration must be met.

    A minimum count alone is too little on a fast model (noise dominates a few ms of timing);
    a minimum time alone is too few calls on a slow one. ``max_seconds`` bounds a slow model.
    """

    warmup_calls: int = 10
    warmup_seconds: float = 0.2
    min_calls: int = 100
    min_seconds: float = 1.0
    max_seconds: float = 20.0

    def __post_init__(self) -> None:
        if self.min_calls < 1 or self.warmup_calls < 0:
            raise ValueError("min_calls must be at least 1 and warmup_calls at least 0")
        if self.max_seconds < self.min_seconds:
            raise ValueError("max_seconds must be at least min_seconds")


@dataclass(frozen=True)
class LatencyStats:
    """Steady-state latency of one call, in milliseconds, plus the cold start apart."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    calls: int
    cold_start_ms: float

    def as_metrics(self) -> dict[str, float]:
        steady = {f"latency_{k}": v for k, v in asdict(self).items() if k.endswith("_ms") and k != "cold_start_ms"}
        return steady | {"latency_calls": self.calls, "cold_start_ms": self.cold_start_ms}


def summarize(samples_s: list[float] | np.ndarray, cold_start_s: float) -> LatencyStats:
    """Percentiles of per-call durations given in seconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no timed calls to summarize")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=float(ms.mean()),
        std_ms=float(ms.std()),
        calls=int(ms.size),
        cold_start_ms=cold_start_s * 1e3,
    )


def measure_latency(
    call: Callable[[], object],
    protocol: LatencyProtocol,
    *,
    cold_start_s: float = 0.0,
    clock: Clock = time.perf_counter,
) -> LatencyStats:
    """Warm ``call`` up, then time single calls until both the count and the time are met.

    ``cold_start_s`` is what the caller measured for loading and the first call; it is
    stored apart so that a slow start never leaks into the steady-state percentiles.
    """
    start = clock()
    done = 0
    while done < protocol.warmup_calls or clock() - start < protocol.warmup_seconds:
        call()
        done += 1
    samples: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        call()
        t1 = clock()
        samples.append(t1 - t0)
        elapsed = t1 - start
        enough = len(samples) >= protocol.min_calls and elapsed >= protocol.min_seconds
        if enough or elapsed >= protocol.max_seconds:
            break
    return summarize(samples, cold_start_s)


def accuracy(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``predict`` (batched, returning scores) over the whole set."""
    scores = predict(x)
    if scores.shape[0] != y.shape[0]:
        raise ValueError(f"predicted {scores.shape[0]} rows for {y.shape[0]} labels")
    return float(np.mean(np.argmax(scores.reshape(len(y), -1), axis=1) == y))


def artifact_size(path: Path) -> tuple[int, int]:
    """Bytes on disk and gzip-compressed bytes (sparsity shows in the second, not the first)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    raw = b"".join(p.read_bytes() for p in files)
    return len(raw), len(gzip.compress(raw, compresslevel=6, mtime=0))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def environment() -> dict[str, object]:
    """What latency depends on besides the model: measured numbers compare only within one."""
    from autotune._keras import versions

    env: dict[str, object] = {
        "cpu": _cpu_model(),
        "cores": usable_cores(),
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
    }
    env.update(versions())
    env["id"] = fingerprint_id(env)
    return env


def fingerprint_id(env: dict[str, object]) -> str:
    fields = {k: v for k, v in env.items() if k != "id"}
    return hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()[:12]
