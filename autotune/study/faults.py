"""Fault injection for the reliability tests: kill the run, or crash the trial's process, at
a chosen stage of a chosen trial. Unset (the default), nothing happens."""

from __future__ import annotations

import os
import signal
import threading


def fault_point(stage: str, trial_number: int) -> None:
    """Fault injection for the reliability tests; unset, nothing happens.

    ``AUTOTUNE_FAULT=STAGE@N[+S]`` kills the whole run (this process group) with SIGKILL when
    a trial numbered N or later reaches STAGE (train, convert, accuracy, latency, write),
    after S more seconds if given, so mid-stage. ``AUTOTUNE_CRASH=STAGE@N`` makes the process
    running trial N die of SIGSEGV there, as a crashing converter would."""
    crash = os.environ.get("AUTOTUNE_CRASH")
    if crash and crash == f"{stage}@{trial_number}":
        os.kill(os.getpid(), signal.SIGSEGV)
    spec = os.environ.get("AUTOTUNE_FAULT")
    if not spec:
        return
    where, _, rest = spec.partition("@")
    number, _, delay = rest.partition("+")
    if where != stage or trial_number < int(number):
        return
    kill = lambda: os.killpg(os.getpgrp(), signal.SIGKILL)  # noqa: E731
    if delay:
        threading.Timer(float(delay), kill).start()
    else:
        kill()
