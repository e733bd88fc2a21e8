"""The user's model: loaded in safe mode from a tf_keras, Keras 3 or SavedModel file, opened
into one flat graph, keyed by content and checked against the data; and a study's model and
data loaded together (``load_inputs``).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from autotune.errors import ConfigError
from autotune.inputs.config import StudyConfig
from autotune.inputs.data import Dataset, load_data


_LAMBDA = re.compile(rb'"class_name":\s*"Lambda"')


def holds_code(path: Path) -> bool:
    """True if the model's stored configuration holds a Lambda layer: Python code that
    loading would run. Read as bytes, before anything is deserialised."""
    if path.is_dir():
        meta = path / "keras_metadata.pb"
        return meta.is_file() and bool(_LAMBDA.search(meta.read_bytes()))
    if path.suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as z:
                return "config.json" in z.namelist() and bool(_LAMBDA.search(z.read("config.json")))
        except (zipfile.BadZipFile, OSError):
            return False  # not a zip: loading says so
    return bool(_LAMBDA.search(path.read_bytes()))  # .h5 keeps its config as a plain attribute


def load_model(path: Path, trust_code: bool = False, custom_objects: str | None = None) -> Any:
    """A tf_keras model from a tf_keras ``.keras``/``.h5`` file, a Keras SavedModel directory,
    or a Keras 3 ``.keras`` file of standard layers (rebuilt in tf_keras and verified).

    Loading runs in Keras' safe mode, and a model whose configuration holds Python code
    (Lambda layers) is refused unless ``trust_code`` (the user's --trust-model-code).
    ``custom_objects``, a .py file of the user's layers, is imported (it needs ``trust_code``)
    and its objects stay active in this process for the cache's reloads (autotune.inputs.custom)."""
    from autotune._keras import keras, native_stderr_silenced
    from autotune.inputs import custom

    if not path.exists():
        raise ConfigError(f"model not found: {path}")
    if path.is_file() and path.suffix not in (".keras", ".h5"):
        raise ConfigError(f"model {path} is neither a .keras/.h5 file nor a SavedModel directory")
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise ConfigError(f"model directory {path} holds no saved_model.pb")
    if path.is_dir() and not (path / "keras_metadata.pb").is_file():
        raise ConfigError(
            f"SavedModel {path} was not written by Keras (no keras_metadata.pb), so its layers cannot be "
            "pruned or distilled; save the Keras model itself (model.save('m.keras'))"
        )
    if custom_objects is not None and not trust_code:
        raise ConfigError(f"--custom-objects {custom_objects} is Python that runs when the model loads; "
                          "if you trust it, pass --trust-model-code")
    custom.use(custom_objects)
    if not trust_code and holds_code(path):
        raise ConfigError(
            f"model {path} holds a Lambda layer, Python code that loading it would run; "
            "if you trust this file, pass --trust-model-code"
        )
    if path.suffix == ".keras":
        from autotune.inputs.keras3 import is_keras3_file, rebuild_in_tf_keras

        if is_keras3_file(path):
            model = rebuild_in_tf_keras(path)
            return _one_in_one_out(_flattened(model, path), path)
    k = keras()
    try:
        with custom.scope(), native_stderr_silenced():
            model = k.models.load_model(str(path), compile=False, safe_mode=not trust_code)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, zipfile.BadZipFile) as e:
        custom.explain_unknown(path)  # a custom layer with no class: name it, in one line
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        hint = "; custom layers need --custom-objects FILE.py and --trust-model-code" if "Unknown" in reason else ""
        raise ConfigError(f"cannot load model {path}: {reason[:300]}{hint}") from None
    if not isinstance(model, k.Model):
        raise ConfigError(f"{path} loaded as {type(model).__name__}, not a Keras model")
    return _one_in_one_out(_flattened(model, path), path)


def _flattened(model: Any, path: Path) -> Any:
    """Nested models (a keras.applications base used as a layer) opened into one flat graph,
    so that the techniques reach the layers inside them."""
    from autotune.inputs import custom
    from autotune.inputs.flatten import flatten_nested

    try:
        with custom.scope():  # the copies of the user's own layers are made from their configs
            return flatten_nested(model)
    except ConfigError as e:
        raise ConfigError(f"model {path}: {e}") from None


def _one_in_one_out(model: Any, path: Path) -> Any:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConfigError(f"model {path} must have one input and one output (has {len(model.inputs)} and {len(model.outputs)})")
    return model


def check_compatible(model: Any, data: Dataset, model_path: Path, data_source: str) -> None:
    """The data must fit the model's input, and its labels or targets the model's output."""
    expected = tuple(model.input_shape[1:])
    got = tuple(data.x_val.shape[1:])
    if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
        raise ConfigError(f"data {data_source} samples have shape {got} but model {model_path} expects {expected}")
    outputs = model.output_shape[-1]
    if data.task == "classification":
        if outputs is not None and data.num_classes > outputs:
            raise ConfigError(
                f"data {data_source} has labels up to {data.num_classes - 1} but model {model_path} outputs {outputs} classes"
            )
        return
    target = tuple(data.y_val.shape[1:]) or (1,)
    if tuple(model.output_shape[1:]) != target:
        raise ConfigError(
            f"data {data_source} has regression targets of shape {target} but model {model_path} outputs {tuple(model.output_shape[1:])}"
        )


def resolve_inputs(config: StudyConfig, studies_dir: Path) -> tuple[Path, str]:
    """The model file and the data source (a path or a ``module:function`` loader)."""
    if config.is_demo:
        from autotune.inputs.demo import ensure_demo

        model_path, data_path = ensure_demo(studies_dir)
        return model_path, str(data_path)
    if config.data is None:
        raise ConfigError("--model needs --data: an .npz, an image directory or a module:function loader")
    return Path(config.model), config.data


def load_inputs(config: StudyConfig, studies_dir: Path, task: str) -> tuple[Path, Any, Dataset]:
    """Model path, loaded model and checked data of a study (``task``: its objective's)."""
    model_path, data_source = resolve_inputs(config, studies_dir)
    model = load_model(model_path, trust_code=config.trust_model_code, custom_objects=config.custom_objects)
    data = load_data(data_source, config.val_data, tuple(model.input_shape[1:]), task)
    check_compatible(model, data, model_path, data_source)
    return model_path, model, data
