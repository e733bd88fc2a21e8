"""Fixtures. Fast tests import no TensorFlow; fixtures that need it import it lazily and are
used only by tests marked ``slow``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOTUNE_STORAGE", raising=False)
    monkeypatch.delenv("AUTOTUNE_DEBUG", raising=False)


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo model and data, trained once per test session (about 15 s)."""
    from autotune.demo import ensure_demo

    return ensure_demo(tmp_path_factory.mktemp("demo") / "studies")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_files: tuple[Path, Path]) -> Path:
    """A fresh working directory whose studies/ already holds the trained demo."""
    model, _ = demo_files
    shutil.copytree(model.parent, tmp_path / "studies" / model.parent.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def empty_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path
