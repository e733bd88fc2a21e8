"""The service's work that needs TensorFlow, each run in a spawned process: checking a
submission as ``autotune run`` would, exporting a trial, and the queue worker's loop.

The server calls the first two through a one-process pool (``Tasks``): TensorFlow is imported
once there, never in the server, and a model that crashes its loader costs that process, not
the service. They return a line instead of raising, so nothing unpicklable crosses back.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import shutil
import socket
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from autotune.errors import AutotuneError, ConfigError
from autotune.inputs.config import make_config
from autotune.service.queue import CANCELLED, DONE, FAILED, Job, Queue, stale_s
from autotune.service.uploads import Folders
from autotune.study.settings import SilentReporter

log = logging.getLogger("autotune.service")


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def check_submission(fields: dict[str, Any], studies_dir: str, labels: dict[str, str]) -> str | None:
    """What ``autotune run`` would refuse before storing anything, as its one line (None: fine):
    the configuration, the space and objective, and the model and data loaded and checked.
    ``labels``: the server's staging paths and what the line calls them instead."""
    problem = _check(fields, studies_dir)
    if problem is None:
        return None
    for path, label in sorted(labels.items(), key=lambda kv: -len(kv[0])):
        problem = problem.replace(path, label)
    # The trust is the server's to give, not the client's.
    return problem.replace("pass --trust-model-code", "start the server with --trust-model-code")


def _check(fields: dict[str, Any], studies_dir: str) -> str | None:
    from autotune.inputs.model import load_inputs
    from autotune.study.workspace import open_plan

    try:
        config = make_config(**fields)
        plan = open_plan(config)
        if not config.is_demo:
            load_inputs(config, Path(studies_dir), plan.objective.task)
    except AutotuneError as e:
        return _line(e)
    except Exception as e:  # a loader's own error on a corrupt file: still the user's input
        return f"the submission cannot be used: {type(e).__name__}: {_line(e)}"
    return None


def export_zip(storage_url: str, name: str, exports_dir: str, studies_dir: str, options: dict[str, Any], trust: bool) -> tuple[str, str, int]:
    """Export as ``autotune export`` does (re-verified on the written file), zipped:
    ``("ok", zip path, trial)`` or ``("error", the one line, 0)``."""
    from autotune.results.export import export

    out = Path(exports_dir) / uuid.uuid4().hex
    try:
        r = export(storage_url, name, out / "export", studies_dir=Path(studies_dir), trust_model_code=trust, **options)
    except AutotuneError as e:
        shutil.rmtree(out, ignore_errors=True)
        return ("error", _line(e), 0)
    archive = out / f"{name}-trial{r.trial}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted((out / "export").rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(out / "export"))
    shutil.rmtree(out / "export")
    return ("ok", str(archive), r.trial)


class Tasks:
    """A pool of one spawned process for checks and exports (started on first use)."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    def run(self, fn: Any, *args: Any) -> Any:
        try:
            return self.pool().submit(fn, *args).result()
        except concurrent.futures.process.BrokenProcessPool:
            with self._lock:
                self._pool = None  # the next call starts a fresh process
            raise ConfigError("the process checking the upload died (a model or data file that crashes its loader)") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


class _LogReporter(SilentReporter):
    """The trial loop's news as log lines (the service's workers have no terminal): a finished
    trial is logged, the rest is not."""

    def __init__(self, name: str) -> None:
        self.name = name

    def trial_finished(self, trial: Any, evaluated: int, best_feasible_ms: float | None) -> None:
        log.info("study %s: trial %d %s (%d evaluated)", self.name, trial.number, trial.state.name.lower(), evaluated)


# Set by `autotune serve` for the queue workers it starts: its own pid.
SERVER_PID = "AUTOTUNE_SERVER_PID"


def work(storage_url: str, folders: Folders, *, trust_model_code: bool, poll_s: float = 2.0, once: bool = False) -> int:
    """Take queued studies and run them with the trial machinery until stopped (``once``:
    until the queue is empty). Returns how many studies this worker ran."""
    from autotune.study.run import run
    from autotune.study.settings import Settings

    queue = Queue(storage_url)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    # A worker `autotune serve` started leaves with it, even when the server could not stop it
    # (killed outright, or stopped by SIGTERM, which uvicorn re-raises to end the process): it
    # checks between studies, so a study it has taken runs to its end first.
    server = int(os.environ.get(SERVER_PID, "0")) or None
    ran = 0
    while True:
        if server is not None and os.getppid() != server:
            log.info("the server that started this worker (pid %d) is gone: stopping", server)
            return ran
        job = queue.claim(worker)
        if job is None:
            if once:
                return ran
            time.sleep(poll_s)
            continue
        ran += 1
        _run_job(queue, job, worker, folders, trust_model_code, run, Settings)


def _run_job(queue: Queue, job: Job, worker: str, folders: Folders, trust: bool, run: Any, Settings: Any) -> None:
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(stale_s() / 4):
            try:
                queue.beat(job.name, worker)
            except AutotuneError:
                pass  # the database is away for a moment: the next beat tries again

    threading.Thread(target=beat, daemon=True).start()
    settings = Settings(studies_dir=folders.studies, stop_requested=lambda: "cancelled" if queue.cancel_requested(job.name) else None)
    given = job.given | {"trust_model_code": trust or None}
    log.info("study %s: taken by %s (budget %d)", job.name, worker, job.budget)
    try:
        result = run(job.name, given, queue.url, settings=settings, reporter=_LogReporter(job.name))
    except AutotuneError as e:
        queue.finish(job.name, worker, FAILED, _line(e))
        log.info("study %s: failed: %s", job.name, _line(e))
    except Exception as e:  # noqa: BLE001  # the worker goes on with the next study
        queue.finish(job.name, worker, FAILED, f"{type(e).__name__}: {_line(e)}")
        log.exception("study %s: failed", job.name)
    else:
        if queue.cancel_requested(job.name):
            queue.finish(job.name, worker, CANCELLED, f"cancelled after {result.evaluated} of {result.budget} trials")
        else:
            ended = f"{result.evaluated} of {result.budget} trials" + (f"; ended before the budget: {result.exhausted}" if result.exhausted else "")
            queue.finish(job.name, worker, DONE, ended)
        log.info("study %s: ended", job.name)
    finally:
        stop.set()


def fields_for(given: dict[str, Any], name: str) -> dict[str, Any]:
    """The StudyConfig fields a submission asks for (what ``make_config`` takes)."""
    return {"study": name, **{k: v for k, v in given.items() if v is not None}}
