"""The timer on real LiteRT artifacts whose speed difference is built in, so the assertions
hold on any CPU: a model made deliberately heavier must time slower than the light one it is
compared with, by about its extra work, and an artifact against itself must come out near 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.measure.host import HostLock
from autotune.measure.stats import LatencyProtocol
from autotune.measure.timing import Timer, TimingPolicy
from autotune.search.recipe import Recipe, Runtime

pytestmark = pytest.mark.slow

FAST = TimingPolicy(LatencyProtocol(warmup_calls=5, warmup_seconds=0.05, min_calls=50, min_seconds=0.3))


def _dense_stack(tmp: Path, name: str, width: int, depth: int) -> Path:
    """A plain MLP on 64 inputs converted to TFLite fp32: ``width`` sets its work (MACs grow as width²)."""
    from autotune._keras import keras
    from autotune.build.convert import to_tflite

    k = keras()
    inp = k.Input((64,))
    x = inp
    for _ in range(depth):
        x = k.layers.Dense(width, activation="relu")(x)
    model = k.Model(inp, k.layers.Dense(10)(x))
    folder = tmp / name
    folder.mkdir()
    return to_tflite(model, "fp32", np.zeros((1, 64), np.float32), folder)


def test_a_deliberately_heavier_model_times_slower_by_its_extra_work(tmp_path: Path) -> None:
    light = _dense_stack(tmp_path, "light", width=32, depth=2)  # ~3 k MACs
    heavy = _dense_stack(tmp_path, "heavy", width=512, depth=4)  # ~830 k MACs: hundreds of times the work
    recipe = Recipe("fp32", Runtime("litert", threads=1))
    timer = Timer(light, recipe.runtime, {"fp32/1": 1e10}, HostLock(tmp_path / "lock"), FAST)
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)

    slower = timer.time(heavy, recipe, x)
    m = slower.metrics()
    assert m["speedup_low"] <= m["speedup"] <= m["speedup_high"]
    # Far more work is slower on any machine: the interval lies wholly below 1.
    assert m["speedup_high"] < 0.5, m
    assert m["macs"] > 100 * timer.time(light, recipe, x).metrics()["macs"]
    # The floor is the counted MACs at the given peak, and the ratio is p50 over it.
    assert m["compute_floor_ms"] == pytest.approx(m["macs"] / 1e10 * 1e3)
    assert m["floor_ratio"] == pytest.approx(m["latency_p50_ms"] / m["compute_floor_ms"])

    itself = timer.time(light, recipe, x).metrics()
    assert itself["speedup_low"] <= itself["speedup"] <= itself["speedup_high"]
    assert 0.8 < itself["speedup"] < 1.25  # the same artifact on both sides: the method's own error


def test_a_noisy_search_timing_is_taken_again_and_keeps_the_narrowest(tmp_path: Path) -> None:
    from dataclasses import replace

    light = _dense_stack(tmp_path, "light", width=32, depth=2)
    # Retries are for comparisons that can compete: the candidate is timed against a baseline
    # with hundreds of times its work, so it is faster on any machine. (Against itself, an
    # interval lies wholly below 1 often enough, and such a search timing is not retaken.)
    heavy = _dense_stack(tmp_path, "heavy", width=512, depth=4)
    recipe = Recipe("fp32", Runtime("litert", threads=1))
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    # A noise limit no comparison meets: every search timing counts as noisy.
    strict = replace(FAST, noise_limit=0.0)
    again = Timer(heavy, recipe.runtime, {}, HostLock(tmp_path / "lock"), strict).time(light, recipe, x)
    assert again.comparison.speedup_low > 1
    assert again.attempts == 1 + strict.search_retries == 2 and again.noisy
    assert again.metrics()["measurements"] == 2
    once = Timer(heavy, recipe.runtime, {}, HostLock(tmp_path / "lock"), replace(strict, search_retries=0)).time(light, recipe, x)
    assert once.attempts == 1
    # Nor is one whose whole interval is below what a model at least as accurate reached:
    # however it is read, it is off the front.
    beaten = Timer(heavy, recipe.runtime, {}, HostLock(tmp_path / "lock"), strict).time(light, recipe, x, beat=10 * again.comparison.speedup_high)
    assert beaten.attempts == 1 and beaten.noisy
    # A noisy comparison wholly slower than the baseline is not taken again in the search
    # (it cannot compete for the front), but is at the end of a run.
    slow = Timer(light, recipe.runtime, {}, HostLock(tmp_path / "lock"), strict)
    assert slow.time(heavy, recipe, x).attempts == 1
    assert slow.time(heavy, recipe, x, final=True).attempts == 1 + strict.retries
    # A comparison within the limit is taken once.
    calm = Timer(heavy, recipe.runtime, {}, HostLock(tmp_path / "lock"), replace(FAST, noise_limit=10.0)).time(light, recipe, x)
    assert calm.attempts == 1 and not calm.noisy


def test_a_search_timing_far_slower_than_its_shape_read_before_is_taken_again(tmp_path: Path) -> None:
    from dataclasses import replace

    light = _dense_stack(tmp_path, "light", width=32, depth=2)
    heavy = _dense_stack(tmp_path, "heavy", width=512, depth=4)  # the baseline: light is faster on any machine
    recipe = Recipe("fp32", Runtime("litert", threads=1))
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    # Nothing else counts as noisy: no interval, drift or sentinel reading; only the shape's.
    calm = replace(FAST, noise_limit=10.0, drift_limit=100.0, phase_limit=100.0)
    timer = Timer(heavy, recipe.runtime, {}, HostLock(tmp_path / "lock"), calm)
    first = timer.time(light, recipe, x)
    assert first.attempts == 1 and not first.noisy
    # The same computation read ten times faster before: this reading is taken again, and is
    # not flagged noisy (nothing in it was).
    doubted = timer.time(light, recipe, x, expect=10 * first.comparison.speedup_high)
    assert doubted.attempts == 2 and not doubted.noisy
    # Its shape read half as fast before: taken once.
    assert timer.time(light, recipe, x, expect=first.comparison.speedup / 2).attempts == 1
    # Its shape's best reading could not beat what it must: no trade-off however read.
    far = 10 * first.comparison.speedup_high
    assert timer.time(light, recipe, x, expect=far, beat=10 * far).attempts == 1
    # The end of a run times in full and trusts its own interval.
    assert timer.time(light, recipe, x, expect=far, final=True).attempts == 1


def test_a_comparison_whose_baseline_ran_unlike_its_usual_self_is_taken_again(tmp_path: Path) -> None:
    light = _dense_stack(tmp_path, "light", width=32, depth=2)
    heavy = _dense_stack(tmp_path, "heavy", width=512, depth=4)  # the baseline: light is faster on any machine
    recipe = Recipe("fp32", Runtime("litert", threads=1))
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    # No interval is too wide, only drift counts; and only by ×3, which timing noise is not.
    calm = replace_policy(noise_limit=10.0, drift_limit=3.0)
    timer = Timer(heavy, recipe.runtime, {}, HostLock(tmp_path / "lock"), calm)
    first = timer.time(light, recipe, x)
    assert first.comparison.speedup_low > 1
    assert first.attempts == 1 and not first.noisy  # nothing to compare with yet
    usual = first.comparison.baseline.p50_ms
    # The timer's earlier comparisons saw a baseline ten times slower: this one drifted.
    timer._baseline_p50s[1] = [usual * 10] * calm.drift_after
    drifted = timer.time(light, recipe, x)
    assert drifted.attempts == 2 and drifted.noisy
    # As usual: taken once.
    timer._baseline_p50s[1] = [usual] * calm.drift_after
    steady = timer.time(light, recipe, x)
    assert steady.attempts == 1 and not steady.noisy
    # A machine that changed for good: once the window holds mostly the new level, it is usual.
    timer._baseline_p50s[1] = [usual * 10] * (calm.drift_window // 2) + [usual] * (calm.drift_window // 2 + 1)
    assert timer.time(light, recipe, x).attempts == 1


def test_a_comparison_whose_baseline_stayed_slow_is_read_against_its_usual_speed(tmp_path: Path) -> None:
    import time

    light = _dense_stack(tmp_path, "light", width=32, depth=2)
    heavy = _dense_stack(tmp_path, "heavy", width=512, depth=4)  # the baseline: light is faster on any machine
    recipe = Recipe("fp32", Runtime("litert", threads=1))
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    calm = replace_policy(noise_limit=10.0, drift_limit=3.0, phase_wait=0.4)
    timer = Timer(heavy, recipe.runtime, {}, HostLock(tmp_path / "lock"), calm)
    usual = timer.time(light, recipe, x).comparison.baseline.p50_ms
    timer._baseline_p50s[1] = [usual] * calm.drift_after
    steady = timer.time(light, recipe, x)
    assert steady.attempts == 1 and not steady.noisy and steady.metrics()["baseline_drift"] < calm.drift_limit
    # The timer's earlier comparisons saw a baseline ten times faster: this one's baseline runs
    # ten times slower than usual, as a baseline slowed by something the candidate escaped.
    timer._baseline_p50s[1] = [usual / 10] * calm.drift_after
    t0 = time.perf_counter()
    slow = timer.time(light, recipe, x)
    # Taken again after waiting for the baseline alone to run as usual (it never did here).
    assert time.perf_counter() - t0 > calm.phase_wait
    assert slow.attempts == 2 and slow.noisy
    m = slow.metrics()
    assert 5 < m["baseline_drift"] < 20
    # Its speed-up is read against the usual baseline: about a tenth of what its own samples
    # read interleaved, not that flattering figure.
    assert m["speedup"] < interleaved(slow) / 3
    assert m["speedup"] * m["baseline_drift"] == pytest.approx(interleaved(slow), rel=0.15)
    assert m["speedup_low"] <= m["speedup"] <= m["speedup_high"]
    # A noisy comparison (here every one is) whose baseline ran slower than usual by less than
    # the drift limit is read against the usual too; one whose baseline ran faster is not.
    strict = Timer(heavy, recipe.runtime, {}, HostLock(tmp_path / "lock"), replace_policy(noise_limit=0.0, drift_limit=3.0, search_retries=0))
    strict._baseline_p50s[1] = [usual / 1.6] * calm.drift_after
    mild = strict.time(light, recipe, x)
    assert mild.noisy and 1.2 < mild.baseline_drift < 2.4
    assert mild.comparison.speedup < interleaved(mild) / 1.1
    assert mild.comparison.speedup * mild.baseline_drift == pytest.approx(interleaved(mild), rel=0.15)
    strict._baseline_p50s[1] = [usual * 1.6] * calm.drift_after
    fast = strict.time(light, recipe, x)
    assert fast.noisy and fast.baseline_drift < 1
    # Judged against its own samples, not an earlier reading: a light model times in microseconds,
    # and two readings of it a second apart differed by x1.4 on a busy machine.
    assert fast.comparison.speedup == pytest.approx(interleaved(fast), rel=0.15)


def interleaved(timed) -> float:
    """What ``timed``'s own samples read interleaved: its baseline's p50 over its candidate's."""
    c = timed.comparison
    return c.baseline.p50_ms / c.candidate.p50_ms


def replace_policy(**changes) -> TimingPolicy:
    from dataclasses import replace

    return replace(FAST, **changes)


def test_a_comparison_while_a_small_model_ran_slower_than_usual_is_taken_again(tmp_path: Path) -> None:
    from autotune.measure.sentinel import host_sentinel

    light = _dense_stack(tmp_path, "light", width=32, depth=2)
    heavy = _dense_stack(tmp_path, "heavy", width=512, depth=4)  # the baseline: light is faster on any machine
    recipe = Recipe("fp32", Runtime("litert", threads=1))
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    sentinel = host_sentinel(tmp_path / "host")
    assert host_sentinel(tmp_path / "host") == sentinel  # built once, kept
    # No interval is too wide and the baseline never drifts: only the sentinel counts.
    calm = replace_policy(noise_limit=10.0, drift_limit=100.0, phase_wait=0.5)
    timer = Timer(heavy, recipe.runtime, {}, HostLock(tmp_path / "lock"), calm, sentinel=sentinel)
    first = timer.time(light, recipe, x)
    assert first.attempts == 1 and not first.noisy and first.sentinel_ratio is None  # nothing to compare with yet
    read = timer._sentinel_p50s[1]
    assert len(read) == 2 and all(r > 0 for r in read)  # before and after the comparison
    # Its earlier readings were ten times faster: the machine ran small models slow this time.
    timer._sentinel_p50s[1] = [min(read) / 10] * calm.drift_after
    slow = timer.time(light, recipe, x)
    assert slow.attempts == 2 and slow.noisy
    assert slow.metrics()["sentinel_ratio"] > 5
    # Before the retake it waited for the sentinel to run as usual (it never did here): read
    # before, after each attempt, and every 0.05 s of the half-second wait between them.
    assert len(timer._sentinel_p50s[1]) - calm.drift_after > 3 + 4
    # Biased, but even ten times faster it could not beat what it must: taken once.
    timer._sentinel_p50s[1] = [min(read) / 10] * calm.drift_after
    beaten = timer.time(light, recipe, x, beat=1000 * slow.comparison.speedup_high)
    assert beaten.attempts == 1 and beaten.noisy
    # As usual (its earlier readings were slower still, so a phase of the machine now cannot
    # make this one slow): taken once.
    timer._sentinel_p50s[1] = [3 * max(read)] * calm.drift_after
    steady = timer.time(light, recipe, x)
    assert steady.attempts == 1 and not steady.noisy and steady.sentinel_ratio < calm.phase_limit
