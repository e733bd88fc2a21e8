"""Latency, accuracy and size of a built artifact, measured; and the environment they hold on.

The statistics here are pure functions of timings so they can be tested with a fake clock;
running an artifact lives in ``autotune.measure.artifact``.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from autotune.storage.record import MAE, Quality

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
    # Interleaved measurement: the calls of each side are split into this many blocks,
    # alternated candidate/baseline, baseline/candidate, ... Each block gives one ratio.
    rounds: int = 10
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.min_calls < 1 or self.warmup_calls < 0:
            raise ValueError("min_calls must be at least 1 and warmup_calls at least 0")
        if self.max_seconds < self.min_seconds:
            raise ValueError("max_seconds must be at least min_seconds")
        if not 0.5 < self.confidence < 1:
            raise ValueError("confidence must be between 0.5 and 1")
        _ci_rank(self.rounds, self.confidence)  # raises if the rounds cannot give the interval


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


def _warm_up(call: Callable[[], object], protocol: LatencyProtocol, clock: Clock) -> None:
    start = clock()
    done = 0
    while done < protocol.warmup_calls or clock() - start < protocol.warmup_seconds:
        call()
        done += 1


def _timed_block(call: Callable[[], object], calls: int, seconds: float, cap_s: float, clock: Clock) -> list[float]:
    """Durations of single calls until both ``calls`` and ``seconds`` are met, or ``cap_s``."""
    samples: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        call()
        t1 = clock()
        samples.append(t1 - t0)
        elapsed = t1 - start
        if (len(samples) >= calls and elapsed >= seconds) or elapsed >= cap_s:
            return samples


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
    _warm_up(call, protocol, clock)
    samples = _timed_block(call, protocol.min_calls, protocol.min_seconds, protocol.max_seconds, clock)
    return summarize(samples, cold_start_s)


def fastest_call_ms(call: Callable[[], object], protocol: LatencyProtocol, *, clock: Clock = time.perf_counter) -> float:
    """The fastest single call, in milliseconds, after the same warm-up and timed block as
    ``measure_latency``: what the machine reaches at best, for bounds rather than reports."""
    _warm_up(call, protocol, clock)
    return min(_timed_block(call, protocol.min_calls, protocol.min_seconds, protocol.max_seconds, clock)) * 1e3


def median_call_ms(call: Callable[[], object], seconds: float, *, clock: Clock = time.perf_counter) -> float:
    """The median single call over ``seconds`` (after one untimed call), in milliseconds: a
    short reading of how fast the machine runs ``call`` now."""
    call()
    return float(np.median(_timed_block(call, 1, seconds, seconds, clock))) * 1e3


def _ci_rank(n: int, confidence: float) -> int:
    """The rank k (1-based) such that the k-th smallest and k-th largest of n values bound
    their median with at least ``confidence`` (the sign test's order statistics)."""
    alpha = 1 - confidence
    tail, k = 0.0, 0
    for j in range(n):
        tail += math.comb(n, j) / 2**n
        if tail > alpha / 2:
            break
        k = j + 1
    if k == 0:
        raise ValueError(f"{n} rounds cannot give a {confidence:.0%} interval of the median; use more rounds")
    return k


def median_interval(values: list[float] | np.ndarray, confidence: float) -> tuple[float, float]:
    """A distribution-free confidence interval of the median: no normality assumed, which
    matters for timings (skewed, with outliers when the machine is busy)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    k = _ci_rank(len(x), confidence)
    return float(x[k - 1]), float(x[len(x) - k])


Side = Literal["candidate", "baseline"]


@dataclass(frozen=True)
class Comparison:
    """A candidate timed alternately with the study's baseline, in one process, one sitting.

    ``speedup`` is the median over rounds of (baseline p50 / candidate p50) in that round;
    drift of the machine between rounds moves both sides of a round alike and cancels.
    """

    candidate: LatencyStats
    baseline: LatencyStats
    speedup: float
    speedup_low: float
    speedup_high: float
    rounds: int
    confidence: float

    @property
    def relative_width(self) -> float:
        """Width of the speed-up's interval over the speed-up: the measurement's noise."""
        return (self.speedup_high - self.speedup_low) / self.speedup

    def as_metrics(self) -> dict[str, float]:
        return self.candidate.as_metrics() | {
            "baseline_p50_ms": self.baseline.p50_ms,
            "speedup": self.speedup,
            "speedup_low": self.speedup_low,
            "speedup_high": self.speedup_high,
            "speedup_rounds": self.rounds,
            "speedup_confidence": self.confidence,
        }


def measure_interleaved(
    candidate: Callable[[], object],
    baseline: Callable[[], object],
    protocol: LatencyProtocol,
    *,
    cold_start_s: float = 0.0,
    clock: Clock = time.perf_counter,
    before_block: Callable[[Side], None] | None = None,
) -> Comparison:
    """Time ``candidate`` and ``baseline`` in alternating blocks (ABBA order, so a trend in
    the machine's speed favours neither side) and return both and their ratio.

    Each side gets the whole protocol (``min_calls`` and ``min_seconds`` split over
    ``rounds`` blocks). ``before_block`` runs untimed before each block (e.g. to pin the
    process to that side's cores); one untimed call then re-warms the side's caches.
    """
    _warm_up(candidate, protocol, clock)
    _warm_up(baseline, protocol, clock)
    calls = math.ceil(protocol.min_calls / protocol.rounds)
    seconds = protocol.min_seconds / protocol.rounds
    cap = protocol.max_seconds / protocol.rounds
    blocks: dict[Side, list[list[float]]] = {"candidate": [], "baseline": []}
    fns: dict[Side, Callable[[], object]] = {"candidate": candidate, "baseline": baseline}
    for r in range(protocol.rounds):
        order: tuple[Side, Side] = ("candidate", "baseline") if r % 2 == 0 else ("baseline", "candidate")
        for side in order:
            if before_block is not None:
                before_block(side)
            fns[side]()
            blocks[side].append(_timed_block(fns[side], calls, seconds, cap, clock))
    ratios = [float(np.median(b) / np.median(c)) for c, b in zip(blocks["candidate"], blocks["baseline"])]
    low, high = median_interval(ratios, protocol.confidence)
    return Comparison(
        candidate=summarize([s for b in blocks["candidate"] for s in b], cold_start_s),
        baseline=summarize([s for b in blocks["baseline"] for s in b], 0.0),
        speedup=float(np.median(ratios)),
        speedup_low=low,
        speedup_high=high,
        rounds=protocol.rounds,
        confidence=protocol.confidence,
    )


def accuracy(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``predict`` (batched, returning scores) over the whole set."""
    scores = predict(x)
    if scores.shape[0] != y.shape[0]:
        raise ValueError(f"predicted {scores.shape[0]} rows for {y.shape[0]} labels")
    return float(np.mean(np.argmax(scores.reshape(len(y), -1), axis=1) == y))


TOP_K = 5


def quality(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, task: str) -> dict[str, float]:
    """How good the deployed artifact's answers are over the whole validation set.

    Classification: top-1 ``accuracy``, and ``top5_accuracy`` when there are more than five
    classes. Regression: mean absolute error ``mae`` over every output.
    """
    out = predict(x)
    if out.shape[0] != y.shape[0]:
        raise ValueError(f"predicted {out.shape[0]} rows for {y.shape[0]} targets")
    if Quality.for_task(task) is MAE:
        return {MAE.name: float(np.mean(np.abs(out.reshape(y.shape).astype(np.float64) - y)))}
    scores = out.reshape(len(y), -1)
    metrics = {"accuracy": float(np.mean(np.argmax(scores, axis=1) == y))}
    if scores.shape[1] > TOP_K:
        top = np.argpartition(-scores, TOP_K - 1, axis=1)[:, :TOP_K]
        metrics[f"top{TOP_K}_accuracy"] = float(np.mean(np.any(top == y[:, None], axis=1)))
    return metrics


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
