"""Where trials are evaluated: the ``Evaluator`` interface the trial loop talks to, and the
evaluator that runs them in this process (``LocalEvaluator``). The default evaluator runs
them in a child process instead (``autotune.study.child.ChildEvaluator``), so that a crash
costs one trial and not the study.
"""

from __future__ import annotations

import datetime as dt
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autotune.errors import CandidateFailed
from autotune.search.recipe import Recipe
from autotune.study.settings import Settings
from autotune.study.trial import Attrs, Rival, evaluate
from autotune.study.workspace import Workspace


@dataclass
class Outcome:
    """What one evaluation gives back: the measured metrics (None if it failed), the records
    to set on the trial, and why it failed (None if it did not)."""

    metrics: dict[str, Any] | None
    attrs: dict[str, Any]
    failed: str | None = None


class Evaluator(ABC):
    """Builds and measures recipes on the study's model and data, wherever they are loaded.

    Attributes:
        env: The environment fingerprint of the process that measures (``measure.stats.environment``).
        peak: The host's compute peak, MACs per second by kernel kind and threads.
    """

    env: dict[str, Any]
    peak: dict[str, float]

    @abstractmethod
    def evaluate(
        self,
        number: int,
        recipe: Recipe,
        baseline: dict[str, Any] | None,
        on_stage: Callable[[str], None],
        gains: dict[str, float] | None = None,
        rivals: list[Rival] | None = None,
    ) -> Outcome:
        """Build, gate, convert and measure one trial's recipe (``study.trial.evaluate``).

        Args:
            number: The trial's number (fault injection and the records use it).
            recipe: The validated recipe to build.
            baseline: The study's baseline metrics, or None for the baseline trial itself
                (then no accuracy gate applies).
            on_stage: Called with each stage's name (``train``, ``convert``, ...) as it starts.
            gains: By technique, the most a fine-tuning run gained after its first epoch in
                this study (``study.fidelity``): a run that cannot reach the gate even so stops
                after that epoch and comes back gated. None: every run trains all its epochs.
            rivals: The study's feasible measured trials (``study.trial.feasible_rivals``): a
                noisy search timing is taken again only if it could beat those at least as
                accurate, and one far slower than the best of them of its shape is taken
                again (``Timer.time``'s ``expect``). None: only if it could beat the baseline.

        Returns:
            The metrics and records. A candidate that cannot be built or measured
            (``CandidateFailed``: a conversion error, an unsupported op, the trial's process
            killed or timed out) comes back as an outcome with ``failed`` set, not raised.

        Raises:
            ConfigError: The study's inputs cannot be loaded where the trial runs (a child
                process started again after the last one died).
            Exception: Anything else is a bug and stops the run: ``LocalEvaluator`` lets it
                through, ``ChildEvaluator`` raises RuntimeError with the child's traceback.
        """

    @abstractmethod
    def remeasure(self, recipe_dict: dict[str, Any]) -> dict[str, Any]:
        """Time a recipe of the front again, against the baseline as in a trial.

        Args:
            recipe_dict: The stored recipe (``Recipe.to_dict``).

        Returns:
            The latency metrics with the environment and time of the measurement, or
            ``{"failed": reason}`` if the artifact no longer runs.

        Raises:
            CandidateFailed: The process measuring it died or timed out.
        """

    @abstractmethod
    def probe(self) -> dict[str, Any]:
        """Find which techniques, precisions and engines the study's model allows.

        Returns:
            The findings as ``search.capabilities.Capabilities.to_dict()``: those an earlier
            probe of the same model kept on this host (with ``kept`` set), else a new probe's,
            which are then kept (``study.probe.probe_or_kept``).

        Raises:
            CandidateFailed: The process probing died or timed out.
        """

    def close(self) -> None:
        """Release the evaluator's resources (its process); it may be used again after."""


class LocalEvaluator(Evaluator):
    """Evaluates trials in this process, with the workspace loaded here."""

    def __init__(self, ws: Workspace, settings: Settings) -> None:
        self.ws, self.settings = ws, settings
        self.env, self.peak = ws.env, ws.peak
        self.pid = os.getpid()

    def evaluate(
        self,
        number: int,
        recipe: Recipe,
        baseline: dict[str, Any] | None,
        on_stage: Callable[[str], None],
        gains: dict[str, float] | None = None,
        rivals: list[Rival] | None = None,
    ) -> Outcome:
        attrs = Attrs(number)
        try:
            metrics = evaluate(self.ws, attrs, recipe, self.settings, on_stage, baseline, gains, rivals)
        except CandidateFailed as e:
            return Outcome(None, attrs.user_attrs, str(e))
        return Outcome(metrics, attrs.user_attrs)

    def remeasure(self, recipe_dict: dict[str, Any]) -> dict[str, Any]:
        recipe = Recipe.from_dict(recipe_dict)
        with self.ws.lock.shared():
            candidate = self.ws.builder.build(recipe)
        self.ws.cache.take_counts()
        assert candidate.path is not None
        try:
            timed = self.ws.timer().time(candidate.path, recipe, self.ws.data.x_val, final=True)
        except CandidateFailed as e:  # it ran in the search; if it fails now, say so
            return {"failed": str(e)}
        return timed.metrics() | {"env_id": self.env["id"], "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}

    def probe(self) -> dict[str, Any]:
        """What the model allows (capabilities.Capabilities as a dict), found once per model and host."""
        from autotune.study.probe import probe_or_kept
        from autotune.techniques import TECHNIQUES

        return probe_or_kept(self.ws, list(TECHNIQUES.values()), self.settings.host_dir).to_dict()

    def close(self) -> None:
        pass
