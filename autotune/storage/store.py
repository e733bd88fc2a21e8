"""Everything that talks to the database.

Optuna's RDB storage is the record of truth; autotune's own data rides along as namespaced
study and trial user attributes (``autotune:config``, ``autotune:env``, ...), so ``resume``
needs only the study name and optuna-dashboard shows our studies unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sqlite3
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from autotune.errors import ConfigError, StorageError
from autotune.inputs.config import StudyConfig

if TYPE_CHECKING:  # the objective's directions and names are stored; it is built in autotune.search
    from autotune.search.objective import Objective

CONFIG = "autotune:config"
ENV = "autotune:env"
BASELINE = "autotune:baseline"
CREATED = "autotune:created"
OBJECTIVE = "autotune:objective"
CAPABILITIES = "autotune:capabilities"  # what the model allows: the probe's findings (capabilities.py)
# Trial attributes.
METRICS = "autotune:metrics"
RECIPE = "autotune:recipe"
RECIPE_TEXT = "autotune:recipe_text"
REFERENCE = "autotune:reference"
FAIL_REASON = "autotune:fail_reason"
TIMINGS = "autotune:timings"
CACHE = "autotune:cache"
LINEAGE = "autotune:lineage"
ENV_ID = "autotune:env_id"
WARM_START = "autotune:warm_start"  # "STUDY#N": the earlier trial whose parameters this one repeats
WORKER = "autotune:worker"  # host:pid of the worker, /pid of the process that ran the trial
PROCESS = "autotune:process"  # that process: pid, resident memory after the trial, restarts so far
SURPLUS = "autotune:surplus"  # a trial started when others had already filled the budget
GATED = "autotune:gated"  # why the accuracy gate stopped the trial before timing
# A configuration already measured in the study: its recorded result is reused, not trained or
# timed again; the trial it repeats (its number). Repeats fill no budget and show on no front.
REPEAT_OF = "autotune:repeat_of"
# A trial queued to deploy an already measured model another way: {"trial": the first
# measured trial of that model, "made": how the model was made (study.ways.made_key)}.
DEPLOYMENT_OF = "autotune:deployment_of"
# A trial queued to measure the model an earlier trial's chain made on its way (its first
# steps), that chain being past the accuracy limit: {"trial": its number, "made": made_key}.
PREFIX_OF = "autotune:prefix_of"
# A trial queued to measure an earlier trial's model (among the study's fastest) with one more
# step: {"trial": its number, "from": that model's made_key, "made": the new model's}.
EXTENSION_OF = "autotune:extension_of"
# A trial queued to train the shape of the study's fastest model another way (speed-neutral
# parameters changed): {"trial": its number, "shape": study.ways.model_shape, "made": made_key},
# and "accurate": True and "from": its made_key where that model was the one whose accuracy
# counts most on the front.
SIBLING_OF = "autotune:sibling_of"
# A trial queued to measure the model whose accuracy counts most on the study's front made one
# value wider: {"trial": its number, "from": that model's made_key, "made": the new model's}.
WIDER_OF = "autotune:wider_of"
# A trial queued to measure the study's fastest model made one value thinner: {"trial": its
# number, "from": that model's made_key, "made": the new model's}.
NARROWER_OF = "autotune:narrower_of"
# In any of the origins above, ``"first": True`` marks a trial queued ahead of the queue: it
# runs before every trial queued without it (``Study``).
FIRST = "first"
MEASUREMENT = "autotune:measurement"  # how the latency was taken: cores, lock wait, attempts
PEAK = "autotune:peak"  # the host's measured MACs per second, by kernel kind and threads
FINAL_PREFIX = "autotune:final:"  # + trial number: the front's re-measurement at a run's end


def final_key(number: int) -> str:
    return f"{FINAL_PREFIX}{number}"


def finals(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """The end-of-run re-measurements, by trial number (trials are immutable once finished,
    so they live on the study)."""
    return {int(k.removeprefix(FINAL_PREFIX)): v for k, v in study.user_attrs.items() if k.startswith(FINAL_PREFIX)}

optuna.logging.set_verbosity(optuna.logging.ERROR)
# TPE's ``group`` option is marked experimental; it is what makes conditional spaces work well.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for every message and record."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


@contextlib.contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn the database's failures into one readable line that never shows a password."""
    try:
        yield
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(f"storage URL {redact(url)!r} is malformed (e.g. sqlite:///studies/autotune.db)") from None
    except sqlalchemy.exc.SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).splitlines()[0]
        raise StorageError(f"storage {redact(url)} cannot be used: {reason.replace(url, redact(url))}") from None
    except ImportError:  # Optuna's word for a missing database driver
        raise StorageError(f"storage {redact(url)} needs its database driver (PostgreSQL: pip install 'psycopg[binary]')") from None


def open_storage(url: str, heartbeat: tuple[int, int] | None = None) -> optuna.storages.RDBStorage:
    """The study storage. With ``heartbeat`` (interval, grace period in seconds) every trial
    run through ``optimize`` says it is alive; a running trial silent for longer than the
    grace period is failed, and queued once more, by the next worker that looks."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # WAL lets readers (front, studies) work while a run writes; the mode is stored in
            # the file, so setting it once here holds for every later connection.
            with contextlib.closing(sqlite3.connect(path, timeout=60)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as e:
            raise StorageError(f"storage {redact(url)} cannot be used: {e}") from None
        # Wait for a writer rather than fail with "database is locked".
        kwargs = {"connect_args": {"timeout": 60}}
    beat: dict[str, Any] = {}
    if heartbeat is not None:
        beat = {
            "heartbeat_interval": heartbeat[0],
            "grace_period": heartbeat[1],
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        }
    with database_errors(url):
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **beat)


def sampler_for(config: StudyConfig, trials_so_far: int) -> optuna.samplers.BaseSampler:
    # A resumed study must not replay its first proposals, hence the offset.
    return tpe_sampler(config.seed + trials_so_far)


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class Delegating(optuna.samplers.BaseSampler):
    """A sampler that hands every call to ``base`` unless a subclass says otherwise; ``base``
    keeps its own bookkeeping (TPE's, NSGA-II's generations) through ``before_trial`` and
    ``after_trial``, which always reach it."""

    def __init__(self, base: optuna.samplers.BaseSampler) -> None:
        self.base = base

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


class AfterRepeats(Delegating):
    """``base``, except that the proposal right after a repeat is drawn at random.

    A repeat (a configuration the study measured before) is told to the sampler with the
    first one's values. A model-based sampler such as TPE then sees that point twice, holds it
    likelier, and proposes it again: one 50-trial study proposed the same configuration 20
    times in a row. Repeats fill no budget, so a random proposal after each is cheap, and it
    breaks the loop. Every other call goes to ``base`` (which keeps its own bookkeeping).
    """

    def __init__(self, base: optuna.samplers.BaseSampler, seed: int | None = None) -> None:
        super().__init__(base)
        # Not the base's seed: TPE's start-up draws would be replayed, repeats again.
        self.random = optuna.samplers.RandomSampler(seed=None if seed is None else (seed * 1_000_003 + 7919) % 2**31)
        self._after_repeat: dict[int, bool] = {}

    def _for(self, study: optuna.Study, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        n = trial.number
        if n not in self._after_repeat:
            finished = [t for t in study.get_trials(deepcopy=False, states=FINISHED) if t.number < n]
            # The one that finished last: a trial queued ahead of the queue runs before lower numbers.
            last = max(finished, key=lambda t: (t.datetime_complete is not None, t.datetime_complete or dt.datetime.min, t.number), default=None)
            self._after_repeat[n] = last is not None and REPEAT_OF in last.user_attrs
        return self.random if self._after_repeat[n] else self.base

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._for(study, trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        super().after_trial(study, trial, state, values)
        self._after_repeat.pop(trial.number, None)

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self.random.reseed_rng()


# Random proposals before TPE models the study. Behind the two-level search's model view
# these are trained models, not trials (a model deployed five ways counts once).
STARTUP = 5


def tpe_sampler(seed: int, startup: int = STARTUP) -> optuna.samplers.BaseSampler:
    """Multi-objective TPE: models good and bad regions from few trials, handles conditional
    (tree-structured) spaces and reads ``trial.set_constraint`` values. NSGA-II would spend a
    50-trial budget on its first generation; the GP sampler needs PyTorch."""
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        group=True,
        n_startup_trials=startup,
        constant_liar=True,
    )


class Study(optuna.Study):
    """An Optuna study whose queue runs the trials queued first (an origin attribute holding
    ``FIRST``: the study's fastest model made one value thinner, the model its chain made on its
    way within the accuracy limit, and the other ways of deploying a model among the study's
    fastest) before every other queued trial, then the rest in the order queued, as Optuna
    does. Optuna's queue is first in, first out: on the demo, a width-0.25 student queued as
    such a chain's way in waited behind the deployments and siblings of every model measured
    before it, and ran at trial 34-47 of 50 or not at all; ahead of the queue, it ran 17th,
    and its full-int8 deployment, the study's fastest, still waited until the 40th."""

    def _pop_waiting_trial_id(self) -> int | None:
        waiting = self._storage.get_all_trials(self._study_id, deepcopy=False, states=(TrialState.WAITING,))
        for trial in sorted(waiting, key=lambda t: (not queued_first(t), t.number)):
            # As Optuna's: another worker may have taken it, or finished it, since the read.
            try:
                if self._storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                    return trial._trial_id
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
        return None


def queued_first(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was queued ahead of the queue (an origin attribute holding ``FIRST``)."""
    return any(isinstance(v, dict) and v.get(FIRST) is True for k, v in trial.user_attrs.items() if k.startswith("autotune:"))


def study_exists(storage: optuna.storages.RDBStorage, name: str) -> bool:
    return any(s.study_name == name for s in storage.get_all_studies())


def create_study(
    storage: optuna.storages.RDBStorage,
    config: StudyConfig,
    objective: Objective,
    env: dict[str, Any],
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    study = optuna.create_study(
        study_name=config.study,
        storage=storage,
        directions=objective.directions,
        sampler=AfterRepeats(sampler or sampler_for(config, 0), config.seed),
    )
    study = Study(study_name=config.study, storage=storage, sampler=study.sampler)
    study.set_metric_names(objective.metric_names)
    study.set_user_attr(CONFIG, config.to_json())
    study.set_user_attr(ENV, env)
    study.set_user_attr(OBJECTIVE, objective.name)
    study.set_user_attr(CREATED, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    return study


def load_study(
    storage: optuna.storages.RDBStorage,
    name: str,
    config: StudyConfig | None = None,
    sampler: Callable[[StudyConfig, int], optuna.samplers.BaseSampler] | None = None,
) -> optuna.Study:
    if not study_exists(storage, name):
        raise ConfigError(f"no study named {name!r} in this storage (see `autotune studies`)")
    study = Study(study_name=name, storage=storage)
    if config is not None:
        n = len(study.get_trials(deepcopy=False))
        study.sampler = AfterRepeats((sampler or sampler_for)(config, n), config.seed + n)
    return study


def stored_config(study: optuna.Study) -> StudyConfig:
    data = study.user_attrs.get(CONFIG)
    if data is None:
        raise ConfigError(f"study {study.study_name!r} was not created by autotune")
    return StudyConfig.from_json(data)


def save_config(study: optuna.Study, config: StudyConfig) -> None:
    study.set_user_attr(CONFIG, config.to_json())


def evaluated(trials: list[FrozenTrial]) -> int:
    """The budget counts complete and pruned trials; failed ones are retried, and repeats of a
    configuration already measured are answered from the record, so neither counts."""
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) and REPEAT_OF not in t.user_attrs for t in trials)


def measured_before(trials: list[FrozenTrial], recipe: dict[str, Any], env_id: str, number: int) -> FrozenTrial | None:
    """The first trial before ``number`` that ran ``recipe`` on environment ``env_id`` to an
    end that running it again would not change (not itself a repeat), or None: one that
    completed, or one whose candidate failed (a converter's or technique's refusal). A trial
    whose process died, or that was not run for the budget, may fare differently again."""
    for t in trials:
        a = t.user_attrs
        if t.number >= number or REPEAT_OF in a or a.get(RECIPE) != recipe or a.get(ENV_ID) != env_id:
            continue
        if t.state == TrialState.COMPLETE:
            return t
        if t.state == TrialState.FAIL and FAIL_REASON in a and not a.get(SURPLUS) and not a.get(PROCESS, {}).get("died"):
            return t
    return None


def study_names(storage: optuna.storages.RDBStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]
