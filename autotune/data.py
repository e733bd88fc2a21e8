"""The user's model and validation data: loaded, checked, and given content keys.

Every check raises ConfigError with one line that says what is wrong and where, before any
study is created or any trial spends time.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autotune.errors import ConfigError

SPLITS = ("x_train", "y_train", "x_val", "y_val")


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max())) + 1


def load_npz(path: Path) -> Dataset:
    """Read ``x_train, y_train, x_val, y_val`` (classification, integer labels) from an npz."""
    if not path.is_file():
        raise ConfigError(f"data file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in SPLITS if k not in f.files]
            if missing:
                raise ConfigError(f"data file {path} lacks {', '.join(missing)} (it needs {', '.join(SPLITS)})")
            arrays = {k: f[k] for k in SPLITS}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ConfigError(f"data file {path} is not a readable .npz: {e}") from None
    for split in ("train", "val"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) == 0:
            raise ConfigError(f"data file {path}: the {split} split is empty")
        if len(x) != len(y):
            raise ConfigError(f"data file {path}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
        if not np.issubdtype(x.dtype, np.number):
            raise ConfigError(f"data file {path}: x_{split} is not numeric ({x.dtype})")
        if not np.all(np.isfinite(x)):
            raise ConfigError(f"data file {path}: x_{split} holds NaN or infinite values")
        if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
            raise ConfigError(f"data file {path}: y_{split} must be a 1-D array of integer class labels")
        if y.min() < 0:
            raise ConfigError(f"data file {path}: y_{split} holds negative labels")
    if arrays["x_train"].shape[1:] != arrays["x_val"].shape[1:]:
        raise ConfigError(f"data file {path}: x_train and x_val samples differ in shape")
    return Dataset(
        x_train=arrays["x_train"].astype(np.float32),
        y_train=arrays["y_train"].astype(np.int64),
        x_val=arrays["x_val"].astype(np.float32),
        y_val=arrays["y_val"].astype(np.int64),
    )


def file_key(path: Path) -> str:
    """Content hash of a file or of every file in a directory (a SavedModel)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:24]


def load_model(path: Path) -> Any:
    """Load a tf_keras model from ``.keras``, ``.h5`` or a SavedModel directory, in safe mode."""
    from autotune._keras import keras, native_stderr_silenced

    if not path.exists():
        raise ConfigError(f"model not found: {path}")
    if path.is_file() and path.suffix not in (".keras", ".h5"):
        raise ConfigError(f"model {path} is neither a .keras/.h5 file nor a SavedModel directory")
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise ConfigError(f"model directory {path} holds no saved_model.pb")
    k = keras()
    try:
        with native_stderr_silenced():
            model = k.models.load_model(str(path), compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"cannot load model {path}: {reason}") from None
    if not isinstance(model, k.Model):
        raise ConfigError(f"{path} loaded as {type(model).__name__}, not a Keras model")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConfigError(f"model {path} must have one input and one output (has {len(model.inputs)} and {len(model.outputs)})")
    return model


def check_compatible(model: Any, data: Dataset, model_path: Path, data_path: Path) -> None:
    """The data must fit the model's input, and its labels the model's output."""
    expected = tuple(model.input_shape[1:])
    got = tuple(data.x_val.shape[1:])
    if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
        raise ConfigError(f"data {data_path} samples have shape {got} but model {model_path} expects {expected}")
    classes = model.output_shape[-1]
    if classes is not None and data.num_classes > classes:
        raise ConfigError(
            f"data {data_path} has labels up to {data.num_classes - 1} but model {model_path} outputs {classes} classes"
        )
