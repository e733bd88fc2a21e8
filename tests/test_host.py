"""The host-wide measurement lock (held by real separate processes), pinning, and the peak key."""

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from autotune.measure.host import ALLOWED_CORES, HostLock, cores_for, peak_key, pinning

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from autotune.measure.host import HostLock
    lock = HostLock(Path(sys.argv[1]))
    with (lock.shared() if sys.argv[2] == "shared" else lock.exclusive()):
        print("held", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    sys.stdin.readline()
    """
)


@contextlib.contextmanager
def _held(path, mode):
    """Another process holding the lock in ``mode`` until the block ends (or it is killed)."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        yield p
    finally:
        p.kill()
        p.wait()


def _can_take(path, mode):
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_measuring_process_excludes_everyone_else(tmp_path):
    path = tmp_path / "measure.lock"
    with _held(path, "exclusive") as holder:
        assert not _can_take(path, fcntl.LOCK_EX)
        assert not _can_take(path, fcntl.LOCK_SH)  # nor may anyone train meanwhile
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        assert _can_take(path, fcntl.LOCK_EX)


def test_workers_share_the_lock_for_work_but_a_measurement_waits_for_them(tmp_path):
    path = tmp_path / "measure.lock"
    with _held(path, "shared"):
        assert _can_take(path, fcntl.LOCK_SH)
        assert not _can_take(path, fcntl.LOCK_EX)


def test_a_killed_holder_leaves_the_lock_free(tmp_path):
    path = tmp_path / "measure.lock"
    with _held(path, "exclusive") as holder:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with HostLock(path).exclusive() as waited:
        assert waited < 5.0  # taken at once: the dead holder's lock went with its process
        assert not _can_take(path, fcntl.LOCK_SH)  # and this process now holds it
    assert _can_take(path, fcntl.LOCK_EX)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="affinity is Linux-only")
def test_pinning_moves_every_thread_and_restores_them():
    import threading

    ready, stop = threading.Event(), threading.Event()
    worker_tid = []

    def worker():
        worker_tid.append(threading.get_native_id())
        ready.set()
        stop.wait()

    t = threading.Thread(target=worker)
    t.start()
    ready.wait()
    try:
        one = cores_for(1)
        with pinning() as pin:
            pin(one)
            assert os.sched_getaffinity(0) == set(one)
            assert os.sched_getaffinity(worker_tid[0]) == set(one)  # a thread that already existed
        assert os.sched_getaffinity(worker_tid[0]) == set(ALLOWED_CORES)
        assert os.sched_getaffinity(0) == set(ALLOWED_CORES)
    finally:
        stop.set()
        t.join()


def test_cores_and_peak_keys():
    assert len(cores_for(1)) == 1 and cores_for(1)[0] == ALLOWED_CORES[-1]
    assert cores_for(10_000) == ALLOWED_CORES
    assert peak_key("int8", "litert", 1) == "int8/1"
    assert peak_key("dynamic-int8", "litert", 1) == "int8/1"
    assert peak_key("fp16", "litert", 1) == "fp32/1"
    assert peak_key("fp32", "tensorflow", 10_000) == f"fp32/{len(ALLOWED_CORES)}"
