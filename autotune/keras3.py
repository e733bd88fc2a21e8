"""Keras 3 ``.keras`` files, rebuilt as tf_keras (Keras 2) models.

TF Model Optimization (pruning, clustering, quantization-aware training) only understands
tf_keras models, and tf_keras cannot read what Keras 3 writes. So a Keras 3 model of standard
layers is rebuilt here: its config is translated layer by layer into tf_keras's format, the
graph is wired again node by node, the weights are copied by layer name, and the result is
checked by comparing predictions of both models on random inputs. Anything that cannot be
rebuilt faithfully (Lambda or custom layers, subclassed or nested models, options tf_keras
lacks, a prediction mismatch) is refused with one ConfigError line naming the file.
"""

from __future__ import annotations

import inspect
import json
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from autotune.errors import ConfigError, first_line

# Keyword arguments every tf_keras layer accepts through ``Layer.__init__(**kwargs)``.
_BASE_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape", "batch_input_shape",
                "batch_size", "weights", "activity_regularizer", "autocast", "implementation"}
# Keras 3 option names that tf_keras spells differently, per layer class.
_RENAMED = {"InputLayer": {"batch_shape": "batch_input_shape"}, "LeakyReLU": {"negative_slope": "alpha"}}
_OBJECT_MODULES = ("keras.initializers", "keras.regularizers", "keras.constraints")
_MODEL_CLASSES = {"Functional", "Sequential", "Model"}
_ATOL = 1e-4


def is_keras3_file(path: Path) -> bool:
    """True if ``path`` is a ``.keras`` zip written by Keras 3 (not tf_keras). Imports no TensorFlow."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "metadata.json" in names:
                return str(json.loads(z.read("metadata.json")).get("keras_version", "")).startswith("3.")
            if "config.json" in names:  # no metadata: Keras 3's config has traits tf_keras never writes
                text = z.read("config.json").decode("utf-8", "replace")
                return any(mark in text for mark in ('"DTypePolicy"', '"__keras_tensor__"', '"batch_shape"'))
    except (OSError, zipfile.BadZipFile, ValueError, AttributeError):
        pass
    return False


def _check_config(path: Path, config: dict[str, Any]) -> None:
    """Refuse, from config.json alone, what cannot be rebuilt; imports no TensorFlow."""
    kind = config.get("class_name")
    if kind not in ("Sequential", "Functional"):
        raise ConfigError(f"{path}: model class {kind!r} is not supported; only Sequential and Functional "
                          "Keras 3 models can be rebuilt in tf_keras")
    for layer in config.get("config", {}).get("layers", []):
        cls, name = layer.get("class_name"), layer.get("config", {}).get("name")
        if cls == "Lambda":
            raise ConfigError(f"{path}: Lambda layer {name!r} is not supported (its Python code cannot be "
                              "loaded safely); replace it with standard layers")
        if cls in _MODEL_CLASSES:
            raise ConfigError(f"{path}: nested model {name!r} ({cls}) is not supported; flatten it into one model")
        if layer.get("module") != "keras.layers" or layer.get("registered_name"):
            raise ConfigError(f"{path}: custom layer {name!r} ({cls}) is not supported; "
                              "only standard Keras layers can be rebuilt in tf_keras")


def _init_params(cls: type) -> set[str]:
    params: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            params |= set(inspect.signature(klass.__init__).parameters)
    return params - {"self", "args", "kwargs"}


def _filter_options(where: str, cls: type, config: dict[str, Any], extra: Collection[str] = ()) -> dict[str, Any]:
    """Keep the options ``cls`` accepts; drop unknown ones left at their off value; refuse the others."""
    known = _init_params(cls) | set(extra)
    out = {}
    for key, value in config.items():
        if key in known:
            out[key] = value
        elif value is not None and value is not False:
            raise ConfigError(f"{where} uses option {key}={value!r}, which tf_keras's {cls.__name__} lacks")
    return out


def _translate(where: str, value: Any, tfk: Any) -> Any:
    """A Keras 3 config value in tf_keras's format (dtype policies, initializers, regularizers...)."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        cls, cfg, module = value["class_name"], value["config"], value.get("module")
        if cls in ("DTypePolicy", "FloatDTypePolicy"):
            return cfg["name"]
        if cls == "__tuple__":
            return tuple(_translate(where, v, tfk) for v in cfg["value"])
        if module == "keras.layers" and not value.get("registered_name"):
            # A layer inside a wrapper (Bidirectional's forward and backward layers, TimeDistributed's).
            tf_cls = getattr(tfk.layers, cls, None)
            if isinstance(tf_cls, type):
                inner = {_RENAMED.get(cls, {}).get(k, k): _translate(where, v, tfk) for k, v in cfg.items()}
                return {"class_name": cls, "config": _filter_options(f"{where} {cls}", tf_cls, inner, _BASE_KWARGS)}
        if module in _OBJECT_MODULES and not value.get("registered_name"):
            tf_cls = getattr(getattr(tfk, module.split(".")[1]), cls, None)
            if isinstance(tf_cls, type):
                inner = {k: _translate(where, v, tfk) for k, v in cfg.items()}
                return {"class_name": cls, "config": _filter_options(f"{where} {cls}", tf_cls, inner)}
        raise ConfigError(f"{where} uses {cls} ({module or 'custom'}), which tf_keras cannot rebuild")
    if isinstance(value, (list, tuple)):
        return type(value)(_translate(where, v, tfk) for v in value)
    if isinstance(value, dict):
        return {k: _translate(where, v, tfk) for k, v in value.items()}
    return value


def _tf_layer(path: Path, layer_config: dict[str, Any], tfk: Any) -> Any:
    cls_name, config = layer_config["class_name"], dict(layer_config["config"])
    where = f"{path}: layer {config.get('name')!r} ({cls_name})"
    tf_cls = getattr(tfk.layers, cls_name, None)
    if not isinstance(tf_cls, type):
        raise ConfigError(f"{where} has no tf_keras equivalent")
    for old, new in _RENAMED.get(cls_name, {}).items():
        if old in config:
            config[new] = config.pop(old)
    config = _filter_options(where, tf_cls, _translate(where, config, tfk), _BASE_KWARGS)
    try:
        return tf_cls.from_config(config)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where} cannot be rebuilt in tf_keras: {first_line(e)}") from None


def _tensor_refs(value: Any) -> list[tuple[str, int, int]]:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        return [(name, node, index)]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else []
    return [ref for v in items for ref in _tensor_refs(v)]


def _substitute(value: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return tensors[tuple(value["config"]["keras_history"])]
    if isinstance(value, (list, tuple)):
        return type(value)(_substitute(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, tensors) for k, v in value.items()}
    return value


def _endpoints(spec: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    """Keras 3's input_layers/output_layers (a [name, node, index] triple or nested lists/dicts of them)."""
    if isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str):
        return tensors[(spec[0], spec[1], spec[2])]
    if isinstance(spec, dict):
        return {k: _endpoints(v, tensors) for k, v in spec.items()}
    return [_endpoints(s, tensors) for s in spec]


def _functional(path: Path, config: dict[str, Any], tfk: Any) -> Any:
    layers = {lc["config"]["name"]: _tf_layer(path, lc, tfk) for lc in config["layers"]}
    tensors: dict[tuple[str, int, int], Any] = {}
    for lc in config["layers"]:
        if lc["class_name"] == "InputLayer":
            tensors[(lc["config"]["name"], 0, 0)] = layers[lc["config"]["name"]].output
    pending = [(lc["config"]["name"], i, node) for lc in config["layers"] if lc["class_name"] != "InputLayer"
               for i, node in enumerate(lc.get("inbound_nodes", []))]
    while pending:  # the layer list is in topological order, so this normally takes one pass
        ready = [all(ref in tensors for ref in _tensor_refs(p[2])) for p in pending]
        if not any(ready):
            raise ConfigError(f"{path}: the model graph cannot be rebuilt (layer {pending[0][0]!r} has unknown inputs)")
        for name, index, node in (p for p, ok in zip(pending, ready) if ok):
            kwargs = {k: v for k, v in _substitute(node.get("kwargs", {}), tensors).items() if v is not None}
            try:
                out = layers[name](*_substitute(node.get("args", []), tensors), **kwargs)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{path}: layer {name!r} cannot be called in tf_keras: {first_line(e)}") from None
            for j, t in enumerate(out if isinstance(out, (list, tuple)) else [out]):
                tensors[(name, index, j)] = t
        pending = [p for p, ok in zip(pending, ready) if not ok]
    return tfk.Model(_endpoints(config["input_layers"], tensors), _endpoints(config["output_layers"], tensors),
                     name=config.get("name"))


def _sequential(path: Path, config: dict[str, Any], k3_model: Any, tfk: Any) -> Any:
    layers = [_tf_layer(path, lc, tfk) for lc in config["layers"]]
    if not layers or not isinstance(layers[0], tfk.layers.InputLayer):
        try:
            shape = tuple(k3_model.inputs[0].shape)
        except (AttributeError, IndexError, ValueError):
            raise ConfigError(f"{path}: the Sequential model was never built, so its input shape is unknown") from None
        layers.insert(0, tfk.layers.InputLayer(batch_input_shape=shape))
    return tfk.Sequential(layers, name=config.get("name"))


def _copy_weights(path: Path, k3_model: Any, tf_model: Any) -> None:
    tf_layers = {layer.name: layer for layer in tf_model.layers}
    k3_names = {layer.name for layer in k3_model.layers}
    if missing := [n for n, layer in tf_layers.items() if layer.weights and n not in k3_names]:
        raise ConfigError(f"{path}: rebuilt layer {missing[0]!r} has no counterpart in the Keras 3 model")
    for layer in k3_model.layers:
        source, target = layer.get_weights(), tf_layers.get(layer.name)
        if target is None:
            if source:
                raise ConfigError(f"{path}: layer {layer.name!r} is missing from the rebuilt tf_keras model")
            continue
        shapes, tf_shapes = [w.shape for w in source], [tuple(w.shape) for w in target.get_weights()]
        if shapes != tf_shapes:
            raise ConfigError(f"{path}: layer {layer.name!r} has weights {shapes} in Keras 3 but {tf_shapes} in tf_keras")
        if source:
            target.set_weights(source)


def _verify(path: Path, k3_model: Any, tf_model: Any, tf: Any) -> None:
    rng = np.random.default_rng(0)

    def sample(t: Any) -> np.ndarray:
        shape, kind = (4, *(32 if d is None else d for d in t.shape[1:])), np.dtype(str(t.dtype))
        if np.issubdtype(kind, np.integer):
            return rng.integers(0, 2, shape).astype(kind)
        return rng.standard_normal(shape).astype(kind)

    try:
        spec = k3_model.input  # keeps a dict or list structure of several inputs
    except AttributeError:  # a Sequential model that was built but never called
        spec = k3_model.inputs[0]
    x = tf.nest.map_structure(sample, spec)
    try:
        expected = [np.asarray(v) for v in tf.nest.flatten(k3_model(x, training=False))]
        got = [np.asarray(v) for v in tf.nest.flatten(tf_model(x, training=False))]
    except Exception as e:  # noqa: BLE001 - any failure here means the rebuild cannot be trusted
        raise ConfigError(f"{path}: cannot compare the rebuilt model's predictions: {first_line(e)}") from None
    if [a.shape for a in expected] != [b.shape for b in got]:
        raise ConfigError(f"{path}: the rebuilt tf_keras model's outputs differ in shape from the Keras 3 model's")
    for a, b in zip(expected, got):
        diff = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
        if not diff <= _ATOL * max(1.0, float(np.max(np.abs(a))) if a.size else 1.0):
            raise ConfigError(f"{path}: the rebuilt tf_keras model's predictions differ from the Keras 3 "
                              f"model's (max abs diff {diff:.3g})")


def rebuild_in_tf_keras(path: Path) -> Any:
    """Load a Keras 3 ``.keras`` file of standard layers; return the equivalent, verified tf_keras model."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            saved = json.loads(z.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{path} is not a readable .keras file: {first_line(e)}") from None
    if not is_keras3_file(path):
        raise ConfigError(f"{path} was not written by Keras 3, so it needs no rebuild")
    _check_config(path, saved)
    from autotune import _keras

    tfk, tfm = _keras.keras(), _keras.tf()
    import keras  # Keras 3; after autotune._keras so TF_USE_LEGACY_KERAS is already set

    try:
        with _keras.native_stderr_silenced():
            k3_model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds; the user needs one line
        raise ConfigError(f"cannot load Keras 3 model {path}: {first_line(e)}") from None
    config = k3_model.get_config()
    if isinstance(k3_model, keras.Sequential):
        tf_model = _sequential(path, config, k3_model, tfk)
    else:
        tf_model = _functional(path, config, tfk)
    _copy_weights(path, k3_model, tf_model)
    _verify(path, k3_model, tf_model, tfm)
    return tf_model
