"""The demo, end to end through the CLI in-process: real TensorFlow, LiteRT and SQLite."""

from __future__ import annotations

import json
import shutil

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.measure.host import ALLOWED_CORES, peak_key
from autotune.measure.timing import TimingPolicy
from autotune.storage.record import remeasurements
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()
SEARCH, FULL = TimingPolicy().search, TimingPolicy().protocol
DEMO_MACS = 24_413_440  # conv 3×3: 32·32·32·1·9 + 32·32·32·32·9 + 16·16·64·32·9 + 16·16·64·64·9; dense 4096·128 + 128·10


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


def _study(name="demo"):
    st = store.open_storage("sqlite:///studies/autotune.db")
    return optuna.load_study(study_name=name, storage=st)


def _trials(name="demo"):
    return _study(name).get_trials()


def test_run_front_resume_and_export(workdir):
    result = _invoke("run", "--budget", "4", "--space", "quick")
    assert result.exit_code == 0, result.output
    assert "Pareto front of demo" in result.output

    trials = _trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    peaks = _study().user_attrs[store.PEAK]
    # The reference recipes run first, so every study can be compared with them.
    assert trials[0].user_attrs[store.RECIPE_TEXT] == "fp32 · litert · 2 threads"
    assert trials[0].user_attrs[store.REFERENCE] == "fp32-baseline"
    assert trials[1].user_attrs[store.RECIPE_TEXT].startswith("int8 · litert")
    for t in trials:
        m = t.user_attrs[store.METRICS]
        assert 0.9 < m["accuracy"] <= 1.0
        # A search trial is timed with the screening protocol (a fraction of the full one).
        assert m["latency_calls"] >= SEARCH.min_calls and m["latency_p50_ms"] <= m["latency_p90_ms"] <= m["latency_p99_ms"]
        assert t.values == [m["latency_p50_ms"], m["accuracy"]]
        # Timed against the baseline in the same sitting: a ratio with its interval.
        assert m["speedup_low"] <= m["speedup"] <= m["speedup_high"] and m["speedup_rounds"] == 10
        assert m["baseline_p50_ms"] > 0 and m["cold_start_ms"] > 0
        # The demo CNN's MACs, counted from the deployed graph whatever the precision or engine.
        assert m["macs"] == DEMO_MACS
        # The floor is those MACs at the host's recorded peak for this precision and thread
        # count, and × floor is p50 over it (how close to the floor a CPU gets is its own fact).
        rec = t.user_attrs[store.RECIPE]
        peak = peaks[peak_key(rec["precision"], rec["runtime"]["engine"], rec["runtime"]["threads"])]
        assert m["compute_floor_ms"] == pytest.approx(DEMO_MACS / peak * 1e3)
        assert m["floor_ratio"] == pytest.approx(m["latency_p50_ms"] / m["compute_floor_ms"])
        assert m["floor_ratio"] >= 1.0  # the peak is a ceiling: nothing measured beats it
        taken = t.user_attrs[store.MEASUREMENT]
        assert taken["calls"] == m["latency_calls"] and taken["baseline_calls"] >= SEARCH.min_calls
        threads = t.user_attrs[store.RECIPE]["runtime"]["threads"]
        assert len(taken["cores"]) == min(threads, len(ALLOWED_CORES))  # pinned to as many cores as threads
    base, seeds_int8 = trials[0].user_attrs[store.METRICS], trials[1].user_attrs[store.METRICS]
    assert base["accuracy_drop"] == 0.0
    assert 0.9 < base["speedup"] < 1.1  # the baseline timed against itself
    # Whichever precision wins on this CPU, the trial records it as measured: the sampler sees
    # the p50 it measured, and the ratio agrees with the two p50s taken in the same sitting
    # (the median of block ratios, not the ratio of medians, so not exactly).
    assert trials[1].values[0] == seeds_int8["latency_p50_ms"]
    assert seeds_int8["speedup"] == pytest.approx(seeds_int8["baseline_p50_ms"] / seeds_int8["latency_p50_ms"], rel=0.1)

    # The run ends by timing the front again; the table shows that, the search's figures stay.
    assert "re-measured #0" in result.output
    front = json.loads(_invoke("front", "demo", "--format", "json").output)
    keys = {"trial", "recipe", "params", "latency_p50_ms", "latency_p90_ms", "accuracy", "accuracy_drop", "size_bytes", "speedup"}
    assert front and all(keys <= set(row) for row in front)
    by_trial = {t.number: t for t in trials}
    finals = remeasurements(_study())
    assert SEARCH.min_seconds < FULL.min_seconds
    for row in front:
        assert row["remeasured"]
        # The front's figures are the full protocol's: these models run thousands of calls a
        # second, so each side is timed for its full seconds, not the search's half of them
        # (calls × p50 reads that time whatever the machine's speed during the re-measurement:
        # a count of calls alone read ×1.26 the search's once, the machine then running slower).
        final = finals[row["trial"]].values
        assert final["latency_calls"] >= FULL.min_calls
        assert final["latency_calls"] * final["latency_p50_ms"] / 1e3 > 0.7 * FULL.min_seconds > 1.2 * SEARCH.min_seconds
        assert row["search_latency_p50_ms"] == by_trial[row["trial"]].user_attrs[store.METRICS]["latency_p50_ms"]
        assert row["speedup_low"] <= row["speedup"] <= row["speedup_high"]
    assert {0, 1} <= {row["trial"] for row in front}  # the references are always shown
    # The front is what the recorded figures make it: a member no other trial dominates on
    # (p50, accuracy) as the search measured them, whichever precision this CPU favours.
    def dominates(a, b):
        return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])

    members = [r for r in front if r["on_front"]]
    assert members
    for r in members:
        mine = by_trial[r["trial"]].values
        assert not any(dominates(t.values, mine) for t in trials if t.number != r["trial"])
    for t in trials:
        if t.number not in {r["trial"] for r in members}:
            assert any(dominates(by_trial[r["trial"]].values, t.values) or by_trial[r["trial"]].values == t.values for r in members)

    csv_out = _invoke("front", "demo", "--format", "csv").output.splitlines()
    assert csv_out[0].startswith("trial,recipe,params") and len(csv_out) == len(front) + 1

    # The budget is the study's total: resume raises it, a repeated run adds nothing. (A
    # proposal that repeats a measured configuration is answered from its record and fills
    # no budget, so the counted trials, not all trials, are the budget.)
    assert _invoke("resume", "demo", "--budget", "5").exit_code == 0
    assert store.evaluated(_trials()) == 5
    counted = len(_trials())
    again = _invoke("run", "--budget", "5", "--space", "quick")
    assert again.exit_code == 0 and len(_trials()) == counted and store.evaluated(_trials()) == 5

    refused = _invoke("run", "--max-accuracy-drop", "0.05")
    assert refused.exit_code == 2
    assert "created with --max-accuracy-drop 0.01" in refused.output
    assert len(_trials()) == counted

    studies = _invoke("studies")
    assert "demo" in studies.output and "5" in studies.output

    out = workdir / "exported"
    exported = _invoke("export", "demo", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((out / "manifest.json").read_text())
    artifact = out / manifest["artifact"]
    assert artifact.exists()
    assert manifest["study"] == "demo"
    assert manifest["verified_accuracy"] == manifest["metrics"]["accuracy"]
    assert manifest["baseline"]["trial"] == 0
    assert manifest["environment"]["cores"] >= 1 and "tensorflow" in manifest["environment"]
    # The default choice: the fastest feasible row of the table as it stands (final figures).
    now = json.loads(_invoke("front", "demo", "--format", "json").output)
    fastest = min((r for r in now if r["accuracy_drop"] <= 0.01), key=lambda r: r["latency_p50_ms"])
    assert manifest["trial"] == fastest["trial"]
    assert manifest["final_metrics"]["latency_p50_ms"] == fastest["latency_p50_ms"]

    not_empty = _invoke("export", "demo", "--out", str(out))
    assert not_empty.exit_code == 2 and "not empty" in not_empty.output


def test_export_of_a_tensorflow_trial_writes_a_saved_model(workdir):
    space = workdir / "tf_space.py"
    space.write_text(
        "from autotune.search.recipe import Recipe, Runtime\n"
        "def space(trial):\n"
        "    xla = trial.suggest_categorical('xla', [True])\n"
        "    return Recipe('fp32', Runtime('tensorflow', threads=2, xla=xla))\n"
    )
    assert _invoke("run", "--study", "tf", "--budget", "3", "--space", str(space)).exit_code == 0
    out = workdir / "tf_export"
    result = _invoke("export", "tf", "--out", str(out), "--trial", "2")
    assert result.exit_code == 0, result.output
    assert (out / "saved_model" / "saved_model.pb").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"] == "fp32 · tensorflow xla"
    assert manifest["metrics"]["cold_start_ms"] > manifest["metrics"]["latency_p50_ms"]  # XLA compiles on first call


def test_export_refuses_an_artifact_that_does_not_reproduce_its_record(workdir):
    assert _invoke("run", "--budget", "2").exit_code == 0
    cache = workdir / "studies" / "demo" / "cache"
    # Replace the int8 artifact of trial 1 with the fp32 one, as a stale cache would.
    trials = _trials()
    entries = {t.number: t.user_attrs[store.LINEAGE] for t in trials}
    assert entries[1][-1]["precision"] == "int8"
    tflites = sorted(cache.glob("*/model.tflite"), key=lambda p: p.stat().st_size)
    int8_file, fp32_file = tflites[0], tflites[-1]
    shutil.copyfile(fp32_file, int8_file)
    if trials[0].user_attrs[store.METRICS]["accuracy"] == trials[1].user_attrs[store.METRICS]["accuracy"]:
        pytest.skip("int8 and fp32 score the same here; a swap cannot be told apart by accuracy")
    result = _invoke("export", "demo", "--out", str(workdir / "bad"), "--trial", "1")
    assert result.exit_code == 1
    assert "scores accuracy" in result.output and "trial 1 recorded" in result.output


TECHNIQUE_SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques import ChannelPrune, Distill, QuantizeAware

def space(trial):
    if trial.number == 2:  # three channels a layer and no fine-tuning: far past any limit
        return Recipe("fp32", Runtime("litert", threads=1), steps=(ChannelPrune(keep=0.1, epochs=0),))
    steps = (Distill(width=0.5, temperature=4.0, alpha=0.9, epochs=4), ChannelPrune(keep=0.75, epochs=1), QuantizeAware())
    # Trial 4 deploys trial 3's model another way (the same configuration twice would be a
    # repeat, answered from the record): the whole chain and its int8 conversion come from the cache.
    return Recipe("int8", Runtime("litert", threads=2 if trial.number == 4 else 1), steps=steps)
"""


def test_trained_candidates_are_gated_measured_cached_and_exported(workdir):
    (workdir / "chains.py").write_text(TECHNIQUE_SPACE)
    result = _invoke("run", "--study", "t", "--budget", "5", "--space", "chains.py")
    assert result.exit_code == 0, result.output
    assert "gated" in result.output
    trials = _trials("t")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    base = trials[0].user_attrs[store.METRICS]

    # The accuracy gate: recorded with its accuracy and reason, never converted or timed.
    gated = trials[2]
    assert "not converted or timed" in gated.user_attrs[store.GATED]
    m = gated.user_attrs[store.METRICS]
    assert m["gated"] and m["accuracy_drop"] > 0.03 and not m["feasible"]
    assert gated.user_attrs[store.CACHE]["misses"] == ["channel-prune"]  # no conversion
    assert "latency_s" not in gated.user_attrs[store.TIMINGS]
    assert gated.values[0] == base["latency_p50_ms"]  # the sampler sees no gain, not a fake one

    # The chain: trained once, then served from the cache with no training at all.
    first, again = trials[3], trials[4]
    assert first.user_attrs[store.CACHE]["misses"] == ["distill", "channel-prune", "qat", "convert:int8:tflite"]
    assert first.user_attrs[store.CACHE]["epochs_trained"] == 6
    assert again.user_attrs[store.CACHE]["misses"] == [] and again.user_attrs[store.CACHE]["epochs_reused"] == 6
    assert again.user_attrs[store.TIMINGS]["train_s"] < 2.0
    lineage = first.user_attrs[store.LINEAGE]
    assert [step["step"] for step in lineage] == ["base", "distill", "channel-prune", "qat", "convert"]
    assert lineage[2]["params"] < lineage[1]["params"] < lineage[1]["params_before"]
    trained = first.user_attrs[store.METRICS]
    assert trained["size_bytes"] < trials[1].user_attrs[store.METRICS]["size_bytes"]  # smaller than the seeds' int8
    assert trained["accuracy"] > 0.9

    front = json.loads(_invoke("front", "t", "--format", "json").output)
    assert 2 not in {row["trial"] for row in front}
    out = workdir / "picked"
    exported = _invoke("export", "t", "--out", str(out), "--trial", "3")
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verified_accuracy"] == trained["accuracy"]
    refused = _invoke("export", "t", "--out", str(workdir / "no"), "--trial", "2")
    assert refused.exit_code == 2 and "accuracy gate" in refused.output


def test_throughput_objective_searches_the_batch_and_scores_samples_per_second(workdir):
    result = _invoke("run", "--study", "tp", "--budget", "5", "--space", "quick", "--objective", "throughput")
    assert result.exit_code == 0, result.output
    assert "samples/s" in result.output
    trials = _trials("tp")
    searched = [t for t in trials if store.REFERENCE not in t.user_attrs]
    assert searched and all(t.params["batch_size"] in (1, 4, 16, 64) for t in searched)
    for t in trials:
        m = t.user_attrs[store.METRICS]
        batch = t.user_attrs[store.RECIPE]["runtime"]["batch_size"]
        assert m["batch_size"] == batch
        assert m["throughput_sps"] == pytest.approx(batch * 1e3 / m["latency_mean_ms"])
        assert t.values == [m["throughput_sps"], m["accuracy"]]
