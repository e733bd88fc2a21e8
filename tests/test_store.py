import optuna
import pytest

from autotune.errors import StorageError
from autotune.storage import store


def test_passwords_never_appear_in_urls_we_show():
    shown = store.redact("postgresql://autotune:s3cret@db.example:5432/studies")
    assert "s3cret" not in shown and "autotune" in shown and "db.example" in shown


def test_a_malformed_url_is_one_line_without_the_password():
    with pytest.raises(StorageError) as e:
        store.open_storage("notadb://user:hunter2@x")
    assert "hunter2" not in str(e.value) and "malformed" in str(e.value)


def test_an_unreachable_sqlite_path_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match="cannot be used"):
        store.open_storage(f"sqlite:///{blocker}/sub/autotune.db")


def test_sqlite_storage_runs_in_wal_mode(tmp_path):
    st = store.open_storage(f"sqlite:///{tmp_path}/a.db")
    with st.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


class _Stuck(optuna.samplers.BaseSampler):
    """A sampler that always proposes the first choice: every trial after the first repeats it."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return param_distribution.choices[0]


def _asked(sampler, asks=20):
    """Ask ``asks`` trials of a 16-configuration space, each told as a run tells it: a
    configuration proposed before is a repeat of its first trial, with its values."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    first: dict[tuple, int] = {}
    proposals = []
    for _ in range(asks):
        t = study.ask()
        key = (t.suggest_categorical("a", ["x", "y", "z", "w"]), t.suggest_categorical("b", [1, 2, 3, 4]))
        if key in first:
            t.set_user_attr(store.REPEAT_OF, first[key])
        first.setdefault(key, t.number)
        proposals.append(key)
        study.tell(t, [float(key[1]), 0.9])
    return proposals


def test_the_proposal_after_a_repeat_is_random_and_the_others_are_the_samplers():
    assert set(_asked(_Stuck())) == {("x", 1)}  # stuck: the same configuration 20 times
    proposals = _asked(store.AfterRepeats(_Stuck(), seed=3))
    assert len(set(proposals)) >= 6  # each repeat was followed by a random proposal
    seen: set[tuple] = set()
    for key, following in zip(proposals, proposals[1:]):
        if key not in seen:  # not a repeat: the next proposal is the sampler's own
            assert following == ("x", 1), proposals
        seen.add(key)


def test_a_study_created_or_loaded_by_the_store_has_repeats_broken(tmp_path):
    from autotune.inputs.config import make_config
    from autotune.search.objective import Metric, Objective

    st = store.open_storage(f"sqlite:///{tmp_path}/a.db")
    config = make_config(study="s", budget=3)
    objective = Objective("o", (Metric("latency_p50_ms", "minimize"), Metric("accuracy", "maximize")))
    created = store.create_study(st, config, objective, {"id": "env"})
    assert isinstance(created.sampler, store.AfterRepeats)
    assert isinstance(store.load_study(st, "s", config).sampler, store.AfterRepeats)
