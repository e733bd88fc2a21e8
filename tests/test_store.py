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
