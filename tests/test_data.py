import numpy as np
import pytest

from autotune.errors import ConfigError
from autotune.inputs.data import load_npz


def _write(path, **arrays):
    base = {
        "x_train": np.zeros((4, 3), np.float32),
        "y_train": np.array([0, 1, 0, 1]),
        "x_val": np.zeros((2, 3), np.float32),
        "y_val": np.array([1, 0]),
    }
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_a_good_npz_loads_with_float_inputs_and_integer_labels(tmp_path):
    d = load_npz(_write(tmp_path / "d.npz"))
    assert d.x_train.dtype == np.float32 and d.y_val.dtype == np.int64 and d.num_classes == 2


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"y_val": None}, "lacks y_val"),
        ({"x_val": np.array([[np.nan, 0, 0], [0, 0, 0]], np.float32)}, "NaN or infinite"),
        ({"x_train": np.zeros((0, 3), np.float32), "y_train": np.zeros((0,), np.int64)}, "train split is empty"),
        ({"y_train": np.array([0, 1, 0])}, "has 4 rows but y_train has 3"),
        ({"y_val": np.array([0.5, 1.0])}, "integer class labels"),
        ({"y_val": np.array([-1, 0])}, "negative labels"),
        ({"x_val": np.zeros((2, 4), np.float32)}, "differ in shape"),
    ],
)
def test_bad_data_is_one_clear_line(tmp_path, arrays, words):
    with pytest.raises(ConfigError, match=words):
        load_npz(_write(tmp_path / "d.npz", **arrays))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_npz(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(ConfigError, match="not a readable .npz"):
        load_npz(junk)


def test_separate_train_and_validation_files_with_either_key_names(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.zeros((4, 3), np.float32), y=np.array([0, 1, 0, 1]))
    np.savez(tmp_path / "val.npz", x_val=np.ones((2, 3), np.float32), y_val=np.array([1, 0]))
    d = load_npz(tmp_path / "train.npz", tmp_path / "val.npz")
    assert d.x_train.shape == (4, 3) and d.x_val.shape == (2, 3) and list(d.y_val) == [1, 0]
    np.savez(tmp_path / "bad.npz", a=np.zeros(2))
    with pytest.raises(ConfigError, match=r"bad.npz lacks x_val, y_val; it needs x_val, y_val \(or x, y\)"):
        load_npz(tmp_path / "train.npz", tmp_path / "bad.npz")


def test_regression_targets_are_floats_and_checked(tmp_path):
    path = _write(tmp_path / "r.npz", y_train=np.array([0.5, 1.5, 2.0, 3.0]), y_val=np.array([0.1, 0.2]))
    d = load_npz(path, task="regression")
    assert d.task == "regression" and d.y_val.dtype == np.float32
    bad = _write(tmp_path / "b.npz", y_train=np.array([0.5, np.inf, 2.0, 3.0]))
    with pytest.raises(ConfigError, match="y_train holds NaN or infinite"):
        load_npz(bad, task="regression")


def test_the_content_key_changes_with_the_content(tmp_path):
    a = load_npz(_write(tmp_path / "a.npz"))
    assert load_npz(tmp_path / "a.npz").key == a.key
    c = load_npz(_write(tmp_path / "a.npz", y_val=np.array([0, 0])))
    assert c.key != a.key


LOADERS = '''
import numpy as np

def arrays():
    return {"x_train": np.zeros((4, 3)), "y_train": [0, 1, 0, 1], "x_val": np.ones((2, 3)), "y_val": [1, 0]}

def four():
    return np.zeros((4, 3)), np.array([0, 1, 0, 1]), np.ones((2, 3)), np.array([1, 0])

def pairs():
    return (np.zeros((4, 3)), np.array([0, 1, 0, 1])), (np.ones((2, 3)), np.array([1, 0]))

def broken():
    raise FileNotFoundError("/data/shard-7 is gone")

def wrong():
    return 42

def partial():
    return {"x_train": np.zeros((4, 3))}
'''


@pytest.mark.parametrize("fn", ["arrays", "four", "pairs"])
def test_a_python_loader_by_module_or_by_file(tmp_path, monkeypatch, fn):
    from autotune.inputs.data import load_data

    (tmp_path / "myloaders.py").write_text(LOADERS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in (f"myloaders:{fn}", f"{tmp_path / 'myloaders.py'}:{fn}"):
        d = load_data(spec, None, (3,), "classification")
        assert d.x_train.shape == (4, 3) and d.x_val.shape == (2, 3) and d.num_classes == 2


@pytest.mark.parametrize(
    "fn, words",
    [
        ("broken", "raised FileNotFoundError: /data/shard-7 is gone"),
        ("wrong", "returned int"),
        ("partial", "without y_train, x_val, y_val"),
        ("absent", "defines no function absent"),
    ],
)
def test_a_bad_loader_is_one_line(tmp_path, monkeypatch, fn, words):
    from autotune.inputs.data import load_data

    (tmp_path / "myloaders2.py").write_text(LOADERS)
    with pytest.raises(ConfigError, match=words):
        load_data(f"{tmp_path / 'myloaders2.py'}:{fn}", None, (3,), "classification")


def test_a_missing_source_or_an_unknown_kind(tmp_path):
    from autotune.inputs.data import load_data

    with pytest.raises(ConfigError, match="data not found"):
        load_data(str(tmp_path / "none.npz"), None, (3,), "classification")
    (tmp_path / "d.csv").write_text("1,2\n")
    with pytest.raises(ConfigError, match="not an .npz, an image directory, or a module:function"):
        load_data(str(tmp_path / "d.csv"), None, (3,), "classification")
    with pytest.raises(ConfigError, match="importing no_such_module raised ModuleNotFoundError"):
        load_data("no_such_module:load", None, (3,), "classification")
