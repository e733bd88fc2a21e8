"""Where submitted files live: by content hash, never by the name the client gave.

An upload is staged in a fresh folder, checked, then moved to ``uploads/<sha256>.<kind>`` (a
zip is unpacked to ``uploads/<sha256>/``). The client's file name decides only which kind of
file it claims to be; no path the client sends is joined to a server path. Files already on
the server are named by their bare name and looked up in the files folder's listing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from autotune.errors import ConfigError

MODEL_KINDS = (".keras", ".h5", ".zip")  # a zip holds a SavedModel
DATA_KINDS = (".npz", ".zip")  # a zip holds an image folder (a folder per class)
# A zip may unpack to at most this many times the upload limit (a zip bomb is refused).
UNPACK_FACTOR = 4
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class TooLarge(ConfigError):
    """An upload over the server's size limit (HTTP 413)."""


@dataclass(frozen=True)
class Folders:
    root: Path

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def files(self) -> Path:
        """Files an administrator put on the server for clients to name."""
        return self.root / "files"

    @property
    def studies(self) -> Path:
        """The studies folder of the runs (demo model, build caches)."""
        return self.root / "studies"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def make(self) -> Folders:
        for p in (self.uploads, self.staging, self.files, self.studies, self.exports):
            p.mkdir(parents=True, exist_ok=True)
        return self


def kind_of(client_name: str | None, kinds: tuple[str, ...], what: str) -> str:
    """The kind an upload claims to be, from the end of its name (nothing else of it is used)."""
    suffix = PurePosixPath((client_name or "").replace("\\", "/")).suffix.lower()
    if suffix not in kinds:
        raise ConfigError(f"the {what} upload must be a {', '.join(kinds)} file, got {client_name or 'no name'!r}")
    return suffix


class Staged:
    """One upload being received: written to a fresh staging file while its hash is taken."""

    def __init__(self, folders: Folders, kind: str, limit_bytes: int) -> None:
        self.folders, self.kind, self.limit = folders, kind, limit_bytes
        self.dir = folders.staging / uuid.uuid4().hex
        self.dir.mkdir(parents=True)
        self.path = self.dir / f"upload{kind}"
        self._file = open(self.path, "wb")  # noqa: SIM115  # closed by finish or discard
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLarge(f"upload over the server's limit of {self.limit // 2**20} MiB")
        self._hash.update(chunk)
        self._file.write(chunk)

    def close(self) -> None:
        self._file.close()

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()

    def unpacked(self, what: str) -> Path:
        """The file to check: the upload itself, or for a zip its unpacked folder."""
        self.close()
        if self.kind != ".zip":
            return self.path
        return _unzip(self.path, self.dir / "unpacked", self.limit * UNPACK_FACTOR, what)

    def keep(self, checked: Path) -> Path:
        """Move the checked upload into the content store; where the checked file now lives.
        The same content uploaded twice is kept once."""
        self.close()
        final = self.folders.uploads / (self.digest + (self.kind if self.kind != ".zip" else ""))
        source = self.dir / "unpacked" if self.kind == ".zip" else self.path
        inside = checked.relative_to(source) if self.kind == ".zip" else Path()
        if not final.exists():
            os.replace(source, final)
        self.discard()
        return final / inside if self.kind == ".zip" else final

    def discard(self) -> None:
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _unzip(path: Path, into: Path, limit: int, what: str) -> Path:
    """Unpack a zip whose members all stay inside ``into``; the folder that holds the content
    (the zip's root, or its one top folder)."""
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
            if sum(m.file_size for m in members) > limit:
                raise TooLarge(f"the {what} zip unpacks to more than the server's limit of {limit // 2**20} MiB")
            for m in members:
                p = PurePosixPath(m.filename)
                if p.is_absolute() or ".." in p.parts or "\\" in m.filename or ":" in m.filename:
                    raise ConfigError(f"the {what} zip holds a path outside itself: {m.filename!r}")
            z.extractall(into)
    except zipfile.BadZipFile:
        raise ConfigError(f"the {what} upload is not a readable zip file") from None
    tops = [p for p in into.iterdir() if not p.name.startswith(("__MACOSX", "."))] if into.exists() else []
    if len(tops) == 1 and tops[0].is_dir() and not (into / "saved_model.pb").exists():
        return tops[0]
    if not tops:
        raise ConfigError(f"the {what} zip is empty")
    return into


def named(folders: Folders, name: str, kinds: tuple[str, ...], what: str) -> Path:
    """A file already on the server, named by its bare name in the files folder."""
    if not _NAME.match(name):
        raise ConfigError(f"{what} name {name!r} must be a bare file name in the server's files folder, not a path")
    for entry in folders.files.iterdir():  # the listing's own entry: the client's text joins nothing
        if entry.name == name:
            if entry.is_file() and entry.suffix.lower() not in kinds:
                raise ConfigError(f"{what} {name!r} on the server is not a {', '.join(kinds)} file")
            return entry
    raise ConfigError(f"no {what} named {name!r} in the server's files folder")
