"""Custom Keras objects from a file of the user's (``--custom-objects layers.py``).

The file is Python the user chose to run (``--trust-model-code`` says so); it is imported
once in every process that loads the model: the trial process, each worker, ``export``.
What it offers:

- every tf_keras ``Layer`` subclass among its names (defined there or imported from the
  user's own package), for tf_keras ``.keras``/``.h5`` files and for autotune's cache;
- every Keras 3 ``Layer`` subclass, to load a Keras 3 ``.keras`` file, and for each one the
  tf_keras class the model is rebuilt with: the one named in ``TF_KERAS = {"Scale": ScaleTF}``,
  or else one made here from the Keras 3 class's own methods (which works when they use only
  ``keras.ops``, tensors and ``self.add_weight(...)`` with keywords); keras3.py verifies the
  rebuilt model's outputs either way, so a translation that is wrong is refused, not used;
- whatever ``CUSTOM_OBJECTS = {"name": obj}`` lists (activations, functions).

The set loaded last in a process is its active one: the process serves one study, and the
cache is read deep inside a trial, far from the configuration that named the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import ConfigError

# Packages whose layers are Keras' own, never the user's.
_KERAS_PACKAGES = ("keras", "tf_keras", "tensorflow", "tensorflow_model_optimization")
_NOT_COPIED = {"__dict__", "__weakref__", "__module__", "__qualname__", "__doc__"}


@dataclass(frozen=True)
class CustomObjects:
    path: Path
    tf_keras: dict[str, Any] = field(default_factory=dict)  # name -> object, for tf_keras loads
    keras3: dict[str, Any] = field(default_factory=dict)  # name -> Keras 3 class, to read a Keras 3 file
    twins: dict[str, type] = field(default_factory=dict)  # Keras 3 layer name -> its tf_keras class
    untranslatable: dict[str, str] = field(default_factory=dict)  # Keras 3 layer name -> why it has no twin


_loaded: dict[Path, CustomObjects] = {}
_active: CustomObjects | None = None


def use(path: str | Path | None) -> CustomObjects | None:
    """Import the file (once per process) and make its objects the active set; None clears it."""
    global _active
    if path is None:
        _active = None
        return None
    path = Path(path).expanduser().resolve()
    if path not in _loaded:
        _loaded[path] = _load(path)
    _active = _loaded[path]
    return _active


def scope() -> contextlib.AbstractContextManager[Any]:
    """tf_keras's custom-object scope of the active set (a no-op without one)."""
    if _active is None:
        return contextlib.nullcontext()
    from autotune._keras import keras

    return keras().utils.custom_object_scope(_active.tf_keras)


def keras3_objects() -> dict[str, Any]:
    return dict(_active.keras3) if _active is not None else {}


def model_key(file_key: str, custom_objects: str | None) -> str:
    """The cache's key of the base model: its file's, with the custom file's content (the same
    weights are another model if a layer's code changes); just the file's without one."""
    if custom_objects is None:
        return file_key
    code = hashlib.sha256(Path(custom_objects).read_bytes()).hexdigest()
    return hashlib.sha256(f"{file_key}+{code}".encode()).hexdigest()[:24]


def _is_builtin(cls: type) -> bool:
    return cls.__module__.split(".")[0] in _KERAS_PACKAGES


def _load(path: Path) -> CustomObjects:
    from autotune import _keras
    from autotune.inputs.pyfile import import_file

    if not path.is_file():
        raise ConfigError(f"custom objects file not found: {path}")
    if path.suffix != ".py":
        raise ConfigError(f"--custom-objects {path} must be a .py file")
    tfk = _keras.keras()  # first, so that TF_USE_LEGACY_KERAS holds for the file's imports
    module = import_file(path)
    k3 = sys.modules.get("keras")  # Keras 3, only if the file (or TensorFlow) imported it
    out = CustomObjects(path)
    k3_classes: list[type] = []
    for value in list(vars(module).values()):
        if not isinstance(value, type) or _is_builtin(value):
            continue
        if issubclass(value, tfk.layers.Layer):
            _add(out.tf_keras, value, tfk.saving.get_registered_name(value))
        elif k3 is not None and issubclass(value, k3.layers.Layer):
            _add(out.keras3, value, k3.saving.get_registered_name(value))
            k3_classes.append(value)
    for attribute, kind in (("CUSTOM_OBJECTS", None), ("TF_KERAS", tfk.layers.Layer)):
        table = getattr(module, attribute, {})
        if not isinstance(table, dict) or not all(isinstance(k, str) for k in table):
            raise ConfigError(f"{path}: {attribute} must be a dict of names to {'objects' if kind is None else 'tf_keras layer classes'}")
        for name, obj in table.items():
            if kind is None:
                out.tf_keras[name] = out.keras3[name] = obj
            elif not (isinstance(obj, type) and issubclass(obj, kind)):
                raise ConfigError(f"{path}: TF_KERAS[{name!r}] is {obj!r}, not a tf_keras Layer subclass")
            else:
                out.twins[name] = obj
                out.tf_keras.setdefault(obj.__name__, obj)
    # A Keras 3 layer without a twin of the user's gets a translated one, under each of its names.
    for cls in k3_classes:
        names = {cls.__name__, k3.saving.get_registered_name(cls)}
        if names & set(out.twins):
            continue
        try:
            twin = _translated(cls, tfk)
        except _NoTwin as e:
            out.untranslatable.update(dict.fromkeys(names, str(e)))
            continue
        out.twins.update(dict.fromkeys(names, twin))
        out.tf_keras.setdefault(twin.__name__, twin)
    return out


def _add(table: dict[str, Any], cls: type, registered: str) -> None:
    table[cls.__name__] = cls
    table[registered] = cls


class _NoTwin(Exception):
    pass


def _translated(cls: type, tfk: Any) -> type:
    """A tf_keras class with the Keras 3 class's own methods: its Keras 3 layer bases become
    their tf_keras namesakes, and zero-argument ``super()`` inside the methods is pointed at
    the new class (it is bound to the class a function was written in)."""
    bases = []
    for base in cls.__bases__:
        if not hasattr(base, "add_weight"):  # a plain mixin: shared as it is
            bases.append(base)
        elif _is_builtin(base) and isinstance(getattr(tfk.layers, base.__name__, None), type):
            bases.append(getattr(tfk.layers, base.__name__))
        else:
            raise _NoTwin(f"it derives from {base.__name__}, a layer class with no tf_keras namesake")
    twin = types.new_class(cls.__name__, tuple(bases))
    for name, value in vars(cls).items():
        if name not in _NOT_COPIED:
            setattr(twin, name, _rebound(value, cls, twin))
    twin.__module__, twin.__qualname__, twin.__doc__ = cls.__module__, cls.__qualname__, cls.__doc__
    return twin


def _rebound(value: Any, old: type, new: type) -> Any:
    if isinstance(value, (staticmethod, classmethod)):
        return type(value)(_rebound(value.__func__, old, new))
    if isinstance(value, property):
        return property(*(f and _rebound(f, old, new) for f in (value.fget, value.fset, value.fdel)), value.__doc__)
    if not isinstance(value, types.FunctionType) or "__class__" not in value.__code__.co_freevars:
        return value
    cells = tuple(
        types.CellType(new) if name == "__class__" and cell.cell_contents is old else cell
        for name, cell in zip(value.__code__.co_freevars, value.__closure__ or ())
    )
    fn = types.FunctionType(value.__code__, value.__globals__, value.__name__, value.__defaults__, cells)
    fn.__kwdefaults__, fn.__dict__, fn.__qualname__ = value.__kwdefaults__, dict(value.__dict__), value.__qualname__
    return fn


# --- what keras3.py and data.py ask --------------------------------------------------------


def _is_custom(layer_config: dict[str, Any]) -> bool:
    return layer_config.get("module") != "keras.layers" or bool(layer_config.get("registered_name"))


def tf_keras_class(layer_config: dict[str, Any]) -> type | None:
    """The tf_keras class that rebuilds a Keras 3 custom layer, or None (a standard layer)."""
    if _active is None or not _is_custom(layer_config):
        return None
    names = (layer_config.get("registered_name"), layer_config.get("class_name"))
    return next((_active.twins[n] for n in names if n in _active.twins), None)


def check_keras3_layer(path: Path, layer_config: dict[str, Any], name: str | None = None) -> None:
    """Refuse, with one line naming it (``name``: its path through nested models), a Keras 3
    custom layer the file cannot load or rebuild."""
    cls, name = layer_config.get("class_name"), name or layer_config.get("config", {}).get("name")
    where = f"{path}: custom layer {name!r} ({cls})"
    if _active is None:
        raise ConfigError(f"{where} needs its class: pass --custom-objects FILE.py that defines it, with --trust-model-code")
    names = [n for n in (layer_config.get("registered_name"), cls) if n]
    if not any(n in _active.keras3 for n in names):
        tf_only = f" as a Keras 3 class (its {cls} is tf_keras's)" if cls in _active.tf_keras else ""
        raise ConfigError(f"{where} is not in --custom-objects {_active.path}{tf_only}")
    if tf_keras_class(layer_config) is None:
        why = next((f" ({_active.untranslatable[n]})" for n in names if n in _active.untranslatable), "")
        raise ConfigError(f"{where} has no tf_keras class in {_active.path}{why}; name one in TF_KERAS = {{{cls!r}: ...}}")


def unknown_layers(config: Any, known: Any, builtin: Callable[[str], bool]) -> Iterator[tuple[str, str]]:
    """(name, class) of each layer in a saved tf_keras model config (nested models included)
    whose class is neither tf_keras's own (``builtin``) nor in ``known``."""
    if isinstance(config, dict):
        cls, inner = config.get("class_name"), config.get("config")
        if isinstance(cls, str) and isinstance(inner, dict) and isinstance(inner.get("name"), str) and "layers" not in inner:
            ours = str(config.get("module", "keras")).startswith(("keras", "tf_keras")) and builtin(cls)
            if not ours and cls not in known and config.get("registered_name") not in known:
                yield inner["name"], cls
            return
        for value in config.values():
            yield from unknown_layers(value, known, builtin)
    elif isinstance(config, list):
        for value in config:
            yield from unknown_layers(value, known, builtin)


def explain_unknown(path: Path) -> None:
    """After tf_keras failed to load ``path``: if a layer's class is unknown, say which, in one line."""
    import json
    import zipfile

    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
        elif path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as f:
                config = json.loads(f.attrs["model_config"])
        else:
            return
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return
    from autotune._keras import tf_keras_builtin_layer as get_builtin_layer  # tf_keras's own table, op layers included

    known = _active.tf_keras if _active is not None else {}
    model = config.get("config", config) if isinstance(config, dict) else config
    for name, cls in unknown_layers(model, known, lambda c: get_builtin_layer(c) is not None):
        if _active is None:
            raise ConfigError(f"model {path}: custom layer {name!r} ({cls}) needs its class: pass --custom-objects FILE.py "
                              "that defines it, with --trust-model-code")
        raise ConfigError(f"model {path}: custom layer {name!r} ({cls}) is not in --custom-objects {_active.path}")
