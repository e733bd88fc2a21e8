"""The content cache never serves a half-written entry: entries are built under a
temporary name and renamed into place (no TensorFlow)."""

from __future__ import annotations

import pytest

from autotune.build.cache import ContentCache


def test_a_build_that_dies_midway_leaves_no_entry(tmp_path):
    cache = ContentCache(tmp_path / "cache")

    def half(tmp):
        (tmp / "model.tflite").write_bytes(b"half")
        raise MemoryError("killed mid-write")

    with pytest.raises(MemoryError):
        cache.get_or_build("k", half, label="convert")
    assert cache.lookup("k", label="convert") is None
    assert not list((tmp_path / "cache").iterdir())  # the temporary directory is gone too


def test_a_leftover_temporary_directory_is_not_a_hit(tmp_path):
    cache = ContentCache(tmp_path / "cache")
    (tmp_path / "cache" / ".tmp-k-deadbeef").mkdir(parents=True)  # a process killed by SIGKILL
    assert cache.lookup("k", label="convert") is None
    built = cache.get_or_build("k", lambda tmp: (tmp / "model.tflite").write_bytes(b"whole"), label="convert")
    assert (built / "model.tflite").read_bytes() == b"whole"
    assert cache.lookup("k", label="convert") == built
    assert cache.take_counts().as_dict()["hits"] == ["convert"]
