import numpy as np
import pytest

from autotune.data import load_npz
from autotune.errors import ConfigError


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
