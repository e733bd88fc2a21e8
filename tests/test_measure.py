"""The latency statistics, driven by a fake clock: no TensorFlow, no real timing."""

import numpy as np
import pytest

from autotune.measure.stats import LatencyProtocol, artifact_size, measure_interleaved, measure_latency, median_interval, summarize


class FakeClock:
    """Time advances only when the measured call runs, by the next scripted duration."""

    def __init__(self, durations):
        self.now = 0.0
        self.durations = list(durations)
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def call(self) -> None:
        self.now += self.durations[min(self.calls, len(self.durations) - 1)]
        self.calls += 1


def test_warm_up_calls_are_excluded_from_the_percentiles():
    # 10 slow warm-up calls (50 ms each, like a first XLA call), then 1 ms calls.
    clock = FakeClock([0.050] * 10 + [0.001] * 10_000)
    proto = LatencyProtocol(warmup_calls=10, warmup_seconds=0.0, min_calls=20, min_seconds=0.0)
    stats = measure_latency(clock.call, proto, clock=clock)
    assert stats.p99_ms == pytest.approx(1.0)
    assert stats.calls == 20


def test_warm_up_lasts_at_least_its_time_as_well_as_its_count():
    clock = FakeClock([0.010] * 100_000)
    proto = LatencyProtocol(warmup_calls=2, warmup_seconds=0.5, min_calls=5, min_seconds=0.0)
    measure_latency(clock.call, proto, clock=clock)
    assert clock.calls == 50 + 5  # 0.5 s of 10 ms warm-up calls, then 5 timed


def test_both_the_minimum_count_and_the_minimum_time_are_met():
    clock = FakeClock([0.010] * 100_000)
    proto = LatencyProtocol(warmup_calls=0, warmup_seconds=0.0, min_calls=10, min_seconds=1.0)
    assert measure_latency(clock.call, proto, clock=clock).calls == 100  # time decided
    clock = FakeClock([0.010] * 100_000)
    proto = LatencyProtocol(warmup_calls=0, warmup_seconds=0.0, min_calls=300, min_seconds=1.0)
    assert measure_latency(clock.call, proto, clock=clock).calls == 300  # count decided


def test_a_slow_model_stops_at_the_time_cap():
    clock = FakeClock([2.0] * 100)
    proto = LatencyProtocol(warmup_calls=1, warmup_seconds=0.0, min_calls=100, min_seconds=1.0, max_seconds=10.0)
    assert measure_latency(clock.call, proto, clock=clock).calls == 5


def test_percentiles_mean_and_spread_are_right():
    samples = np.arange(1, 101) / 1000.0  # 1..100 ms
    s = summarize(samples, cold_start_s=0.25)
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.mean_ms == pytest.approx(50.5)
    assert s.std_ms == pytest.approx(np.std(np.arange(1, 101)))
    assert s.cold_start_ms == pytest.approx(250.0)
    metrics = s.as_metrics()
    assert metrics["latency_p50_ms"] == pytest.approx(50.5) and metrics["cold_start_ms"] == pytest.approx(250.0)


def test_protocol_rejects_nonsense():
    with pytest.raises(ValueError):
        LatencyProtocol(min_calls=0)
    with pytest.raises(ValueError):
        LatencyProtocol(min_seconds=5.0, max_seconds=1.0)


def test_size_and_gzip_size_show_compressibility(tmp_path):
    sparse = tmp_path / "sparse.bin"
    sparse.write_bytes(bytes(100_000))
    dense = tmp_path / "dense.bin"
    dense.write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    assert artifact_size(sparse)[0] == artifact_size(dense)[0] == 100_000
    assert artifact_size(sparse)[1] < 1_000 < 90_000 < artifact_size(dense)[1]


class TwoSidedClock:
    """A fake clock for interleaved timing: each side's call advances time by its own
    duration, which may change per block (set by the before_block hook) and may drift."""

    def __init__(self, candidate_s, baseline_s, drift_per_s=0.0):
        self.now = 0.0
        self.duration = {"candidate": candidate_s, "baseline": baseline_s}
        self.drift = drift_per_s
        self.blocks: list[str] = []

    def __call__(self) -> float:
        return self.now

    def caller(self, side):
        def call():
            # A machine that slows down over time: every call takes (1 + drift·t) longer.
            self.now += self.duration[side] * (1 + self.drift * self.now)

        return call

    def before_block(self, side):
        self.blocks.append(side)


def _proto(**kw):
    base = dict(warmup_calls=5, warmup_seconds=0.0, min_calls=50, min_seconds=0.0, max_seconds=100.0, rounds=10)
    return LatencyProtocol(**(base | kw))


def test_interleaved_ratio_is_the_speedup_and_blocks_alternate_abba():
    clock = TwoSidedClock(0.001, 0.003)
    c = measure_interleaved(clock.caller("candidate"), clock.caller("baseline"), _proto(), clock=clock, before_block=clock.before_block)
    assert c.speedup == pytest.approx(3.0)
    assert (c.speedup_low, c.speedup_high) == (pytest.approx(3.0), pytest.approx(3.0))
    assert c.candidate.p50_ms == pytest.approx(1.0) and c.baseline.p50_ms == pytest.approx(3.0)
    assert c.candidate.calls == c.baseline.calls == 50  # 10 rounds of 5 timed calls each
    assert clock.blocks[:4] == ["candidate", "baseline", "baseline", "candidate"]
    assert len(clock.blocks) == 20


def test_interleaving_cancels_a_machine_that_slows_down():
    # The machine slows by 2 % per second of timing: over the run the absolute p50 of the
    # candidate is far off its 1 ms, but each round's ratio stays near 3.
    clock = TwoSidedClock(0.001, 0.003, drift_per_s=0.02)
    proto = _proto(min_calls=2000, rounds=10)
    c = measure_interleaved(clock.caller("candidate"), clock.caller("baseline"), proto, clock=clock)
    assert c.candidate.p50_ms > 1.05  # the absolute time drifted by more than 5 %
    assert c.speedup == pytest.approx(3.0, rel=0.01)
    assert c.speedup_low <= 3.0 * 1.001 and c.speedup_high >= 3.0 * 0.99


def test_the_interval_is_the_order_statistics_of_the_round_ratios():
    ratios = [2.0, 2.4, 2.1, 2.9, 2.2, 2.3, 2.5, 2.6, 1.5, 2.7]  # per round, in order
    clock = TwoSidedClock(0.001, 0.002)
    blocks = iter(range(100))

    def before(side):
        if side == "candidate":  # set this round's candidate speed so its ratio is ratios[k]
            clock.duration["candidate"] = 0.002 / ratios[next(blocks)]

    c = measure_interleaved(clock.caller("candidate"), clock.caller("baseline"), _proto(), clock=clock, before_block=before)
    assert c.speedup == pytest.approx(np.median(ratios))
    # 10 rounds at 95 %: the 2nd smallest and 2nd largest (sign test, coverage 97.9 %).
    assert (c.speedup_low, c.speedup_high) == (pytest.approx(2.0), pytest.approx(2.7))
    assert c.relative_width == pytest.approx(0.7 / np.median(ratios))


def test_median_interval_ranks_and_too_few_rounds():
    assert median_interval([5, 1, 4, 2, 3, 6], 0.95) == (1, 6)  # n=6: the extremes (96.9 %)
    assert median_interval(list(range(1, 21)), 0.95) == (6, 15)  # n=20: 6th and 15th
    with pytest.raises(ValueError, match="rounds"):
        median_interval([1, 2, 3, 4, 5], 0.95)  # 5 values cannot give 95 %
    with pytest.raises(ValueError):
        LatencyProtocol(rounds=4)


def test_a_search_trial_is_timed_with_the_screening_fraction_of_the_full_protocol():
    from autotune.measure.timing import TimingPolicy

    full = LatencyProtocol(warmup_calls=10, warmup_seconds=0.2, min_calls=100, min_seconds=1.0, max_seconds=20.0, rounds=10)
    policy = TimingPolicy(protocol=full, screening=0.5)
    search = policy.search
    assert (search.warmup_calls, search.min_calls, search.rounds) == (5, 50, 10)
    assert (search.warmup_seconds, search.min_seconds, search.max_seconds) == pytest.approx((0.1, 0.5, 10.0))
    # With a 1 ms call, the seconds decide: the search times half as many calls per side.
    timed = {}
    for name, proto in (("search", search), ("full", full)):
        clock = TwoSidedClock(0.001, 0.003)
        timed[name] = measure_interleaved(clock.caller("candidate"), clock.caller("baseline"), proto, clock=clock)
    assert timed["full"].candidate.calls == pytest.approx(1000, abs=10)
    assert timed["search"].candidate.calls == pytest.approx(timed["full"].candidate.calls / 2, abs=10)
    assert timed["search"].speedup == pytest.approx(3.0)
    assert TimingPolicy(protocol=full, screening=1.0).search == full
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="screening"):
            TimingPolicy(screening=bad)
