"""Importing a Python file the user chose to run: a space, an objective, a custom-objects file."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from autotune.errors import ConfigError


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
