"""Timing a deployed artifact the way the project promises: alone on the host (lock), pinned to
its cores, against the study's baseline in the same sitting, re-measured when noisy, and set
against the machine's compute floor.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from autotune.measure.artifact import Executor, open_executor
from autotune.measure.host import HostLock, cores_for, peak_key, pinning
from autotune.measure.sentinel import sentinel_call, usual_ms
from autotune.measure.stats import Comparison, LatencyProtocol, Side, measure_interleaved, median_call_ms
from autotune.search.recipe import Recipe, Runtime


@dataclass(frozen=True)
class TimingPolicy:
    """How long artifacts are timed: ``protocol`` for the figures a user keeps (the front's
    re-measurement at the end of a run), ``screening`` of it for each trial of the search.

    A search trial's figures only have to rank it against the others (both sides are timed
    interleaved, so the speed-up is sound from short blocks); the front is then timed again
    in full. ``screening`` scales the protocol's calls and seconds (warm-up included). A
    search trial whose comparison is noisy is taken again ``search_retries`` times and keeps
    the best (one whose baseline ran as usual, then the narrowest); one still noisy is flagged.
    One whose whole interval is slower than the baseline is not taken again: the front it would
    compete for is faster than the baseline (every TensorFlow-runtime trial at batch 1 here);
    nor is one whose whole interval is slower than a model at least as accurate already ran
    (``Timer.time``'s ``beat``): however it is read, it is off the front.

    Noisy is a wide interval, a drifted baseline, or a slow sentinel: the interleaving cancels
    a slowdown that hits both sides alike, not one that hits the 2 MB baseline harder than a
    40 KB student, or the student harder than the baseline. Each kind misleads the search. A
    drifted or slow-sentinel comparison is biased, not only wide, so its interval cannot say
    it is off the front: it is taken again unless its interval, scaled by how far the machine
    was off, is still below what it must beat. On a Zen 4 study of the demo every comparison's baseline
    ran within ×0.95–1.15 of the study's median but one, at ×2.03, whose student read ×9.41
    (a narrow interval) where the study's other students of its width read ×7.1–7.5; with
    another study running beside, one student read ×9.4 with an interval of ×6.8–9.5 where
    its siblings read ×4.3–6.0. Each became its study's fastest.

    A comparison whose baseline ran slower than usual by more than ``drift_limit`` is taken
    again only after waiting, up to ``phase_wait``, for the baseline alone to run as usual. One
    still noisy after its retakes whose baseline ran slower than usual (by any amount) keeps
    its figures read against the baseline's usual p50: its speed-up and interval divided by
    how much slower the baseline ran. A slowdown that hit the baseline and not the candidate
    is what made it read fast; one that hit both sides makes the reading conservative, never
    flattering. On two Zen 4 runs of the demo's benchmark, the first model's `fp32 · litert ·
    1 thread` was timed twice while its 2-thread baseline ran ×1.93 slower than usual, and
    read ×11.07 and ×9.90 (its other 1-thread deployments read ×5.2–5.4); the study then
    deployed that model's three siblings and one or two extensions at fp32 on 1 thread, where they
    read ×4.6–7.4, against ×10.6 for full int8 on 2 threads side by side. With that mended,
    the same model's `dynamic-int8 · 1 thread` read ×11.44 (interval ×5.95–12.58, baseline
    ×1.26 slower than usual) and was its study's fastest until the end; side by side, that
    model's int8 on 1 thread ran at ×8.5.
    """

    protocol: LatencyProtocol = LatencyProtocol()
    screening: float = 0.5
    # A comparison whose speed-up interval is wider than this fraction of the speed-up is
    # flagged noisy; with the full protocol it is first taken again (up to ``retries`` times).
    noise_limit: float = 0.10
    retries: int = 1
    search_retries: int = 1
    # A comparison whose baseline ran this many times slower or faster than its median over
    # the timer's last ``drift_window`` comparisons (once there are ``drift_after``) was taken
    # while the machine was not itself, and is treated as noisy. Every comparison enters the
    # window, so a machine that changes for good is the new usual after half a window.
    drift_limit: float = 1.3
    drift_after: int = 3
    drift_window: int = 15
    # A comparison during which the host's sentinel (a small model, ``measure.sentinel``),
    # timed for ``sentinel_seconds`` just before and after it at the candidate's thread count,
    # ran this many times slower than usual (the fast fifth of its last ``drift_window``
    # readings at that thread count, once there are ``drift_after``) was taken while the
    # machine ran small models slower than large ones, and is treated as noisy.
    phase_limit: float = 1.25
    sentinel_seconds: float = 0.05
    # A search timing whose whole interval reads below this fraction of the best speed-up the
    # study read for the same computation (``Timer.time``'s ``expect``) is taken again.
    shape_limit: float = 0.8
    # How long a comparison taken while the sentinel was slow waits, timing the sentinel, for
    # it to run as usual before it is taken again.
    phase_wait: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.screening <= 1:
            raise ValueError("screening must be a fraction of the protocol, in (0, 1]")

    @property
    def search(self) -> LatencyProtocol:
        """The protocol a search trial is timed with."""
        p, f = self.protocol, self.screening
        return replace(
            p,
            warmup_calls=math.ceil(p.warmup_calls * f),
            warmup_seconds=p.warmup_seconds * f,
            min_calls=max(p.rounds, math.ceil(p.min_calls * f)),
            min_seconds=p.min_seconds * f,
            max_seconds=p.max_seconds * f,
        )


@dataclass(frozen=True)
class Timed:
    """The figures of one timed artifact and how they were taken."""

    comparison: Comparison
    noisy: bool
    attempts: int
    macs: int | None
    compute_floor_ms: float | None
    # The sentinel's slower reading around the comparison kept, over its usual (None: no
    # sentinel, or too few readings yet to know its usual).
    sentinel_ratio: float | None
    lock_wait_s: float
    cores: tuple[int, ...]
    baseline_cores: tuple[int, ...]
    batch_size: int
    # The kept comparison's baseline p50 over its usual (None until the timer has seen
    # ``drift_after`` comparisons); where the comparison is noisy and this is above 1, its
    # speed-up figures were divided by it (read against the usual baseline).
    baseline_drift: float | None = None

    def metrics(self) -> dict[str, Any]:
        c = self.comparison
        floor = self.compute_floor_ms
        return c.as_metrics() | {
            "noisy": self.noisy,
            "measurements": self.attempts,
            "batch_size": self.batch_size,
            # Samples per second over sustained calls: batch over the mean call.
            "throughput_sps": self.batch_size * 1e3 / c.candidate.mean_ms,
            "macs": self.macs,
            "compute_floor_ms": floor,
            "floor_ratio": None if not floor else c.candidate.p50_ms / floor,
            "sentinel_ratio": self.sentinel_ratio,
            "baseline_drift": self.baseline_drift,
        }

    def record(self) -> dict[str, Any]:
        """How the measurement was taken, for the trial's attributes."""
        return {
            "cores": list(self.cores),
            "baseline_cores": list(self.baseline_cores),
            "lock_wait_s": self.lock_wait_s,
            "attempts": self.attempts,
            "rounds": self.comparison.rounds,
            "calls": self.comparison.candidate.calls,
            "baseline_calls": self.comparison.baseline.calls,
        }


def read_against_usual(comparison: Comparison, drift: float) -> Comparison:
    """``comparison`` with its speed-up and interval divided by ``drift``, the times its
    baseline ran slower than usual: the candidate read against the baseline's usual speed."""
    return replace(
        comparison,
        speedup=comparison.speedup / drift,
        speedup_low=comparison.speedup_low / drift,
        speedup_high=comparison.speedup_high / drift,
    )


def batch_of(x: np.ndarray, batch: int) -> np.ndarray:
    """The first ``batch`` samples of ``x``, cycling when the set is smaller than the batch."""
    return x[np.arange(batch) % len(x)]


@dataclass
class Timer:
    """Times artifacts of one study against its baseline artifact (opened once, kept).

    ``baseline_at`` gives the baseline artifact converted for another batch, for models whose
    artifacts take one batch only (recurrent ones); without it, the baseline is resized.
    ``sentinel``: the host's small model (``measure.sentinel.host_sentinel``), timed around
    every comparison; without it, only the interval and the baseline's drift tell noise.
    """

    baseline_path: Path
    baseline_runtime: Runtime
    peak: dict[str, float]
    lock: HostLock
    policy: TimingPolicy = TimingPolicy()
    baseline_at: Callable[[int], Path] | None = None
    sentinel: Path | None = None
    _baselines: dict[Path, Executor] = field(default_factory=dict, repr=False)
    _sentinels: dict[int, Callable[[], object]] = field(default_factory=dict, repr=False)
    # The sentinel's p50 in every reading, by thread count.
    _sentinel_p50s: dict[int, list[float]] = field(default_factory=dict, repr=False)
    # The baseline's p50 in each comparison kept, by batch size.
    _baseline_p50s: dict[int, list[float]] = field(default_factory=dict, repr=False)

    def _usual_baseline_ms(self, batch: int) -> float | None:
        """The baseline's median p50 over the timer's last ``drift_window`` comparisons at
        ``batch`` (None until ``drift_after`` of them)."""
        seen = self._baseline_p50s.get(batch, [])[-self.policy.drift_window :]
        return statistics.median(seen) if len(seen) >= self.policy.drift_after else None

    def _drift_ratio(self, comparison: Comparison, batch: int) -> float:
        """How many times slower or faster than its usual (``_usual_baseline_ms``) the
        baseline ran (1.0 until there is a usual)."""
        usual = self._usual_baseline_ms(batch)
        if usual is None:
            return 1.0
        ratio = comparison.baseline.p50_ms / usual
        return max(ratio, 1 / ratio)

    def drifted(self, comparison: Comparison, batch: int) -> bool:
        """Whether the baseline ran ``drift_limit`` times slower or faster than usual."""
        return self._drift_ratio(comparison, batch) > self.policy.drift_limit

    def _sentinel_ms(self, threads: int) -> float | None:
        """The sentinel's p50 now, at ``threads`` on the cores pinned (None: no sentinel)."""
        if self.sentinel is None:
            return None
        if threads not in self._sentinels:
            self._sentinels[threads] = sentinel_call(self.sentinel, threads)
        return median_call_ms(self._sentinels[threads], self.policy.sentinel_seconds)

    def sentinel_ratio(self, threads: int, readings: list[float | None]) -> float | None:
        """The slowest of ``readings`` over the sentinel's usual at ``threads`` (None until
        ``drift_after`` readings, or without readings)."""
        seen = self._sentinel_p50s.get(threads, [])[-self.policy.drift_window :]
        now = [r for r in readings if r is not None]
        if len(seen) < self.policy.drift_after or not now:
            return None
        return max(now) / usual_ms(seen)

    def _off(self, ratio: float | None) -> bool:
        return ratio is not None and ratio > self.policy.phase_limit

    def _noisy(self, comparison: Comparison, batch: int, sentinel: float | None = None) -> bool:
        return comparison.relative_width > self.policy.noise_limit or self.drifted(comparison, batch) or self._off(sentinel)

    def _baseline_executor(self, batch: int) -> Executor:
        path = self.baseline_path
        if self.baseline_at is not None and batch != self.baseline_runtime.batch_size:
            with self.lock.shared():  # converting is work: not while another process times
                path = self.baseline_at(batch)
        if path not in self._baselines:
            self._baselines[path], _ = open_executor(path, self.baseline_runtime)
        return self._baselines[path]

    def time(self, path: Path, recipe: Recipe, x: np.ndarray, *, final: bool = False, beat: float = 1.0, expect: float | None = None) -> Timed:
        """Load ``path`` as ``recipe`` deploys it, time its cold start, then compare it with
        the baseline at the same batch, under the host lock and pinned: with the policy's
        search protocol, or (``final``) its full one.

        ``beat``: the speed-up a search timing must be able to reach to be worth taking again
        when noisy (at least the baseline's 1; the caller passes the fastest speed-up measured
        for a model at least as accurate, so a timing whose whole interval is below it is
        dominated however it is read).

        ``expect``: the best speed-up the study read for a deployment of the same computation
        (the same shape deployed the same way, its weights aside). A search timing whose whole
        interval is below ``shape_limit`` of it was slowed by something other than the artifact,
        whatever the interval, baseline and sentinel say, and is taken again (when ``expect``
        could beat ``beat``; the one retake a search timing has); of the two, one that is not
        so slow is kept. On the demo, a width-0.5 student kept a reading of ×3.54 (×3.36-3.70,
        not flagged) where its study's best of that shape was ×4.79, and other runs read it at
        ×6.1-6.2: it was the most accurate member of its front, and that one reading set its
        study's hypervolume below random search's."""
        runtime = recipe.runtime
        protocol = self.policy.protocol if final else self.policy.search
        sample = batch_of(x, runtime.batch_size)
        baseline = self._baseline_executor(runtime.batch_size)
        cores: dict[Side, tuple[int, ...]] = {
            "candidate": cores_for(runtime.threads),
            "baseline": cores_for(self.baseline_runtime.threads),
        }
        threads = runtime.threads
        with self.lock.exclusive() as waited, pinning() as pin:
            pin(cores["candidate"])
            executor, load_s = open_executor(path, runtime)
            call = executor.timed_call(sample)
            t0 = time.perf_counter()
            call()
            cold_s = load_s + time.perf_counter() - t0
            baseline_call = baseline.timed_call(sample)
            before = self._sentinel_ms(threads)
            readings = [before] if before is not None else []
            best: tuple[Comparison, float | None] | None = None
            attempts = 0

            def slow_for_shape(c: Comparison) -> bool:
                return not final and expect is not None and c.speedup_high < self.policy.shape_limit * expect

            def rank(taken: tuple[Comparison, float | None]) -> tuple[bool, bool, bool, float]:
                c, ratio = taken  # a usual machine first, as fast as its shape, then the narrowest
                return (self.drifted(c, runtime.batch_size), self._off(ratio), slow_for_shape(c), c.relative_width)

            retakes = self.policy.retries if final else self.policy.search_retries
            while attempts <= retakes:
                attempts += 1
                c = measure_interleaved(
                    call, baseline_call, protocol, cold_start_s=cold_s, before_block=lambda side: pin(cores[side])
                )
                pin(cores["candidate"])
                after = self._sentinel_ms(threads)
                taken = (c, self.sentinel_ratio(threads, [before, after]))
                readings += [after] if after is not None else []
                before = after
                if best is None or rank(taken) < rank(best):
                    best = taken
                c, ratio = best
                slow = slow_for_shape(c)
                if not self._noisy(c, runtime.batch_size, ratio) and not slow:
                    break
                # Off by how much the machine was: a biased reading is scaled by it before it
                # is judged off the front; one slow for its shape may read as its shape did.
                bias = max(self._drift_ratio(c, runtime.batch_size), ratio or 1.0)
                reach = max(c.speedup_high * bias, expect or 0.0) if slow else c.speedup_high * bias
                if not final and reach < max(beat, 1.0):
                    break  # a search trial wholly slower than what it must beat is no trade-off however read
                if attempts > retakes:
                    break  # no retake follows: nothing to wait for
                usual = self._usual_baseline_ms(runtime.batch_size)
                if usual is not None and taken[0].baseline.p50_ms > self.policy.drift_limit * usual:
                    # Taken again once the baseline alone runs as usual (or after
                    # ``phase_wait``): on the baseline's cores, a short reading at a time.
                    deadline = time.perf_counter() + self.policy.phase_wait
                    pin(cores["baseline"])
                    while median_call_ms(baseline_call, self.policy.sentinel_seconds) > self.policy.drift_limit * usual and time.perf_counter() < deadline:
                        pass
                    pin(cores["candidate"])
                if self._off(taken[1]):
                    # Taken again once the machine runs small models as usual (or after
                    # ``phase_wait``): a retake right away mostly falls in the same phase.
                    deadline = time.perf_counter() + self.policy.phase_wait
                    while self._off(self.sentinel_ratio(threads, [before])) and time.perf_counter() < deadline:
                        before = self._sentinel_ms(threads)
                        readings += [before] if before is not None else []
        assert best is not None
        best_comparison, ratio = best
        noisy = self._noisy(best_comparison, runtime.batch_size, ratio)
        usual = self._usual_baseline_ms(runtime.batch_size)
        drift = best_comparison.baseline.p50_ms / usual if usual else None
        self._baseline_p50s.setdefault(runtime.batch_size, []).append(best_comparison.baseline.p50_ms)
        if noisy and drift is not None and drift > 1:
            best_comparison = read_against_usual(best_comparison, drift)
        self._sentinel_p50s.setdefault(threads, []).extend(readings)
        with self.lock.shared():  # freezing a graph is work: not while another process times
            try:
                macs = executor.macs(sample)
            except Exception:  # an auxiliary figure: an op layout we cannot read costs only it
                macs = None
        peak = self.peak.get(peak_key(recipe.precision, runtime.engine, runtime.threads))
        floor = macs * runtime.batch_size / peak * 1e3 if macs and peak else None
        return Timed(
            comparison=best_comparison,
            noisy=noisy,
            attempts=attempts,
            macs=macs,
            compute_floor_ms=floor,
            sentinel_ratio=ratio,
            lock_wait_s=waited,
            cores=cores["candidate"],
            baseline_cores=cores["baseline"],
            batch_size=runtime.batch_size,
            baseline_drift=drift,
        )
