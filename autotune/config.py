"""StudyConfig: everything that defines a study, checked at the boundary (CLI, stored JSON).

The fields in ``IDENTITY`` define what a study measures; a later run or resume may not change
them. ``budget`` may grow.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autotune.errors import ConfigError

DEFAULT_STORAGE = "sqlite:///studies/autotune.db"
DEFAULT_BUDGET = 50
IDENTITY = ("model", "data", "space", "objective", "max_accuracy_drop", "seed")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class StudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    study: str
    model: str | None = None  # None: the embedded demo
    data: str | None = None
    space: str = "default"
    objective: str = "latency"
    max_accuracy_drop: float = Field(default=0.01, ge=0.0, le=1.0)
    seed: int = Field(default=0, ge=0)
    budget: int = Field(default=DEFAULT_BUDGET, ge=1)

    @property
    def is_demo(self) -> bool:
        return self.model is None

    def identity(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in IDENTITY}

    def to_json(self) -> dict[str, Any]:
        return self.model_dump()

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


def storage_url(flag: str | None) -> str:
    """--storage, then AUTOTUNE_STORAGE, then the SQLite file under ./studies."""
    return flag or os.environ.get("AUTOTUNE_STORAGE") or DEFAULT_STORAGE


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
    budget = given.get("budget")
    return stored.model_copy(update={"budget": budget}) if budget is not None else stored
