"""The queue of submitted studies and the service's tokens, as two tables in the study storage.

A submitted study waits as a row in ``autotune_queue`` until a worker claims it; the claim is
one conditional UPDATE, so two workers never take the same study. A claimed row carries its
worker's heartbeat; a row whose worker fell silent goes back to whoever claims next, and that
run resumes the study (its dead trial is failed and retried by the trial machinery). Restarting
the server loses nothing: the queue lives in the database, beside the studies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from autotune.errors import ConfigError
from autotune.storage import store

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)

_meta = sa.MetaData()
_queue = sa.Table(
    "autotune_queue",
    _meta,
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("given", sa.Text, nullable=False),  # the run's settings (JSON), as `autotune run` takes them
    sa.Column("budget", sa.Integer, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("worker", sa.String(256)),
    sa.Column("heartbeat", sa.Float),
    sa.Column("message", sa.Text),  # why it failed, or how it ended
    sa.Column("cancel", sa.Boolean, nullable=False, default=False),
    sa.Column("again", sa.Boolean, nullable=False, default=False),  # budget raised while running
)
_tokens = sa.Table(
    "autotune_tokens",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created", sa.Float, nullable=False),
)

# A claimed study whose worker has not said it is alive for this long is claimed again
# ($AUTOTUNE_QUEUE_STALE_S; its worker says so four times as often).
STALE_S = 60.0


def stale_s() -> float:
    return float(os.environ.get("AUTOTUNE_QUEUE_STALE_S") or STALE_S)


@dataclass(frozen=True)
class Job:
    name: str
    state: str
    given: dict[str, Any]
    budget: int
    created: float
    updated: float
    worker: str | None
    message: str | None
    cancel: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "budget": self.budget,
            "created": self.created,
            "updated": self.updated,
            "worker": self.worker,
            "message": self.message,
            "cancel_requested": self.cancel,
        }


def _job(row: Any) -> Job:
    return Job(row.name, row.state, json.loads(row.given), row.budget, row.created, row.updated, row.worker, row.message, bool(row.cancel))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Queue:
    """The queue and the tokens of the service whose studies live at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url
        store.open_storage(url)  # creates a SQLite file's folder and WAL mode, like the studies
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
        with store.database_errors(url):
            self.engine = sa.create_engine(url, **kwargs)
            _meta.create_all(self.engine)

    @contextlib.contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        with store.database_errors(self.url), self.engine.begin() as conn:
            yield conn

    # The queue -----------------------------------------------------------------------------

    def add(self, name: str, given: dict[str, Any], budget: int) -> Job:
        now = time.time()
        with self._begin() as conn:
            if conn.execute(sa.select(_queue.c.name).where(_queue.c.name == name)).first():
                raise ConfigError(f"study {name!r} is already queued or run by this service")
            conn.execute(
                _queue.insert().values(name=name, state=QUEUED, given=json.dumps(given), budget=budget, created=now, updated=now, cancel=False, again=False)
            )
        return self.get(name)  # type: ignore[return-value]

    def get(self, name: str) -> Job | None:
        with self._begin() as conn:
            row = conn.execute(sa.select(_queue).where(_queue.c.name == name)).first()
        return None if row is None else _job(row)

    def jobs(self) -> list[Job]:
        with self._begin() as conn:
            return [_job(r) for r in conn.execute(sa.select(_queue).order_by(_queue.c.created))]

    def claim(self, worker: str) -> Job | None:
        """Take the oldest queued study (or one whose worker fell silent); None if there is none."""
        now = time.time()
        with self._begin() as conn:
            free = sa.or_(_queue.c.state == QUEUED, sa.and_(_queue.c.state == RUNNING, _queue.c.heartbeat < now - stale_s()))
            candidates = [r.name for r in conn.execute(sa.select(_queue.c.name).where(free).order_by(_queue.c.created))]
        for name in candidates:
            with self._begin() as conn:
                taken = conn.execute(
                    _queue.update()
                    .where(_queue.c.name == name, free)
                    .values(state=RUNNING, worker=worker, heartbeat=now, updated=now, again=False, message=None)
                )
            if taken.rowcount == 1:  # nobody took it between the look and the update
                return self.get(name)
        return None

    def beat(self, name: str, worker: str) -> None:
        now = time.time()
        with self._begin() as conn:
            conn.execute(_queue.update().where(_queue.c.name == name, _queue.c.worker == worker).values(heartbeat=now))

    def finish(self, name: str, worker: str, state: str, message: str | None) -> None:
        """The worker's run ended. A budget raised meanwhile puts the study back in the queue."""
        now = time.time()
        with self._begin() as conn:
            row = conn.execute(sa.select(_queue).where(_queue.c.name == name)).first()
            if row is None or row.worker != worker:
                return
            if row.again and state == DONE:
                state, message = QUEUED, None
            conn.execute(_queue.update().where(_queue.c.name == name).values(state=state, message=message, updated=now, heartbeat=None, cancel=False, again=False))

    def cancel_requested(self, name: str) -> bool:
        job = self.get(name)
        return job is not None and job.cancel

    def cancel(self, name: str) -> Job:
        """A queued study leaves the queue at once; a running one stops after its current trial."""
        job = self._known(name)
        now = time.time()
        with self._begin() as conn:
            if job.state == QUEUED:
                conn.execute(_queue.update().where(_queue.c.name == name).values(state=CANCELLED, message="cancelled before it started", updated=now))
            elif job.state == RUNNING:
                conn.execute(_queue.update().where(_queue.c.name == name).values(cancel=True, updated=now))
            else:
                raise ConfigError(f"study {name!r} is {job.state}, not queued or running: there is nothing to cancel")
        return self.get(name)  # type: ignore[return-value]

    def resume(self, name: str, budget: int | None) -> Job:
        """Raise the budget (never lower it) and queue the study again unless it is running."""
        job = self._known(name)
        if budget is not None and budget < job.budget:
            raise ConfigError(f"the budget can only be raised: study {name!r} has {job.budget}, not {budget}")
        budget = job.budget if budget is None else budget
        given = job.given | {"budget": budget}
        now = time.time()
        with self._begin() as conn:
            values: dict[str, Any] = {"budget": budget, "given": json.dumps(given), "updated": now}
            if job.state == RUNNING:
                values["again"] = budget > job.budget
            else:
                values |= {"state": QUEUED, "message": None, "cancel": False}
            conn.execute(_queue.update().where(_queue.c.name == name).values(**values))
        return self.get(name)  # type: ignore[return-value]

    def _known(self, name: str) -> Job:
        job = self.get(name)
        if job is None:
            raise ConfigError(f"no study named {name!r} was submitted to this service")
        return job

    # The tokens ----------------------------------------------------------------------------

    def has_tokens(self) -> bool:
        with self._begin() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(_tokens)).scalar_one() > 0

    def new_token(self) -> str:
        """A new bearer token; only its hash is stored, so this is the one time it is seen."""
        token = secrets.token_urlsafe(32)
        with self._begin() as conn:
            conn.execute(_tokens.insert().values(sha256=token_hash(token), created=time.time()))
        return token

    def token_ok(self, token: str) -> bool:
        digest = token_hash(token)
        with self._begin() as conn:
            known = [r.sha256 for r in conn.execute(sa.select(_tokens.c.sha256))]
        return any(secrets.compare_digest(digest, k) for k in known)
