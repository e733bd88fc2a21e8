"""Writing a file or a directory so that no reader ever sees it half-written.

Everything autotune writes for others to read (a manifest, a figure, a cache entry, the demo,
the host's measured peak) is written under a temporary name next to its destination and then
renamed into place: a rename within one directory is atomic, so a reader finds the old
content or the new, and a crash leaves at most a hidden temporary behind, never a torn file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def writing_atomically(dest: Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``dest`` to write into; when the block ends without an
    error, what was written there takes ``dest``'s place.

    Args:
        dest: the file or directory to write; its parent directory must exist.
        directory: yield an empty directory (created) rather than a path for a file (not
            created).

    A file replaces the file ``dest`` held, if any. A directory is renamed into place only if
    ``dest`` does not exist (or is an empty directory) by then: if another process put its
    own there meanwhile, that one won and ours is discarded, as both were built from the same
    inputs. A directory meant to replace an existing one is the caller's to remove first.

    Raises:
        OSError: the rename failed for another reason than a lost race. On any error, from
            the block or the rename, the temporary is removed and ``dest`` left as it was.
    """
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if not directory:
            os.replace(tmp, dest)
        else:
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.is_dir():  # not a lost race with another writer: a real error
                    raise
    finally:
        _remove(tmp)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, replacing its content all at once (see ``writing_atomically``)."""
    with writing_atomically(path) as tmp:
        tmp.write_text(text)


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, replacing its content all at once (see ``writing_atomically``)."""
    with writing_atomically(path) as tmp:
        tmp.write_bytes(data)


def _remove(path: Path) -> None:
    """Remove a temporary if it is still there; a leftover is hidden and harmless."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
