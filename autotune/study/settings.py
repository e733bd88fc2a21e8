"""How a run behaves (``Settings``) and what it tells whoever watches it (``Reporter``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial

from autotune.inputs.config import StudyConfig
from autotune.measure.host import HostLock, default_host_dir
from autotune.measure.timing import TimingPolicy


class Reporter(Protocol):
    """What the trial loop tells whoever watches it (report.py draws it; tests record it)."""

    def search_started(self, study: str, budget: int, evaluated: int) -> None: ...
    def trial_started(self, number: int, recipe: str) -> None: ...
    def stage(self, name: str) -> None: ...
    def trial_finished(self, trial: FrozenTrial, evaluated: int, best_feasible_ms: float | None) -> None: ...
    def front_remeasured(self, number: int, recipe: str, search: dict[str, Any], final: dict[str, Any]) -> None: ...
    def probe_started(self) -> None: ...
    def probed(self, found: dict[str, Any]) -> None: ...
    def deployments_queued(self, number: int, count: int) -> None: ...
    def prefix_queued(self, number: int, recipe: str) -> None: ...
    def extension_queued(self, number: int, recipe: str) -> None: ...
    def siblings_queued(self, number: int, recipes: list[str]) -> None: ...
    def accurate_siblings_queued(self, number: int, recipes: list[str]) -> None: ...
    def neutral_queued(self, number: int, recipe: str, cost: float) -> None: ...
    def wider_queued(self, number: int, recipe: str) -> None: ...
    def narrower_queued(self, number: int, recipe: str) -> None: ...


class SilentReporter:
    def search_started(self, study: str, budget: int, evaluated: int) -> None:
        pass

    def trial_started(self, number: int, recipe: str) -> None:
        pass

    def stage(self, name: str) -> None:
        pass

    def trial_finished(self, trial: FrozenTrial, evaluated: int, best_feasible_ms: float | None) -> None:
        pass

    def front_remeasured(self, number: int, recipe: str, search: dict[str, Any], final: dict[str, Any]) -> None:
        pass

    def probe_started(self) -> None:
        pass

    def probed(self, found: dict[str, Any]) -> None:
        pass

    def deployments_queued(self, number: int, count: int) -> None:
        pass

    def prefix_queued(self, number: int, recipe: str) -> None:
        pass

    def extension_queued(self, number: int, recipe: str) -> None:
        pass

    def siblings_queued(self, number: int, recipes: list[str]) -> None:
        pass

    def accurate_siblings_queued(self, number: int, recipes: list[str]) -> None:
        pass

    def neutral_queued(self, number: int, recipe: str, cost: float) -> None:
        pass

    def wider_queued(self, number: int, recipe: str) -> None:
        pass

    def narrower_queued(self, number: int, recipe: str) -> None:
        pass


@dataclass(frozen=True)
class Settings:
    studies_dir: Path = field(default_factory=lambda: Path.cwd() / "studies")
    timing: TimingPolicy = TimingPolicy()
    max_failures_in_row: int = 5
    # The accuracy gate stops a trained candidate whose drop exceeds
    # max(2 × limit, limit + gate_margin) before it is converted and timed.
    gate_margin: float = 0.02
    # Re-time the front at the end of a run that ran trials (both numbers are kept).
    remeasure_front: bool = True
    # Two levels (``study.deployments``): the sampler makes models, each newly measured model
    # is deployed its other ways that can win, and searched trials are deployed the way that won
    # most. False: one trial, one point of the space (benchmarks/search_efficiency.py compares).
    deploy_variants: bool = True
    lock: HostLock = field(default_factory=HostLock)
    host_dir: Path = field(default_factory=default_host_dir)
    # Which sampler a new or resumed study uses (benchmarks compare others); None: store's TPE.
    sampler: Callable[[StudyConfig, int], optuna.samplers.BaseSampler] | None = None
    # How often a running trial's worker says it is alive, how long until silence means it
    # died (its trial is then failed and retried once), and how often a worker that waits for
    # others' trials looks again.
    heartbeat_s: int = 3
    grace_s: int = 15
    poll_s: float = 2.0
    # Trials run in a child process (spawned once, replaced when it dies or its resident
    # memory passes child_max_rss_mb); False: in this process (benchmarks that time the loop).
    isolate: bool = True
    child_max_rss_mb: int = 6144
    # A trial (or a re-measurement) still running after this long is stopped and failed.
    trial_timeout_s: float = 3600.0
    # Asked after every trial: a reason to stop the search now (the service's cancel), or None.
    # The trials so far stay; the front is not re-measured.
    stop_requested: Callable[[], str | None] | None = None
