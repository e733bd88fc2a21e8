"""StudyConfig: everything that defines a study, checked at the boundary (CLI, study file,
stored JSON).

The fields in ``IDENTITY`` define what a study measures; a later run or resume may not change
them. ``budget`` may grow.

One precedence rule everywhere: the command line over the study file over the defaults
(for the storage, the defaults are ``$AUTOTUNE_STORAGE`` and then the SQLite file). Study
files are TOML, parsed and never executed.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autotune.errors import ConfigError

DEFAULT_STORAGE = "sqlite:///studies/autotune.db"
DEFAULT_BUDGET = 50
IDENTITY = ("model", "data", "val_data", "custom_objects", "space", "objective", "max_accuracy_drop", "max_p99_ms", "max_size_kb", "seed")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class StudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    study: str
    model: str | None = None  # None: the embedded demo
    data: str | None = None  # .npz, image directory, or module:function loader
    val_data: str | None = None  # a separate validation .npz or image directory
    # A .py file of the user's layers (and functions) that the model needs to load; stored, so
    # that every process that loads the model imports it. Running it needs trust_model_code.
    custom_objects: str | None = None
    space: str = "default"
    objective: str = "latency"
    # The quality limit: accuracy points for classification, MAE units for regression.
    max_accuracy_drop: float = Field(default=0.01, ge=0.0)
    max_p99_ms: float | None = Field(default=None, gt=0.0)
    max_size_kb: float | None = Field(default=None, gt=0.0)
    # The user said the model file's code (Lambda layers) may run when it is loaded.
    trust_model_code: bool = False
    seed: int = Field(default=0, ge=0)
    budget: int = Field(default=DEFAULT_BUDGET, ge=1)

    @property
    def is_demo(self) -> bool:
        return self.model is None

    def identity(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in IDENTITY}

    def to_json(self) -> dict[str, Any]:
        """What the study stores: never the trust in the model's code, which each command
        that loads the model must be given again."""
        return self.model_dump(exclude={"trust_model_code"})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ConfigError(f"the stored study configuration is unreadable: {e.errors()[0]['msg']}") from None


def study_name_for(model: str | None) -> str:
    if model is None:
        return "demo"
    stem = Path(model.rstrip("/")).name
    for suffix in (".keras", ".h5"):
        stem = stem.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9_.-]", "-", stem) or "model"


def check_study_name(name: str) -> str:
    if not _STUDY_NAME.match(name):
        raise ConfigError(f"study name {name!r} must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def storage_url(flag: str | None, file_value: str | None = None) -> str:
    """--storage, then the study file's, then AUTOTUNE_STORAGE, then the SQLite file under ./studies."""
    return flag or file_value or os.environ.get("AUTOTUNE_STORAGE") or DEFAULT_STORAGE


class _FileConstraints(BaseModel):
    """A study file's ``[constraints]`` table."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_accuracy_drop: float | None = None
    max_p99_ms: float | None = None
    max_size_kb: float | None = None


class _StudyFile(BaseModel):
    """What a study file may hold, typed as TOML gives it: strict, so ``budget = "10"`` or
    ``seed = true`` is refused rather than converted. The limits may also stand at the top."""

    model_config = ConfigDict(extra="forbid", strict=True)

    study: str | None = None
    model: str | None = None
    data: str | None = None
    val_data: str | None = None
    custom_objects: str | None = None
    space: str | None = None
    objective: str | None = None
    budget: int | None = None
    seed: int | None = None
    storage: str | None = None
    trust_model_code: bool | None = None
    max_accuracy_drop: float | None = None
    max_p99_ms: float | None = None
    max_size_kb: float | None = None
    constraints: _FileConstraints = Field(default_factory=_FileConstraints)


CONSTRAINT_KEYS = tuple(_FileConstraints.model_fields)
FILE_KEYS = tuple(k for k in _StudyFile.model_fields if k not in CONSTRAINT_KEYS and k != "constraints")
_PATH_KEYS = ("model", "data", "val_data", "custom_objects")
# How a study file's error names the type a key needs (pydantic's error types).
_KINDS = {"int_type": "an integer", "float_type": "a number", "string_type": "a string", "bool_type": "true or false"}


def _file_error(path: Path, e: ValidationError) -> ConfigError:
    """The first of pydantic's errors as one line naming the file and the key; an unknown key
    first, since a misspelt key is the likelier mistake."""
    errors = e.errors()
    err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return ConfigError(
            f"study file {path}: unknown key {key!r}; known: {', '.join(FILE_KEYS)}, "
            f"[constraints] {', '.join(CONSTRAINT_KEYS)}"
        )
    if key == "constraints" and err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return ConfigError(f"study file {path}: 'constraints' must be a table ([constraints])")
    if err["type"] in _KINDS:
        return ConfigError(f"study file {path}: {key} must be {_KINDS[err['type']]}, got {err['input']!r}")
    return ConfigError(f"study file {path}: {key}: {err['msg']}")


def resolve_data(folder: Path, value: str) -> str:
    """A data path relative to ``folder`` made absolute; a ``module:function`` loader stays as
    it is, and a ``file.py:function`` loader gets its file resolved."""
    return _relative_to(folder, value)


def _relative_to(folder: Path, value: str, *, plugin: bool = False) -> str:
    """A path in a study file is relative to the file's folder; a name stays a name, and a
    ``module:function`` loader stays as it is (a ``file.py:function`` gets its file resolved)."""
    if plugin:
        return value if not (value.endswith(".py") or "/" in value) else str((folder / value).resolve())
    loader = re.match(r"^(?P<file>.+\.py):(?P<fn>[A-Za-z_]\w*)$", value)
    if loader:
        return f"{(folder / loader['file']).resolve()}:{loader['fn']}"
    if re.match(r"^[\w.]+:[A-Za-z_]\w*$", value):
        return value
    return str((folder / Path(value).expanduser()).resolve())


def read_study_file(path: Path) -> dict[str, Any]:
    """The settings of a ``studies/NAME.toml``, flattened to the command line's names.

    The study name defaults to the file's stem; relative paths are resolved against the
    file's folder, so the file works from any working directory.
    """
    if not path.is_file():
        raise ConfigError(f"study file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"study file {path} is not valid TOML: {e}") from None
    try:
        parsed = _StudyFile.model_validate(raw)
    except ValidationError as e:
        raise _file_error(path, e) from None
    constraints = parsed.constraints.model_dump(exclude_unset=True)
    values: dict[str, Any] = parsed.model_dump(exclude_unset=True, exclude={"constraints"})
    clash = sorted(set(values) & set(constraints))
    if clash:
        raise ConfigError(f"study file {path}: {clash[0]!r} is set both at the top and in [constraints]")
    values.update(constraints)
    folder = path.parent.resolve()
    for key, value in values.items():
        if key in _PATH_KEYS:
            values[key] = _relative_to(folder, value)
        elif key in ("space", "objective"):
            values[key] = _relative_to(folder, value, plugin=True)
        elif key == "storage" and value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
            relative = value.removeprefix("sqlite:///")
            if relative and relative != ":memory:":
                values[key] = f"sqlite:///{(folder / relative).resolve()}"
    values.setdefault("study", path.stem)
    return values


def layered(flags: dict[str, Any], file_values: dict[str, Any]) -> dict[str, Any]:
    """The command line over the study file; unset flags are None and let the file speak."""
    merged = dict(file_values)
    merged.update({k: v for k, v in flags.items() if v is not None})
    return merged


def check_trusted(config: StudyConfig) -> None:
    """Refuse to load a study's model with its --custom-objects file unless this command was
    given --trust-model-code: the trust is never stored, the file's path is."""
    if config.custom_objects is not None and not config.trust_model_code:
        raise ConfigError(
            f"study {config.study!r} loads its model with --custom-objects {config.custom_objects}, Python that runs "
            "when the model loads; if you trust it, pass --trust-model-code"
        )


def make_config(**fields: Any) -> StudyConfig:
    try:
        return StudyConfig(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"--{where.replace('_', '-')}: {err['msg']}") from None


def merge_with_stored(stored: StudyConfig, given: dict[str, Any]) -> StudyConfig:
    """Continue a stored study: flags may repeat its identity but not contradict it."""
    for key, value in given.items():
        if value is None or key not in IDENTITY:
            continue
        if value != getattr(stored, key):
            raise ConfigError(
                f"study {stored.study!r} was created with --{key.replace('_', '-')} {getattr(stored, key)!r}; "
                f"it cannot continue with {value!r} (start a new study with --study NAME)"
            )
    update = {k: given[k] for k in ("budget", "trust_model_code") if given.get(k) is not None}
    return stored.model_copy(update=update) if update else stored
