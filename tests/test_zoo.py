"""The shapes users bring, end to end through the CLI: each model of the zoo (tests/zoo.py),
small and briefly trained, gets its baseline measured, its capabilities probed, a trained
technique where the probe allows one, and an export that re-verifies the written artifact.

A technique a model cannot take is a fact about the model: the probe leaves it out with its
reason, and the study completes its budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store
from tests import zoo

# Each study probes its model for real: nothing kept from another study of the same shape.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_probes")]
runner = CliRunner()

# One trained step the model allows (a student first, else thinner channels), else no training.
SPACE = '''
from autotune.search.capabilities import can
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques import ChannelPrune, Distill

def space(trial):
    steps = {"distill": Distill(width=0.5, temperature=2.0, alpha=0.5, epochs=1), "channel-prune": ChannelPrune(keep=0.5, epochs=1)}
    allowed = [name for name in steps if can(trial, name)] or ["none"]
    step = trial.suggest_categorical("step", allowed)
    chain = (steps[step],) if step in steps else ()
    return Recipe("fp32" if chain else "dynamic-int8", Runtime("litert", threads=1), steps=chain)
'''
# A space that does not ask the probe and always proposes QAT.
QAT_SPACE = '''
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques import QuantizeAware

def space(trial):
    trial.suggest_categorical("qat", [True])
    return Recipe("int8", Runtime("litert", threads=1), steps=(QuantizeAware(epochs=1),))
'''

# Small enough to train in seconds; what the test needs is each shape, not its accuracy.
QUICK = {"epochs": 1, "limit": 500}
# What each shape must allow (the probe may find more).
EXPECTED = {
    "nested-tf-keras": {"distill", "channel-prune", "prune"},
    "nested-keras3": {"distill", "channel-prune", "prune"},
    "mobilenet-v3-keras3": {"distill", "channel-prune"},
    "lstm-rows-keras3": {"distill"},
    "embedding-gru": {"distill"},
    "conv-relu-bn-h5": {"distill", "channel-prune", "prune"},
}


def _study(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=store.open_storage("sqlite:///studies/autotune.db"))


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


@pytest.mark.parametrize("shape", list(zoo.SHAPES))
def test_each_shape_searches_and_exports(shape: str, zoo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, data = zoo.SHAPES[shape](zoo_dir / shape, **QUICK)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zoo_space.py").write_text(SPACE)
    run = runner.invoke(app, ["run", "--study", "zoo", "--model", str(model), "--data", str(data), "--space", "zoo_space.py",
                              "--budget", "3", "--max-accuracy-drop", "0.5"])
    assert run.exit_code == 0, run.output
    study = _study("zoo")
    trials = study.get_trials()
    assert store.evaluated(trials) == 3 and all(t.state != TrialState.RUNNING for t in trials)
    assert trials[0].state == TrialState.COMPLETE  # the fp32 baseline converted and was measured

    found = study.user_attrs[store.CAPABILITIES]
    allowed = {name for name, why in found["techniques"].items() if why is None}
    assert EXPECTED[shape] <= allowed, found["techniques"]
    assert found["precisions"]["fp32"] is None and found["engines"]["litert"] is None

    trained = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs[store.RECIPE]["steps"]]
    assert trained, [(t.number, t.state, t.user_attrs.get(store.FAIL_REASON)) for t in trials]
    t = trained[0]
    m = t.user_attrs[store.METRICS]
    assert m["speedup_low"] <= m["speedup"] <= m["speedup_high"]
    lineage = t.user_attrs[store.LINEAGE]
    assert lineage[1]["params"] < lineage[1]["params_before"]  # a thinner model really was built

    out = tmp_path / "export"
    exported = runner.invoke(app, ["export", "zoo", "--out", str(out), "--trial", str(t.number)])
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / manifest["artifact"]).is_file()
    assert manifest["verified_accuracy"] == pytest.approx(m["accuracy"])


def test_a_technique_the_model_cannot_take_is_left_out_with_its_reason(zoo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, data = zoo.conv_relu_bn_h5(zoo_dir / "bn-after-relu", **QUICK)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "qat_space.py").write_text(QAT_SPACE)
    run = runner.invoke(app, ["run", "--study", "bn", "--model", str(model), "--data", str(data), "--space", "qat_space.py",
                              "--budget", "4"])
    assert run.exit_code == 0, run.output  # never "5 failures in a row": the study completes
    study = _study("bn")
    why = study.user_attrs[store.CAPABILITIES]["techniques"]["qat"]
    assert why and "BatchNormalization" in why, why
    assert "left out qat" in run.output.replace("\n", " ")
    searched = [t for t in study.get_trials() if store.REFERENCE not in t.user_attrs]
    assert searched and all(t.state == TrialState.PRUNED for t in searched)
    assert all("qat does not apply to this model" in t.user_attrs[store.FAIL_REASON] for t in searched)

    shown = runner.invoke(app, ["show", "bn"])
    assert shown.exit_code == 0, shown.output
    assert "left out qat" in shown.output and "BatchNormalization" in shown.output
