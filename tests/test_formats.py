"""Bring your own: every model format and data source, a study file end to end (with show,
plot, export choices and a warm start), a regressor, and the dashboard on our storage.
Real TensorFlow, Keras 3, LiteRT and SQLite."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.storage import store

pytestmark = pytest.mark.slow
runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _study(name):
    return optuna.load_study(study_name=name, storage=store.open_storage("sqlite:///studies/autotune.db"))


@pytest.fixture(scope="module")
def digits(demo_files):
    with np.load(demo_files[1]) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory, digits):
    """The demo digits as 8-bit PNGs in train/<class>/ and val/<class>/."""
    from autotune._keras import tf

    root = tmp_path_factory.mktemp("images")
    for split, n in (("train", 500), ("val", 200)):
        x, y = digits[f"x_{split}"][:n], digits[f"y_{split}"][:n]
        for i, (img, label) in enumerate(zip(x, y)):
            folder = root / split / f"digit{label}"
            folder.mkdir(parents=True, exist_ok=True)
            png = tf().io.encode_png(np.round(img * 255).astype(np.uint8))
            (folder / f"{i}.png").write_bytes(png.numpy())
    return root


@pytest.fixture(scope="module")
def keras3_model(tmp_path_factory, image_dir):
    """A Keras 3 CNN that rescales 0..255 pixels itself, trained on the PNGs."""
    from autotune._keras import tf  # sets the legacy flag before Keras 3 meets TensorFlow

    tf()
    import keras

    from autotune.inputs.data import load_image_dir

    data = load_image_dir(image_dir, (32, 32, 1))
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input((32, 32, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=8, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("k3") / "digits_k3.keras"
    model.save(path)
    return path, model


def test_every_model_format_loads_to_the_same_predictions(tmp_path, demo_files, digits, keras3_model):
    from autotune._keras import keras
    from autotune.inputs.model import load_model

    source = keras().models.load_model(demo_files[0], compile=False)
    x = digits["x_val"][:64]
    expected = source.predict(x, verbose=0)
    source.save(tmp_path / "m.h5")
    source.save(tmp_path / "saved", save_format="tf")
    for path in (demo_files[0], tmp_path / "m.h5", tmp_path / "saved"):
        np.testing.assert_allclose(load_model(path).predict(x, verbose=0), expected, atol=1e-5, err_msg=str(path))
    k3_path, k3 = keras3_model
    rebuilt = load_model(k3_path)
    assert isinstance(rebuilt, keras().Model)
    np.testing.assert_allclose(rebuilt.predict(x * 255, verbose=0), k3.predict(x * 255, verbose=0), atol=1e-4)


def test_image_directories_with_and_without_a_validation_folder(image_dir):
    from autotune.inputs.data import load_data

    d = load_data(str(image_dir), None, (32, 32, 1), "classification")
    assert d.x_train.shape == (500, 32, 32, 1) and d.x_val.shape == (200, 32, 32, 1)
    assert d.x_val.max() > 200  # pixels stay 0..255
    flat = load_data(str(image_dir / "train"), None, (16, 16, 1), "classification")  # resized, 20 % held out
    assert flat.x_train.shape[1:] == (16, 16, 1) and len(flat.x_val) == 100 and len(flat.x_train) == 400
    rgb = load_data(str(image_dir / "train"), str(image_dir / "val"), (32, 32, 3), "classification")
    assert rgb.x_val.shape == (200, 32, 32, 3)


LOADER = """
import numpy as np
import tensorflow as tf

def load():
    with np.load({path!r}) as f:
        train = tf.data.Dataset.from_tensor_slices((f["x_train"], f["y_train"]))  # unbatched
        val = tf.data.Dataset.from_tensor_slices((f["x_val"], f["y_val"])).batch(33)  # batched
    return train, val
"""


def test_a_loader_returning_tf_data_datasets(tmp_path, demo_files, digits):
    from autotune.inputs.data import load_data

    (tmp_path / "tfdata_loader.py").write_text(LOADER.format(path=str(demo_files[1])))
    d = load_data(f"{tmp_path / 'tfdata_loader.py'}:load", None, (32, 32, 1), "classification")
    np.testing.assert_array_equal(d.x_val, digits["x_val"])
    np.testing.assert_array_equal(d.y_train, digits["y_train"])


def test_a_study_file_end_to_end_with_show_plot_export_and_a_warm_start(empty_workdir, image_dir, keras3_model):
    (empty_workdir / "studies").mkdir()
    (empty_workdir / "studies" / "digits.toml").write_text(
        f'model = "{keras3_model[0]}"\ndata = "{image_dir}"\nspace = "quick"\nbudget = 20\nseed = 3\n\n'
        "[constraints]\nmax_accuracy_drop = 0.02\n"
    )
    result = _invoke("run", "studies/digits.toml", "--budget", "5")  # the flag wins over the file
    assert result.exit_code == 0, result.output
    study = _study("digits")
    config = store.stored_config(study)
    assert (config.budget, config.seed, config.max_accuracy_drop, config.space) == (5, 3, 0.02, "quick")
    assert store.evaluated(study.get_trials()) == 5
    baseline = study.user_attrs[store.BASELINE]
    assert baseline["accuracy"] > 0.8 and "top5_accuracy" in baseline

    shown = _invoke("show", "digits", "0")
    assert shown.exit_code == 0, shown.output
    for words in ("fp32 · litert", "lineage", "convert", "latency_p50_ms", "stage timings", "cache"):
        assert words in shown.output, words
    assert "has no trial 99" in _invoke("show", "digits", "99").output

    plotted = _invoke("plot", "digits", "--out", "front.png")
    assert plotted.exit_code == 0, plotted.output
    assert (empty_workdir / "front.png").stat().st_size > 20_000

    exported = _invoke("export", "digits", "--out", "small", "--prefer", "size")
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((empty_workdir / "small" / "manifest.json").read_text())
    sizes = [t.user_attrs[store.METRICS]["size_bytes"] for t in study.get_trials() if store.METRICS in t.user_attrs]
    assert manifest["metrics"]["size_bytes"] == min(sizes) and manifest["why"].startswith("smallest artifact")
    card = (empty_workdir / "small" / "MODEL_CARD.md").read_text()
    assert manifest["recipe"] in card and "fp32 baseline" in card and "Environment fingerprint" in card
    refused = _invoke("export", "digits", "--out", "never", "--max-latency-ms", "0.0001")
    assert refused.exit_code == 2 and "--closest" in refused.output
    closest = _invoke("export", "digits", "--out", "near", "--max-latency-ms", "0.0001", "--closest")
    assert closest.exit_code == 0, closest.output
    assert json.loads((empty_workdir / "near" / "manifest.json").read_text())["meets_limits"] is False

    front = {t.number: t.params for t in study.get_trials() if t.params and store.REFERENCE not in t.user_attrs}
    warm = _invoke("run", "studies/digits.toml", "--study", "digits2", "--budget", "7", "--warm-start", "digits")
    assert warm.exit_code == 0, warm.output
    seeded = [t for t in _study("digits2").get_trials() if store.WARM_START in t.user_attrs]
    assert seeded, "the warm start enqueued nothing"
    for t in seeded:
        source = int(t.user_attrs[store.WARM_START].split("#")[1])
        assert t.params == front[source]
    again = _invoke("run", "--study", "digits2", "--warm-start", "digits")
    assert again.exit_code == 2 and "seeds a new study" in again.output


REGRESSION_SPACE = """
from autotune.search.recipe import Recipe, Runtime
from autotune.techniques import Distill

def space(trial):
    steps = (Distill(width=0.5, temperature=1.0, alpha=0.5, epochs=20),) if trial.suggest_categorical("distill", [False, True]) else ()
    precision = trial.suggest_categorical("precision", ["fp32", "int8"])
    return Recipe(precision=precision, runtime=Runtime(engine="litert", threads=1), steps=steps)
"""


def test_a_regressor_is_searched_on_mae(empty_workdir):
    from autotune._keras import keras

    k = keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 8)).astype(np.float32)
    y = (np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.1 * x[:, 3:].sum(axis=1)).astype(np.float32)
    np.savez(empty_workdir / "reg.npz", x_train=x[:1000], y_train=y[:1000], x_val=x[1000:], y_val=y[1000:])
    k.utils.set_random_seed(0)
    model = k.Sequential([k.layers.Input((8,)), k.layers.Dense(64, activation="relu"), k.layers.Dense(64, activation="relu"), k.layers.Dense(1)])
    model.compile(optimizer=k.optimizers.Adam(3e-3), loss="mse")
    model.fit(x[:1000], y[:1000], epochs=30, batch_size=32, verbose=0)
    model.save(empty_workdir / "reg.keras")
    (empty_workdir / "reg_space.py").write_text(REGRESSION_SPACE)

    result = _invoke(
        "run", "--model", "reg.keras", "--data", "reg.npz", "--objective", "regression", "--space", "reg_space.py",
        "--max-accuracy-drop", "0.05", "--budget", "5",
    )
    assert result.exit_code == 0, result.output
    assert "mae" in result.output and "increase" in result.output
    trials = [t for t in _study("reg").get_trials() if store.METRICS in t.user_attrs]
    for t in trials:
        m = t.user_attrs[store.METRICS]
        assert "accuracy" not in m and m["mae_increase"] == pytest.approx(m["mae"] - trials[0].user_attrs[store.METRICS]["mae"])
        assert t.values == [m["latency_p50_ms"], m["mae"]]
    assert trials[0].user_attrs[store.METRICS]["mae"] < 0.3  # the model learned something
    distilled = [t for t in trials if any(s.get("step") == "distill" for s in t.user_attrs[store.LINEAGE])]
    assert distilled and all("mae_keras" in t.user_attrs[store.LINEAGE][1] for t in distilled)

    exported = _invoke("export", "reg", "--out", "out", "--prefer", "accuracy")
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((empty_workdir / "out" / "manifest.json").read_text())
    assert manifest["task"] == "regression" and manifest["verified_mae"] == pytest.approx(manifest["metrics"]["mae"], abs=1e-6)
    assert "lowest-MAE" in manifest["why"]
    assert "MAE (validation)" in (empty_workdir / "out" / "MODEL_CARD.md").read_text()


def test_the_dashboard_serves_our_studies_with_named_objectives(workdir):
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    assert _invoke("run", "--budget", "3", "--space", "quick").exit_code == 0
    app = wsgi(store.open_storage("sqlite:///studies/autotune.db"))

    def get(path):
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
        setup_testing_defaults(environ)
        out = {}
        body = b"".join(app(environ, lambda status, headers, exc_info=None: out.setdefault("status", status)))
        assert out["status"].startswith("200"), (path, body[:300])
        return json.loads(body)

    listing = get("/api/studies")
    study = next(s for s in listing["study_summaries"] if s["study_name"] == "demo")
    detail = get(f"/api/studies/{study['study_id']}")
    assert detail["objective_names"] == ["latency_p50_ms", "accuracy"]
    assert len(detail["trials"]) == 3
