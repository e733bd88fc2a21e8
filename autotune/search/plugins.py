"""Loading search spaces and objectives by name or path, and a study's objective with its limits.

A name is looked up in the working directory's ``search_spaces/`` (or ``objectives/``) first,
then among the built-ins that ship with the package; a value ending in ``.py`` is a path.
These files are Python that the user chose to run: they are imported, with their effects.
"""

from __future__ import annotations

import importlib.util
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotune.errors import ConfigError
from autotune.inputs.config import StudyConfig
from autotune.inputs.pyfile import import_file
from autotune.search.objective import Constraint, Objective


def _builtin_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the built-in {package} package is missing; reinstall autotune")
    return Path(next(iter(spec.submodule_search_locations)))


def builtin_names(kind: str) -> list[str]:
    """The names of the built-in spaces (``kind`` "search_spaces") or objectives ("objectives")."""
    return sorted(p.stem for p in _builtin_dir(kind).glob("*.py") if not p.stem.startswith("_"))


def builtin_path(kind: str, name: str) -> Path:
    """The file of a built-in, never one of the working directory's of the same name."""
    if name not in builtin_names(kind):
        raise ConfigError(f"{kind[:-1].replace('_', ' ')} must be one of {', '.join(builtin_names(kind))}, not {name!r}")
    return (_builtin_dir(kind) / f"{name}.py").resolve()


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
    raise ConfigError(f"unknown {kind[:-1].replace('_', ' ')} {name_or_path!r}; built-in: {', '.join(builtin_names(kind))}")


def _import(path: Path, attribute: str) -> Callable[..., Any]:
    fn = getattr(import_file(path), attribute, None)
    if not callable(fn):
        raise ConfigError(f"{path} defines no function {attribute}()")
    return fn


def load_space(name_or_path: str) -> Callable[..., Any]:
    return _import(resolve("search_spaces", name_or_path), "space")


def load_objective(name_or_path: str) -> Callable[..., Any]:
    return _import(resolve("objectives", name_or_path), "objective")


def build_objective(config: StudyConfig) -> Objective:
    """The study's objective, with the study's own limits (p99, size) added as constraints."""
    make_objective = load_objective(config.objective)
    try:
        objective = make_objective(config.max_accuracy_drop)
    except Exception as e:  # noqa: BLE001 - the user's file may raise anything; say which and why
        raise ConfigError(f"objective {config.objective!r} raised {type(e).__name__}: {e}") from None
    if not isinstance(objective, Objective):
        raise ConfigError(f"objective {config.objective!r} returned {type(objective).__name__}, not an Objective")
    extra = []
    if config.max_p99_ms is not None:
        extra.append(Constraint("latency_p99_ms", config.max_p99_ms))
    if config.max_size_kb is not None:
        extra.append(Constraint("size_bytes", config.max_size_kb * 1024))
    return dataclasses.replace(objective, constraints=(*objective.constraints, *extra)) if extra else objective
