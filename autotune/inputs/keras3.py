"""Keras 3 ``.keras`` files, rebuilt as tf_keras (Keras 2) models.

TF Model Optimization (pruning, clustering, quantization-aware training) only understands
tf_keras models, and tf_keras cannot read what Keras 3 writes. So a Keras 3 model of standard
layers is rebuilt here: its config is translated layer by layer into tf_keras's format, the
graph is wired again node by node, the weights are copied by layer name, and the result is
checked by comparing predictions of both models on random inputs.

Operation nodes (``x * 0.5 + 1``, ``keras.ops.mean``, MobileNetV3's hard-swish) and activations
tf_keras lacks become TF ops or standard layers (see autotune.inputs.keras3_ops). A Functional or
Sequential model used as a layer (a transfer-learning backbone, at any depth) is rebuilt as a
nested tf_keras model, its weights copied by path since names may repeat across nesting levels.
Anything that cannot be rebuilt faithfully (Lambda layers, custom layers the --custom-objects
file lacks, subclassed models, options
or operations tf_keras lacks, a prediction mismatch) is refused with one ConfigError line
naming the file and the layer.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from autotune.errors import ConfigError, first_line
from autotune.inputs import custom, keras3_ops
from autotune.inputs.keras3_config import tf_layer

# Where Keras 3 saves its own model classes, when a model is used as a layer of another.
_MODEL_MODULES = ("keras", "keras.models", "keras.src.models.functional", "keras.src.models.sequential")
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
    _check_layers(path, config, "")


def _is_model(entry: dict[str, Any]) -> bool:
    return entry.get("class_name") in ("Functional", "Sequential") and entry.get("module") in _MODEL_MODULES


def _check_layers(path: Path, model: dict[str, Any], scope: str) -> None:
    for entry in model.get("config", {}).get("layers", []):
        cls, name = entry.get("class_name"), scope + str(entry.get("config", {}).get("name"))
        if cls == "Lambda":
            raise ConfigError(f"{path}: Lambda layer {name!r} is not supported (its Python code cannot be "
                              "loaded safely); replace it with standard layers")
        if keras3_ops.is_operation(entry):
            if cls not in keras3_ops.OPERATIONS:
                raise ConfigError(f"{path}: operation {name!r} ({cls}) has no tf_keras equivalent here; "
                                  "express it with standard layers")
        elif _is_model(entry):
            _check_layers(path, entry, f"{name}/")  # a nested model: names inside are its own
        else:
            _refuse_custom(path, name, entry)
            _check_activations(path, name, entry)


def _refuse_custom(path: Path, name: str, entry: dict[str, Any]) -> None:
    """The one place that decides a layer is not Keras's own (registered under a package of the
    user's, or from a module outside keras.layers), so it cannot be rebuilt from its config."""
    if entry.get("module") != "keras.layers" or entry.get("registered_name"):
        custom.check_keras3_layer(path, entry, name)  # the --custom-objects file must load and rebuild it


def _check_activations(path: Path, name: str, entry: dict[str, Any]) -> None:
    for key, value in entry.get("config", {}).items():
        if (key == "activation" or key.endswith("_activation")) and isinstance(value, str):
            # only a layer's main activation can move out of the layer into ops of its own
            movable = key == "activation" and value in keras3_ops.GRAPH_ACTIVATIONS
            if value not in keras3_ops.SAME_ACTIVATIONS and not movable:
                raise ConfigError(f"{path}: layer {name!r} ({entry.get('class_name')}) uses {key}={value!r}, "
                                  "which tf_keras lacks or computes differently")


class _Rebuild:
    """One file's rebuild: where errors point, and the TensorFlow modules (loaded late)."""

    def __init__(self, path: Path, tf: Any, tfk: Any) -> None:
        self.path, self.tf, self.tfk = path, tf, tfk


class _Unit:
    """What one Keras 3 layer, nested model or operation becomes in tf_keras: a ``layer``, and/or
    ``after``, which adds ops to the graph: on the layer's output (an activation tf_keras lacks,
    moved out of the layer) or, with no layer, on the node's inputs (an operation)."""

    def __init__(self, layer: Any = None, after: Callable[[list[Any], dict[str, Any], str], Any] | None = None):
        self.layer, self.after = layer, after

    def __call__(self, args: list[Any], kwargs: dict[str, Any], name: str) -> Any:
        if self.after is None:
            return self.layer(*args, **kwargs)
        if self.layer is None:
            return self.after(args, kwargs, name)
        return self.after([self.layer(*args, **kwargs)], {}, name)


def _unit(rb: _Rebuild, entry: dict[str, Any], scope: str) -> _Unit:
    cls, config = entry["class_name"], dict(entry["config"])
    tf, tfk, name = rb.tf, rb.tfk, scope + str(config.get("name"))
    if keras3_ops.is_operation(entry):
        return _Unit(after=lambda a, k, n: keras3_ops.call_operation(tf, tfk, cls, config, a, k, n))
    if _is_model(entry):
        return _Unit(_model(rb, entry, f"{name}/"))
    where = f"{rb.path}: layer {name!r} ({cls})"
    act, after = config.get("activation"), None
    if isinstance(act, str) and act in keras3_ops.GRAPH_ACTIVATIONS:
        if cls == "Activation":  # the whole layer becomes the activation's ops, its last layer named like it
            return _Unit(after=lambda a, k, n: keras3_ops.apply_activation(tf, tfk, act, a[0], n))
        config["activation"] = "linear"
        after = lambda a, k, n: keras3_ops.apply_activation(tf, tfk, act, a[0], f"{n}_{act}")  # noqa: E731
    for key, value in config.items():  # _check_activations let only these through
        if (key == "activation" or key.endswith("_activation")) and isinstance(value, str):
            config[key] = keras3_ops.SAME_ACTIVATIONS[value]
    return _Unit(tf_layer(where, cls, config, tfk, entry), after)


def _tensor_refs(value: Any) -> list[tuple[str, int, int]]:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        return [(name, node, index)]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else []
    return [ref for v in items for ref in _tensor_refs(v)]


def _substitute(value: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    """A saved node argument with its tensors and constants (arrays, slices ...) as Python values."""
    if isinstance(value, dict) and "config" in value:
        kind, cfg = value.get("class_name"), value["config"]
        if kind == "__keras_tensor__":
            return tensors[tuple(cfg["keras_history"])]
        if kind in ("__numpy__", "__tensor__"):
            return np.asarray(cfg["value"], dtype=cfg.get("dtype"))
        if kind == "__slice__":
            return slice(*(_substitute(cfg.get(k), tensors) for k in ("start", "stop", "step")))
        if kind == "__ellipsis__":
            return Ellipsis
        if kind == "__tuple__":
            return tuple(_substitute(v, tensors) for v in cfg["value"])
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


def _input_layer(rb: _Rebuild, entry: dict[str, Any], scope: str) -> Any:
    where = f"{rb.path}: layer {scope + str(entry['config'].get('name'))!r} (InputLayer)"
    return tf_layer(where, "InputLayer", dict(entry["config"]), rb.tfk)


def _functional(rb: _Rebuild, config: dict[str, Any], scope: str) -> Any:
    units, tensors, kinds = {}, {}, {}
    for entry in config["layers"]:
        name = entry["config"]["name"]
        kind = "operation" if keras3_ops.is_operation(entry) else "layer"
        kinds[name] = f"{kind} {scope + name!r} ({entry['class_name']})"
        if entry["class_name"] == "InputLayer":
            tensors[(name, 0, 0)] = _input_layer(rb, entry, scope).output
        else:
            units[name] = _unit(rb, entry, scope)
    pending = [(lc["config"]["name"], i, node) for lc in config["layers"] if lc["class_name"] != "InputLayer"
               for i, node in enumerate(lc.get("inbound_nodes", []))]
    while pending:  # the layer list is in topological order, so this normally takes one pass
        ready = [all(ref in tensors for ref in _tensor_refs(p[2])) for p in pending]
        if not any(ready):
            raise ConfigError(f"{rb.path}: the model graph cannot be rebuilt "
                              f"({kinds[pending[0][0]]} has unknown inputs)")
        for name, index, node in (p for p, ok in zip(pending, ready) if ok):
            kwargs = {k: v for k, v in _substitute(node.get("kwargs", {}), tensors).items() if v is not None}
            try:  # a second call of one layer or operation names the layers it makes apart
                out = units[name](list(_substitute(node.get("args", []), tensors)), kwargs,
                                  name if index == 0 else f"{name}_call{index}")
            except (TypeError, ValueError, KeyError, IndexError) as e:
                raise ConfigError(f"{rb.path}: {kinds[name]} cannot be rebuilt in tf_keras: {first_line(e)}") from None
            for j, t in enumerate(out if isinstance(out, (list, tuple)) else [out]):
                tensors[(name, index, j)] = t
        pending = [p for p, ok in zip(pending, ready) if not ok]
    return rb.tfk.Model(_endpoints(config["input_layers"], tensors), _endpoints(config["output_layers"], tensors),
                        name=config.get("name"))


def _sequential(rb: _Rebuild, config: dict[str, Any], scope: str) -> Any:
    entries = config["layers"]
    if entries and entries[0]["class_name"] == "InputLayer":
        head, entries = _input_layer(rb, entries[0], scope), entries[1:]
    elif config.get("build_input_shape"):
        head = rb.tfk.layers.InputLayer(batch_input_shape=tuple(config["build_input_shape"]))
    else:
        raise ConfigError(f"{rb.path}: the Sequential model {scope or config.get('name')!r} was never built, "
                          "so its input shape is unknown")
    units = [_unit(rb, entry, scope) for entry in entries]
    if all(u.after is None for u in units):
        return rb.tfk.Sequential([head, *(u.layer for u in units)], name=config.get("name"))
    x = head.output  # some layer became several ops, which only a Functional graph can hold
    for entry, unit in zip(entries, units):
        try:
            x = unit([x], {}, entry["config"]["name"])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{rb.path}: layer {scope + entry['config']['name']!r} cannot be rebuilt "
                              f"in tf_keras: {first_line(e)}") from None
    return rb.tfk.Model(head.output, x, name=config.get("name"))


def _model(rb: _Rebuild, entry: dict[str, Any], scope: str) -> Any:
    """A Keras 3 Functional or Sequential model (the file's, or one nested in it) as a tf_keras model."""
    config = entry["config"]
    build = _functional if entry["class_name"] == "Functional" else _sequential
    try:
        model = build(rb, config, scope)
    except (TypeError, ValueError) as e:  # e.g. two layers of one name, which tf_keras refuses
        raise ConfigError(f"{rb.path}: model {scope or config.get('name')!r} cannot be rebuilt in tf_keras: "
                          f"{first_line(e)}") from None
    if config.get("trainable") is False:  # a frozen backbone stays frozen
        model.trainable = False
    return model


def _is_model_object(layer: Any) -> bool:
    return type(layer).__name__ in ("Functional", "Sequential")


def _copy_weights(path: Path, k3_model: Any, tf_model: Any, scope: str = "") -> None:
    """Weights copied layer by layer, into nested models by path: names repeat across nesting levels."""
    tf_layers = {layer.name: layer for layer in tf_model.layers}
    k3_layers = {layer.name: layer for layer in k3_model.layers}
    if missing := [n for n, layer in tf_layers.items() if layer.weights and n not in k3_layers]:
        raise ConfigError(f"{path}: rebuilt layer {scope + missing[0]!r} has no counterpart in the Keras 3 model")
    for name, layer in k3_layers.items():
        source, target = layer.get_weights(), tf_layers.get(name)
        if target is None:
            if source:
                raise ConfigError(f"{path}: layer {scope + name!r} is missing from the rebuilt tf_keras model")
            continue
        if _is_model_object(layer) and _is_model_object(target):
            _copy_weights(path, layer, target, f"{scope}{name}/")
            continue
        shapes, tf_shapes = [w.shape for w in source], [tuple(w.shape) for w in target.get_weights()]
        if shapes != tf_shapes:
            raise ConfigError(f"{path}: layer {scope + name!r} has weights {shapes} in Keras 3 "
                              f"but {tf_shapes} in tf_keras")
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
    keras = _keras.keras3()

    try:
        with _keras.native_stderr_silenced():
            k3_model = keras.saving.load_model(path, compile=False, safe_mode=True, custom_objects=custom.keras3_objects())
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds; the user needs one line
        raise ConfigError(f"cannot load Keras 3 model {path}: {first_line(e)}") from None
    kind = "Sequential" if isinstance(k3_model, keras.Sequential) else "Functional"
    tf_model = _model(_Rebuild(path, tfm, tfk), {"class_name": kind, "config": k3_model.get_config()}, "")
    _copy_weights(path, k3_model, tf_model)
    _verify(path, k3_model, tf_model, tfm)
    return tf_model
