"""Atomic writes (no TensorFlow): a reader sees the old content or the new, never half of it,
and a failed write leaves nothing behind."""

from __future__ import annotations

import pytest

from autotune._files import write_bytes_atomically, write_text_atomically, writing_atomically


def test_a_write_replaces_the_content_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "manifest.json"
    write_text_atomically(path, "old")
    write_text_atomically(path, "new")
    write_bytes_atomically(tmp_path / "model.tflite", b"\x00\x01")
    assert path.read_text() == "new" and (tmp_path / "model.tflite").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "model.tflite"]


def test_a_write_that_fails_midway_keeps_the_old_content_and_no_temporary(tmp_path):
    path = tmp_path / "front.png"
    path.write_text("old")
    with pytest.raises(MemoryError), writing_atomically(path) as tmp:
        tmp.write_text("half")
        raise MemoryError("killed mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["front.png"]


def test_a_directory_that_fails_midway_leaves_nothing(tmp_path):
    dest = tmp_path / "entry"
    with pytest.raises(RuntimeError), writing_atomically(dest, directory=True) as tmp:
        (tmp / "model.tflite").write_bytes(b"half")
        raise RuntimeError("conversion failed")
    assert not list(tmp_path.iterdir())


def test_a_directory_is_renamed_into_place(tmp_path):
    dest = tmp_path / "entry"
    with writing_atomically(dest, directory=True) as tmp:
        assert tmp.is_dir() and tmp.parent == tmp_path
        (tmp / "model.tflite").write_bytes(b"whole")
    assert (dest / "model.tflite").read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_when_two_write_one_directory_the_first_is_kept(tmp_path):
    dest = tmp_path / "entry"
    with writing_atomically(dest, directory=True) as ours:
        (ours / "model.tflite").write_bytes(b"ours")
        with writing_atomically(dest, directory=True) as theirs:  # another process, finishing first
            (theirs / "model.tflite").write_bytes(b"theirs")
    assert (dest / "model.tflite").read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]  # ours was discarded


def test_a_directory_that_cannot_be_renamed_is_an_error(tmp_path):
    dest = tmp_path / "entry"
    dest.write_text("a file in the way")
    with pytest.raises(OSError), writing_atomically(dest, directory=True) as tmp:
        (tmp / "model.tflite").write_bytes(b"whole")
    assert dest.read_text() == "a file in the way"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]
