"""The latency statistics, driven by a fake clock: no TensorFlow, no real timing."""

import numpy as np
import pytest

from autotune.measure import LatencyProtocol, artifact_size, measure_latency, summarize


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
