"""The user's data: loaded from whatever they keep it in, checked, and keyed by content (the
model is ``autotune.inputs.model``'s).

Data comes from an ``.npz`` (``x_train, y_train, x_val, y_val``; or ``x, y`` in each of two
files), an image directory (one folder per class), or a Python loader ``module:function``
returning arrays or ``tf.data`` datasets. Whatever the source, the result is one in-memory
``Dataset`` checked against the model and the task before any study is created: every check
raises ConfigError with one line that says what is wrong and where.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import io
import importlib.util
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from autotune.errors import ConfigError

SPLITS = ("x_train", "y_train", "x_val", "y_val")
Task = Literal["classification", "regression"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# `pkg.module:function` or `path/to/file.py:function`
_LOADER = re.compile(r"^(?P<module>[\w.]+|.+\.py):(?P<function>[A-Za-z_]\w*)$")
_READ_BATCH = 256


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: Task = "classification"
    _key: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max())) + 1

    @property
    def key(self) -> str:
        """Content hash of the four arrays: the same data from any source shares a cache."""
        if not self._key:
            h = hashlib.sha256(self.task.encode())
            for a in (self.x_train, self.y_train, self.x_val, self.y_val):
                h.update(f"{a.dtype}{a.shape}".encode())
                h.update(np.ascontiguousarray(a).data)
            self._key.append(h.hexdigest()[:24])
        return self._key[0]


# --- checks shared by every source ------------------------------------------------------


def _checked(arrays: dict[str, Any], source: str, task: Task) -> Dataset:
    for k in SPLITS:
        try:
            arrays[k] = np.asarray(arrays[k])
        except (ValueError, TypeError) as e:
            raise ConfigError(f"data {source}: {k} is not an array: {e}") from None
    for split in ("train", "val"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 0 or len(x) == 0:
            raise ConfigError(f"data {source}: the {split} split is empty")
        if len(x) != len(y):
            raise ConfigError(f"data {source}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
        if not np.issubdtype(x.dtype, np.number):
            raise ConfigError(f"data {source}: x_{split} is not numeric ({x.dtype})")
        if not np.all(np.isfinite(x)):
            raise ConfigError(f"data {source}: x_{split} holds NaN or infinite values")
        if task == "classification":
            if y.ndim == 2 and y.shape[1] == 1:
                y = arrays[f"y_{split}"] = y[:, 0]
            integral = np.issubdtype(y.dtype, np.integer) or (
                np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))
            )
            if y.ndim != 1 or not integral:
                raise ConfigError(f"data {source}: y_{split} must be a 1-D array of integer class labels")
            if y.min() < 0:
                raise ConfigError(f"data {source}: y_{split} holds negative labels")
        else:
            if not np.issubdtype(y.dtype, np.number):
                raise ConfigError(f"data {source}: y_{split} must be numeric regression targets ({y.dtype})")
            if not np.all(np.isfinite(y)):
                raise ConfigError(f"data {source}: y_{split} holds NaN or infinite values")
    if arrays["x_train"].shape[1:] != arrays["x_val"].shape[1:]:
        raise ConfigError(f"data {source}: x_train and x_val samples differ in shape")
    label = np.int64 if task == "classification" else np.float32
    return Dataset(
        x_train=arrays["x_train"].astype(np.float32),
        y_train=arrays["y_train"].astype(label),
        x_val=arrays["x_val"].astype(np.float32),
        y_val=arrays["y_val"].astype(label),
        task=task,
    )


# --- .npz -----------------------------------------------------------------------------


def _read_npz(path: Path, keys: tuple[str, ...], alternatives: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """``keys`` from the file, or ``alternatives`` (same order) when it holds those instead."""
    if not path.is_file():
        raise ConfigError(f"data file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            for wanted in (keys, alternatives):
                if wanted and all(k in f.files for k in wanted):
                    return {k: f[a] for k, a in zip(keys, wanted)}
            missing = [k for k in keys if k not in f.files]
            also = f" (or {', '.join(alternatives)})" if alternatives else ""
            raise ConfigError(f"data file {path} lacks {', '.join(missing)}; it needs {', '.join(keys)}{also}")
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ConfigError(f"data file {path} is not a readable .npz: {e}") from None


def load_npz(path: Path, val_path: Path | None = None, task: Task = "classification") -> Dataset:
    """One .npz with all four splits, or a training file and a validation file."""
    if val_path is None:
        data = _checked(_read_npz(path, SPLITS), str(path), task)
        # The file's hash, as caches made before other sources existed were keyed.
        return dataclasses.replace(data, _key=[file_key(path)])
    arrays = _read_npz(path, ("x_train", "y_train"), ("x", "y")) | _read_npz(val_path, ("x_val", "y_val"), ("x", "y"))
    return _checked(arrays, f"{path} + {val_path}", task)


# --- image directories ----------------------------------------------------------------


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_images(root: Path, input_shape: tuple[Any, ...], **split: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from autotune._keras import keras, native_stderr_silenced, tf

    if len(input_shape) != 3 or input_shape[0] is None or input_shape[1] is None or input_shape[2] not in (1, 3, 4):
        raise ConfigError(
            f"image directory {root} needs a model whose input is (height, width, 1|3|4 channels) with a fixed size; "
            f"this model takes {input_shape}"
        )
    height, width, channels = input_shape
    try:
        # Keras prints "Found N files belonging to K classes." to stdout: not ours to show.
        with native_stderr_silenced(), contextlib.redirect_stdout(io.StringIO()):
            ds = keras().utils.image_dataset_from_directory(
                str(root),
                labels="inferred",
                label_mode="int",
                color_mode={1: "grayscale", 3: "rgb", 4: "rgba"}[channels],
                image_size=(height, width),
                batch_size=_READ_BATCH,
                shuffle=bool(split),  # a validation split needs a shuffled, seeded order
                seed=0 if split else None,
                **split,
            )
    except (ValueError, OSError, tf().errors.OpError) as e:
        raise ConfigError(f"image directory {root} cannot be read: {str(e).splitlines()[0]}") from None
    xs, ys = _collect(ds.prefetch(tf().data.AUTOTUNE), 4, str(root))
    return xs, ys, list(ds.class_names)


def load_image_dir(root: Path, input_shape: tuple[Any, ...], val_root: Path | None = None) -> Dataset:
    """``root/train/<class>/`` and ``root/val/<class>/`` (or ``validation/``, ``test/``); or ``root/<class>/``
    with a seeded 20 % validation split; or ``val_root`` as a second class directory. Images are
    resized to the model's input; pixel values stay 0..255 (Keras' convention), so a model that
    expects 0..1 should begin with a Rescaling layer."""
    if val_root is None:
        val_dir = next((root / n for n in ("val", "validation", "test") if (root / n).is_dir()), None)
        if (root / "train").is_dir() and val_dir is not None:
            root, val_root = root / "train", val_dir
    if val_root is not None:
        x_train, y_train, classes = _read_images(root, input_shape)
        x_val, y_val, val_classes = _read_images(val_root, input_shape)
        if val_classes != classes:
            raise ConfigError(f"image directories {root} and {val_root} name different classes: {classes} vs {val_classes}")
    else:
        x_train, y_train, classes = _read_images(root, input_shape, validation_split=0.2, subset="training")
        x_val, y_val, _ = _read_images(root, input_shape, validation_split=0.2, subset="validation")
    return _checked({"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}, str(root), "classification")


# --- Python loaders and tf.data --------------------------------------------------------


def is_loader(spec: str) -> bool:
    return bool(_LOADER.match(spec)) and not Path(spec).exists()


def _import_loader(spec: str) -> Any:
    m = _LOADER.match(spec)
    assert m is not None
    module_ref, name = m["module"], m["function"]
    try:
        if module_ref.endswith(".py"):
            path = Path(module_ref).expanduser()
            if not path.is_file():
                raise ConfigError(f"data loader file not found: {path}")
            module_spec = importlib.util.spec_from_file_location(f"autotune_loader_{path.stem}", path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            if str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_ref)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's code may raise anything; say which and why
        raise ConfigError(f"data loader {spec}: importing {module_ref} raised {type(e).__name__}: {e}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"data loader {spec}: {module_ref} defines no function {name}()")
    return fn


def _collect(ds: Any, x_rank: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Arrays from a tf.data dataset of (x, y) pairs, read in batches (batched if it is not)."""
    spec = ds.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ConfigError(f"data {source}: a tf.data dataset must yield (x, y) pairs")
    rank = spec[0].shape.rank
    if rank == x_rank - 1:
        ds = ds.batch(_READ_BATCH)
    elif rank != x_rank:
        raise ConfigError(f"data {source}: dataset samples have rank {rank}, the model's input has rank {x_rank - 1}")
    from autotune._keras import tf

    xs, ys = [], []
    try:
        for x, y in ds.as_numpy_iterator():
            xs.append(x)
            ys.append(y)
    except (tf().errors.OpError, ValueError, TypeError) as e:
        raise ConfigError(f"data {source}: reading failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not xs:
        raise ConfigError(f"data {source}: a dataset is empty")
    return np.concatenate(xs), np.concatenate(ys)


def _is_tf_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("tensorflow") and hasattr(obj, "element_spec")


def _split(obj: Any, name: str, input_rank: int, source: str) -> tuple[Any, Any]:
    if _is_tf_dataset(obj):
        from autotune._keras import tf

        return _collect(obj.prefetch(tf().data.AUTOTUNE), input_rank + 1, f"{source} ({name})")
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        return obj[0], obj[1]
    raise ConfigError(f"data loader {source}: the {name} split must be an (x, y) pair or a tf.data dataset")


def load_from_loader(spec: str, input_shape: tuple[Any, ...], task: Task) -> Dataset:
    """Call a loader; it returns a dict with x_train, y_train, x_val, y_val, or the tuple
    (x_train, y_train, x_val, y_val), or (train, val) with each an (x, y) pair or a tf.data
    dataset of (x, y)."""
    fn = _import_loader(spec)
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"data loader {spec} raised {type(e).__name__}: {e}") from None
    if isinstance(out, dict):
        missing = [k for k in SPLITS if k not in out]
        if missing:
            raise ConfigError(f"data loader {spec} returned a dict without {', '.join(missing)}")
        arrays = {k: out[k] for k in SPLITS}
    elif isinstance(out, (tuple, list)) and len(out) == 4:
        arrays = dict(zip(SPLITS, out))
    elif isinstance(out, (tuple, list)) and len(out) == 2:
        (xt, yt), (xv, yv) = (_split(part, name, len(input_shape), spec) for part, name in zip(out, ("train", "val")))
        arrays = {"x_train": xt, "y_train": yt, "x_val": xv, "y_val": yv}
    else:
        raise ConfigError(
            f"data loader {spec} returned {type(out).__name__}; return a dict of x_train, y_train, x_val, y_val, "
            "a 4-tuple of those arrays, or (train, val) pairs or tf.data datasets"
        )
    return _checked(arrays, spec, task)


def load_data(spec: str, val_spec: str | None, input_shape: tuple[Any, ...], task: Task) -> Dataset:
    """Any supported source, decided by what ``spec`` is."""
    if is_loader(spec):
        if val_spec is not None:
            raise ConfigError(f"data loader {spec} returns both splits; drop the validation data setting")
        return load_from_loader(spec, input_shape, task)
    path = Path(spec).expanduser()
    val_path = None if val_spec is None else Path(val_spec).expanduser()
    if not path.exists():
        raise ConfigError(f"data not found: {path}")
    if val_path is not None and not val_path.exists():
        raise ConfigError(f"validation data not found: {val_path}")
    if path.is_dir():
        if task != "classification":
            raise ConfigError(f"an image directory ({path}) gives class labels; the objective wants {task}")
        return load_image_dir(path, input_shape, val_path)
    if path.suffix == ".npz":
        return load_npz(path, val_path, task)
    raise ConfigError(f"data {path} is not an .npz, an image directory, or a module:function loader")


def file_key(path: Path) -> str:
    """Content hash of a file or of every file in a directory (a SavedModel)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:24]
