"""Keras 3 layer configurations in tf_keras's format: option names and values translated
(dtype policies, initializers, regularizers, wrapped layers), options tf_keras lacks refused
unless left at their off value, and the tf_keras layer made from the result (see
``autotune.inputs.keras3`` for the whole rebuild)."""

from __future__ import annotations

import inspect
from collections.abc import Collection
from typing import Any

from autotune.errors import ConfigError, first_line
from autotune.inputs import custom

# Keyword arguments every tf_keras layer accepts through ``Layer.__init__(**kwargs)``.
BASE_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape", "batch_input_shape",
                "batch_size", "weights", "activity_regularizer", "autocast", "implementation"}
# Keras 3 option names that tf_keras spells differently, per layer class.
RENAMED = {"InputLayer": {"batch_shape": "batch_input_shape"}, "LeakyReLU": {"negative_slope": "alpha"}}
OBJECT_MODULES = ("keras.initializers", "keras.regularizers", "keras.constraints")


def init_params(cls: type) -> set[str]:
    params: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            params |= set(inspect.signature(klass.__init__).parameters)
    return params - {"self", "args", "kwargs"}


def filter_options(where: str, cls: type, config: dict[str, Any], extra: Collection[str] = ()) -> dict[str, Any]:
    """Keep the options ``cls`` accepts; drop unknown ones left at their off value; refuse the others."""
    known = init_params(cls) | set(extra)
    out = {}
    for key, value in config.items():
        if key in known:
            out[key] = value
        elif value is not None and value is not False:
            raise ConfigError(f"{where} uses option {key}={value!r}, which tf_keras's {cls.__name__} lacks")
    return out


def translate(where: str, value: Any, tfk: Any) -> Any:
    """A Keras 3 config value in tf_keras's format (dtype policies, initializers, regularizers...)."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        cls, cfg, module = value["class_name"], value["config"], value.get("module")
        if cls in ("DTypePolicy", "FloatDTypePolicy"):
            return cfg["name"]
        if cls == "__tuple__":
            return tuple(translate(where, v, tfk) for v in cfg["value"])
        if module == "keras.layers" and not value.get("registered_name"):
            # A layer inside a wrapper (Bidirectional's forward and backward layers, TimeDistributed's).
            tf_cls = getattr(tfk.layers, cls, None)
            if isinstance(tf_cls, type):
                inner = {RENAMED.get(cls, {}).get(k, k): translate(where, v, tfk) for k, v in cfg.items()}
                return {"class_name": cls, "config": filter_options(f"{where} {cls}", tf_cls, inner, BASE_KWARGS)}
        if module in OBJECT_MODULES and not value.get("registered_name"):
            tf_cls = getattr(getattr(tfk, module.split(".")[1]), cls, None)
            if isinstance(tf_cls, type):
                inner = {k: translate(where, v, tfk) for k, v in cfg.items()}
                return {"class_name": cls, "config": filter_options(f"{where} {cls}", tf_cls, inner)}
        raise ConfigError(f"{where} uses {cls} ({module or 'custom'}), which tf_keras cannot rebuild")
    if isinstance(value, (list, tuple)):
        return type(value)(translate(where, v, tfk) for v in value)
    if isinstance(value, dict):
        return {k: translate(where, v, tfk) for k, v in value.items()}
    return value


def tf_layer(where: str, cls_name: str, config: dict[str, Any], tfk: Any, entry: dict[str, Any] | None = None) -> Any:
    # A layer of the user's own (from --custom-objects) first, else tf_keras's namesake.
    tf_cls = (custom.tf_keras_class(entry) if entry else None) or getattr(tfk.layers, cls_name, None)
    if not isinstance(tf_cls, type):
        raise ConfigError(f"{where} has no tf_keras equivalent")
    for old, new in RENAMED.get(cls_name, {}).items():
        if old in config:
            config[new] = config.pop(old)
    config = filter_options(where, tf_cls, translate(where, config, tfk), BASE_KWARGS)
    try:
        return tf_cls.from_config(config)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where} cannot be rebuilt in tf_keras: {first_line(e)}") from None
