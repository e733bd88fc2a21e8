"""Loading search spaces and objectives by name or path.

A name is looked up in the working directory's ``search_spaces/`` (or ``objectives/``) first,
then among the built-ins that ship with the package; a value ending in ``.py`` is a path.
These files are Python that the user chose to run: they are imported, with their effects.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from autotune.errors import ConfigError


def _builtin_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the built-in {package} package is missing; reinstall autotune")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve(kind: str, name_or_path: str) -> Path:
    """The file a space or objective name refers to. ``kind`` is the folder name."""
    if name_or_path.endswith(".py") or "/" in name_or_path:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"{kind[:-1].replace('_', ' ')} file not found: {path}")
        return path.resolve()
    for folder in (Path.cwd() / kind, _builtin_dir(kind)):
        candidate = folder / f"{name_or_path}.py"
        if candidate.is_file():
            return candidate.resolve()
    known = sorted(p.stem for p in _builtin_dir(kind).glob("*.py") if not p.stem.startswith("_"))
    raise ConfigError(f"unknown {kind[:-1].replace('_', ' ')} {name_or_path!r}; built-in: {', '.join(known)}")


def import_file(path: Path) -> ModuleType:
    """Import the user's file ``path`` as a module (again, if it was: a space file edited
    between two runs of one process is read afresh); raises ConfigError if it raises."""
    module_name = f"autotune_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    # Registered, under a name made from the path alone, so that its classes (a technique or
    # a layer of the user's own) pickle across to the process that runs trials, which imports
    # the same file under the same name.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's file may raise anything; say which and why
        del sys.modules[module_name]
        raise ConfigError(f"{path} raised on import: {type(e).__name__}: {e}") from e
    return module


def _import(path: Path, attribute: str) -> Callable[..., Any]:
    fn = getattr(import_file(path), attribute, None)
    if not callable(fn):
        raise ConfigError(f"{path} defines no function {attribute}()")
    return fn


def load_space(name_or_path: str) -> Callable[..., Any]:
    return _import(resolve("search_spaces", name_or_path), "space")


def load_objective(name_or_path: str) -> Callable[..., Any]:
    return _import(resolve("objectives", name_or_path), "objective")
