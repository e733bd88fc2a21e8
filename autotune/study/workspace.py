"""What trials need, loaded once: the workspace where trials run (model, data, builder,
cache, baseline, timer) and the plan where they are sampled (space, objective, references:
no model, no data, no TensorFlow)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from autotune.build.cache import ContentCache
from autotune.build.candidate import Builder
from autotune.inputs import custom
from autotune.inputs.config import StudyConfig
from autotune.inputs.data import Dataset, file_key
from autotune.inputs.model import load_inputs
from autotune.measure.host import HostLock, host_peak
from autotune.measure.sentinel import host_sentinel
from autotune.measure.stats import environment, usable_cores
from autotune.measure.timing import Timer, TimingPolicy
from autotune.search.objective import Objective
from autotune.search.plugins import build_objective, load_space
from autotune.search.recipe import BASELINE_REF, Recipe, reference_recipes
from autotune.study.settings import Settings


@dataclass
class Workspace:
    """Everything a trial needs, loaded and checked once before any trial runs."""

    config: StudyConfig
    data: Dataset
    builder: Builder
    cache: ContentCache
    baseline: Recipe
    env: dict[str, Any]
    peak: dict[str, float]
    lock: HostLock
    policy: TimingPolicy
    sentinel: Path | None = None
    _timer: Timer | None = None

    def _baseline_at(self, batch: int) -> Path:
        """The baseline recipe's artifact converted for ``batch`` (from the cache when built)."""
        runtime = dataclasses.replace(self.baseline.runtime, batch_size=batch)
        path = self.builder.build(dataclasses.replace(self.baseline, runtime=runtime)).path
        assert path is not None
        return path

    def timer(self) -> Timer:
        """The study's timer; its baseline artifact comes from the cache (the baseline trial
        built it first)."""
        if self._timer is None:
            path = self.builder.build(self.baseline).path
            assert path is not None
            baseline_at = self._baseline_at if self.builder.fixed_batch() else None
            self._timer = Timer(path, self.baseline.runtime, self.peak, self.lock, self.policy, baseline_at, sentinel=self.sentinel)
        return self._timer


def open_workspace(config: StudyConfig, settings: Settings) -> Workspace:
    """Load and check model and data where trials run; raises ConfigError before any write.
    The space is imported here too: techniques of the user's own, defined in it, must exist
    in this process for the recipes sent to it."""
    load_space(config.space)
    objective = build_objective(config)
    model_path, model, data = load_inputs(config, settings.studies_dir, objective.task)
    cache = ContentCache(settings.studies_dir / config.study / "cache")
    builder = Builder(model_path, custom.model_key(file_key(model_path), config.custom_objects), data, data.key, cache, config.seed, model=model)
    env = environment()
    with settings.lock.shared():  # converting is work: not while another process times
        sentinel = host_sentinel(settings.host_dir)
    return Workspace(
        config=config,
        data=data,
        builder=builder,
        cache=cache,
        baseline=reference_recipes(usable_cores())[BASELINE_REF],
        env=env,
        peak=host_peak(settings.host_dir, settings.lock, str(env["id"])),
        lock=settings.lock,
        policy=settings.timing,
        sentinel=sentinel,
    )


@dataclass
class Plan:
    """The side of a study that samples and scores trials: no model, no data, no TensorFlow."""

    config: StudyConfig
    space: Callable[[optuna.Trial], Recipe]
    objective: Objective
    references: dict[str, Recipe]


def open_plan(config: StudyConfig) -> Plan:
    return Plan(config, load_space(config.space), build_objective(config), reference_recipes(usable_cores()))
