"""A trial's record through Optuna's user attributes and back, and the studies stored before it
existed (no TensorFlow)."""

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from autotune.results.front import row
from autotune.storage import store
from autotune.storage.record import (
    ACCURACY,
    MAE,
    Metrics,
    Quality,
    RecordWriter,
    Remeasurement,
    TrialRecord,
    queued,
    remeasurements,
    write_remeasurement,
)

METRICS = {
    "accuracy": 0.981,
    "top5_accuracy": 1.0,
    "size_bytes": 24_000,
    "gzip_bytes": 20_000,
    "latency_p50_ms": 0.21,
    "latency_p90_ms": 0.23,
    "latency_p99_ms": 0.3,
    "speedup": 2.4,
    "speedup_low": 2.3,
    "speedup_high": 2.5,
    "noisy": False,
    "batch_size": 1,
    "throughput_sps": 4700.0,
    "accuracy_drop": 0.008,
    "quality_loss": 0.008,
    "feasible": True,
}


def _full() -> TrialRecord:
    return TrialRecord(
        recipe_text="int8 · litert · 2 threads",
        recipe={"precision": "int8", "steps": [], "runtime": {"threads": 2, "batch_size": 1}},
        reference="seeds-int8",
        warm_start="old#4",
        env_id="0123456789ab",
        metrics=Metrics(dict(METRICS)),
        fail_reason=None,
        lineage=({"step": "base"}, {"step": "convert", "precision": "int8"}),
        timings={"work_lock_wait_s": 0.0, "train_s": 0.1, "latency_s": 2.0},
        cache={"hits": ["convert:int8:tflite"], "misses": []},
        measurement={"cores": [0], "attempts": 1},
        worker="host:1/2",
        process={"pid": 2, "rss_mb": 512.0, "restarts": 0},
        surplus=True,
    )


def test_a_record_reads_back_from_a_stored_trial_unchanged(tmp_path):
    record = _full()
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/r.db", directions=["minimize", "maximize"])
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.21, 0.981], user_attrs=record.to_attrs()))
    stored = optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{tmp_path}/r.db").trials[0]
    assert TrialRecord.from_trial(stored) == record
    assert list(stored.user_attrs[store.METRICS]) == list(METRICS)  # the order `show` lists them in


def test_only_the_parts_that_are_set_are_stored_under_the_keys_studies_always_had():
    assert TrialRecord().to_attrs() == {}
    assert queued(reference="fp32-baseline") == {store.REFERENCE: "fp32-baseline"}
    assert queued(warm_start="old#3") == {store.WARM_START: "old#3"}
    attrs = _full().to_attrs()
    assert attrs[store.LINEAGE] == [{"step": "base"}, {"step": "convert", "precision": "int8"}]  # a JSON list
    assert attrs[store.METRICS] == METRICS and attrs[store.SURPLUS] is True
    assert store.FAIL_REASON not in attrs and store.GATED not in attrs


def test_a_study_stored_before_the_record_reads_back():
    # The shape of an early study's trial: no quality_loss, no feasibility cushion, a gated
    # trial beside it, and an attribute that is not autotune's.
    old = {
        store.RECIPE_TEXT: "dynamic-int8 · litert · 1 thread",
        store.METRICS: {"accuracy": 0.97, "accuracy_drop": 0.02, "latency_p50_ms": 0.4, "latency_p90_ms": 0.5,
                        "latency_p99_ms": 0.6, "speedup": 1.5, "size_bytes": 9000, "gzip_bytes": 8000, "feasible": False},
        store.LINEAGE: [{"step": "base"}],
        store.ENV_ID: "aaa",
        "someone-else:note": "kept out of the record",
    }
    record = TrialRecord.from_attrs(old)
    assert record.timed and record.reference is None and record.lineage == ({"step": "base"},)
    m = record.metrics
    assert m.quality is ACCURACY and m.quality_value == 0.97 and m.quality_loss == 0.02  # the drop
    assert not m.feasible and m.batch_size == 1 and m.figures.speedup_low is None and not m.figures.noisy
    assert "someone-else:note" not in record.to_attrs()
    gated = TrialRecord.from_attrs({**old, store.GATED: "accuracy 0.9 after training"})
    assert not gated.timed and gated.gated.startswith("accuracy")
    r = row(create_trial(state=TrialState.COMPLETE, values=[0.4, 0.97], user_attrs=old))
    assert (r.quality_name, r.quality, r.quality_loss, r.env_id, r.remeasured) == ("accuracy", 0.97, 0.02, "aaa", False)


def test_the_writer_stores_each_part_as_the_trial_goes():
    class Sink:
        def __init__(self):
            self.user_attrs = {}

        def set_user_attr(self, key, value):
            self.user_attrs[key] = value

    sink = Sink()
    writer = RecordWriter(sink)
    writer.recipe("fp32 · litert · 2 threads")
    assert sink.user_attrs == {store.RECIPE_TEXT: "fp32 · litert · 2 threads"}
    writer.recipe("fp32 · litert · 2 threads", {"steps": []})
    writer.lineage(({"step": "base"},))
    writer.surplus("not run")
    writer.metrics(Metrics({"accuracy": 0.9}))
    assert sink.user_attrs[store.LINEAGE] == [{"step": "base"}] and sink.user_attrs[store.SURPLUS] is True
    assert sink.user_attrs[store.FAIL_REASON] == "not run" and sink.user_attrs[store.METRICS] == {"accuracy": 0.9}
    assert TrialRecord.from_attrs(sink.user_attrs).recipe == {"steps": []}


def test_the_quality_follows_the_task():
    assert Quality.for_task("classification") is ACCURACY and Quality.for_task("regression") is MAE
    assert ACCURACY.higher_is_better and not MAE.higher_is_better
    base = {"accuracy": 0.99, "mae": 0.10}
    assert ACCURACY.loss({"accuracy": 0.97}, base) == pytest.approx({"accuracy_drop": 0.02, "quality_loss": 0.02})
    assert MAE.loss({"mae": 0.13}, base) == pytest.approx({"mae_increase": 0.03, "quality_loss": 0.03})
    assert Quality.of({"mae": 0.1, "latency_p50_ms": 1.0}) is MAE and Quality.of({"accuracy": 0.9}) is ACCURACY


def test_judged_metrics_add_the_loss_and_the_objectives_feasibility_in_order():
    measured = Metrics.measured({"mae": 0.12}, 100, 90, {"latency_p50_ms": 1.0})
    judged = measured.judged(MAE, {"mae": 0.10}, lambda m: m["quality_loss"] <= 0.01)
    assert list(judged.values) == ["mae", "size_bytes", "gzip_bytes", "latency_p50_ms", "mae_increase", "quality_loss", "feasible"]
    assert judged.feasible is False and judged.quality_loss == pytest.approx(0.02)
    assert "feasible" not in measured.values  # judging makes new metrics
    gated = Metrics.gated_at(ACCURACY, 0.5, {"trial": 0, "accuracy": 0.99, "latency_p50_ms": 1.0})
    assert gated.values == {"accuracy": 0.5, "latency_p50_ms": 1.0, "gated": True} and gated.gated


def test_the_end_of_run_remeasurement_lives_on_the_study():
    study = optuna.create_study()
    figures = {"latency_p50_ms": 0.3, "latency_p90_ms": 0.4, "latency_p99_ms": 0.5, "speedup": 3.0, "noisy": True}
    write_remeasurement(study, 4, Remeasurement(figures))
    write_remeasurement(study, 6, Remeasurement({"failed": "the artifact no longer loads"}))
    assert study.user_attrs[store.final_key(4)] == figures
    finals = remeasurements(study)
    assert finals[4].figures.noisy and finals[4].figures.latency_p50_ms == 0.3 and finals[4].failed is None
    assert finals[6].figures is None and finals[6].failed == "the artifact no longer loads"
