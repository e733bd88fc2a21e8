"""The probe's findings are kept per host: a later study of the same model reuses them and
converts nothing to probe; a different model is probed. Real TensorFlow, LiteRT, the child."""

from __future__ import annotations

import json

import optuna
import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()
MODEL, DATA = "studies/_demo-v1/model.keras", "studies/_demo-v1/digits.npz"


def _capabilities(name: str) -> dict:
    study = optuna.load_study(study_name=name, storage=store.open_storage("sqlite:///studies/autotune.db"))
    return study.user_attrs[store.CAPABILITIES]


def _entries(name: str, workdir) -> set[str]:
    return {p.name for p in (workdir / "studies" / name / "cache").iterdir() if not p.name.startswith(".")}


def _run(study: str, model: str = MODEL) -> str:
    result = runner.invoke(app, ["run", "--study", study, "--model", model, "--data", DATA, "--budget", "1"])
    assert result.exit_code == 0, result.output
    return result.output.replace("\n", " ")


def test_a_second_study_of_the_same_model_reuses_the_probe_and_another_model_is_probed(workdir, fresh_probes):
    first = _run("first")
    assert "probe (" in first and "kept from an earlier probe" not in first
    (kept,) = fresh_probes.glob("probe-*.json")
    probed = _capabilities("first")
    assert json.loads(kept.read_text()) == probed and "kept" not in probed

    second = _run("second")
    assert f"probe: kept from an earlier probe of this model ({probed['seconds']:.1f} s saved)" in second
    assert _capabilities("second") == probed | {"kept": True}
    # The first study's probe converted every precision and wrote SavedModels into its cache;
    # the second converted only its baseline.
    assert _entries("second", workdir) < _entries("first", workdir)
    assert list(fresh_probes.glob("probe-*.json")) == [kept]

    # Another model (the demo's weights, one of them changed) is probed, and kept beside.
    from autotune._keras import keras

    model = keras().models.load_model(workdir / MODEL)
    weights = model.get_weights()
    weights[-1] = weights[-1] + 0.01
    model.set_weights(weights)
    model.save(workdir / "other.keras")
    other = _run("other", "other.keras")
    assert "probe (" in other and "kept from an earlier probe" not in other
    assert "kept" not in _capabilities("other") and len(list(fresh_probes.glob("probe-*.json"))) == 2
