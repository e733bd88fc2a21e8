"""Trials in a child process, so that a crash costs one trial and not the study.

A converter that dies of a segmentation fault, or a trial that the kernel kills for memory,
takes its process with it. The search (Optuna, the storage, the heartbeat) stays in the parent;
a long-lived child, started with the spawn method (forking after TensorFlow is imported
hangs), loads the model and data once and evaluates one trial per request. When it dies, the
trial is recorded as failed with the signal that killed it and the next trial gets a new
child; when its resident memory passes a limit (``model.fit`` leaks some per trial), it is
replaced between trials. A child costs about 4 s (TensorFlow's import and the model's load)
once per run, against about 3.7 s and 740 MB for every trial with a fresh process each.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import signal
import traceback
from pathlib import Path
from typing import Any

from autotune.errors import CandidateFailed, ConfigError
from autotune.inputs.config import StudyConfig
from autotune.search.recipe import Recipe
from autotune.storage.record import TrialRecord
from autotune.study.evaluator import Evaluator, LocalEvaluator, Outcome
from autotune.study.trial import Rival
from autotune.study.workspace import open_workspace


def _serve(conn: Any, config_json: dict[str, Any], settings: Any) -> None:
    """The child's loop: load once, then answer requests until told to stop or orphaned."""
    _exit_with_parent()
    try:
        evaluator = LocalEvaluator(open_workspace(StudyConfig.from_json(config_json), settings), settings)
    except ConfigError as e:
        conn.send(("config_error", str(e)))
        return
    conn.send(("ready", evaluator.env, evaluator.peak))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        kind = request[0]
        if kind == "stop":
            return
        try:
            if kind == "evaluate":
                _, number, recipe, baseline, gains, rivals = request
                outcome = evaluator.evaluate(number, recipe, baseline, lambda stage: conn.send(("stage", stage)), gains, rivals)
                conn.send(("done", outcome))
            elif kind == "remeasure":
                conn.send(("done", evaluator.remeasure(request[1])))
            elif kind == "probe":
                conn.send(("done", evaluator.probe()))
        except (CandidateFailed, ConfigError) as e:  # the parent raises the same, with the same line
            conn.send(("error", type(e).__name__, str(e)))
        except Exception:  # noqa: BLE001 - a bug: the parent raises it with this traceback
            conn.send(("bug", traceback.format_exc()))
            return


def _exit_with_parent() -> None:
    """A child whose parent died (SIGKILL leaves no chance to stop it) exits within a second
    instead of finishing its trial and holding the host's measurement lock."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        why = {"SIGSEGV": " (segmentation fault)", "SIGKILL": " (out of memory, or killed)", "SIGABRT": " (aborted)"}.get(name, "")
        return f"killed by {name}{why}"
    return f"exit code {exitcode}"


class ChildEvaluator(Evaluator):
    """The parent's handle on the child, which runs a ``LocalEvaluator``."""

    def __init__(self, config: StudyConfig, settings: Any) -> None:
        self._config = config.model_dump()  # with this invocation's trust in the model's code
        self._settings = dataclasses.replace(settings, sampler=None, stop_requested=None)  # neither may pickle
        self._max_rss_mb = settings.child_max_rss_mb
        self._timeout_s = settings.trial_timeout_s
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None
        self.restarts = 0
        self._start()  # now, so a bad model or data file is refused before anything is written

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc is not None else 0

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child, self._config, self._settings), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        try:
            message = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(5)
            raise CandidateFailed(f"the trial process died while loading the model and data: {_death(self._proc.exitcode)}") from None
        if message[0] == "config_error":
            self._proc.join(5)
            raise ConfigError(message[1])
        _, self.env, self.peak = message

    def _ensure(self) -> None:
        if self._proc is None or not self._proc.is_alive():
            self.restarts += 1
            self._start()
        elif self._rss_mb() > self._max_rss_mb:
            self.close()
            self.restarts += 1
            self._start()

    def _rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def _call(self, request: tuple, on_stage: Any = None) -> Any:
        import time

        self._ensure()
        deadline = time.monotonic() + self._timeout_s
        try:
            self._conn.send(request)
            while True:
                if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                    self._proc.kill()
                    self._proc.join(5)
                    self._proc = None
                    raise CandidateFailed(f"the trial ran longer than {self._timeout_s:.0f} s; its process was stopped")
                message = self._conn.recv()
                if message[0] == "stage":
                    if on_stage is not None:
                        on_stage(message[1])
                    continue
                if message[0] == "error":
                    raise (CandidateFailed if message[1] == "CandidateFailed" else ConfigError)(message[2])
                if message[0] == "bug":
                    self._proc.join(5)
                    self._proc = None
                    raise RuntimeError(f"a trial raised an unexpected error in its process:\n{message[1]}")
                return message[1]
        except (EOFError, OSError, BrokenPipeError):
            self._proc.join(5)
            reason = _death(self._proc.exitcode)
            self._proc = None
            raise CandidateFailed(f"the trial's process died: {reason}") from None

    def evaluate(
        self,
        number: int,
        recipe: Recipe,
        baseline: dict[str, Any] | None,
        on_stage: Any,
        gains: dict[str, float] | None = None,
        rivals: list[Rival] | None = None,
    ) -> Outcome:
        try:
            outcome = self._call(("evaluate", number, recipe, baseline, gains, rivals), on_stage)
        except CandidateFailed as e:
            return Outcome(None, TrialRecord(process={"pid": self.pid, "died": True}).to_attrs(), str(e))
        outcome.attrs |= TrialRecord(process={"pid": self.pid, "rss_mb": round(self._rss_mb(), 1), "restarts": self.restarts}).to_attrs()
        return outcome

    def remeasure(self, recipe_dict: dict[str, Any]) -> dict[str, Any]:
        return self._call(("remeasure", recipe_dict))

    def probe(self) -> dict[str, Any]:
        return self._call(("probe",))

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(("stop",))
            except (OSError, BrokenPipeError):
                pass
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        self._proc = None
