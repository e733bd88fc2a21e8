"""The service's queue lives in the study database: one worker per study, a silent worker's
study goes to the next, a budget raised while running queues the study again."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from autotune.service import queue as q
from autotune.service.queue import Queue


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    pg = request.getfixturevalue("postgres_url")
    queue = Queue(pg)
    with queue.engine.begin() as conn:  # the session's server is shared: start from an empty queue
        conn.exec_driver_sql("delete from autotune_queue")
    return pg


def test_two_workers_never_take_the_same_study(url: str) -> None:
    first = Queue(url)
    for i in range(6):
        first.add(f"s{i}", {"budget": 3}, 3)
    taken: dict[str, list[str]] = {"a": [], "b": []}

    def work(name: str) -> None:
        mine = Queue(url)  # each worker its own connections, as separate processes have
        while (job := mine.claim(name)) is not None:
            taken[name].append(job.name)

    threads = [threading.Thread(target=work, args=(n,)) for n in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken["a"] + taken["b"]) == [f"s{i}" for i in range(6)]  # each exactly once
    assert {j.state for j in first.jobs()} == {q.RUNNING}


def test_a_silent_workers_study_goes_to_the_next_worker(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = Queue(url)
    queue.add("s", {"budget": 3}, 3)
    assert queue.claim("dead").name == "s"
    assert queue.claim("alive") is None  # claimed and beating: nobody else takes it
    monkeypatch.setenv("AUTOTUNE_QUEUE_STALE_S", "0.01")
    time.sleep(0.05)
    job = queue.claim("alive")
    assert job is not None and job.worker == "alive"
    queue.finish("s", "dead", q.DONE, "late")  # the dead worker's word no longer counts
    assert queue.get("s").state == q.RUNNING


def test_a_budget_raised_while_running_queues_the_study_again(url: str) -> None:
    queue = Queue(url)
    queue.add("s", {"budget": 3, "space": "quick"}, 3)
    queue.claim("w")
    raised = queue.resume("s", 8)
    assert (raised.state, raised.budget, raised.given) == (q.RUNNING, 8, {"budget": 8, "space": "quick"})
    queue.finish("s", "w", q.DONE, "3 of 3 trials")
    assert queue.get("s").state == q.QUEUED  # the next worker runs it to 8
    assert queue.claim("w2").budget == 8
    queue.finish("s", "w2", q.DONE, "8 of 8 trials")
    assert (queue.get("s").state, queue.get("s").message) == (q.DONE, "8 of 8 trials")
