"""A content-addressed cache of built models and artifacts under the study's folder.

An entry is a directory named by its content key. It is written under a temporary name and
renamed into place, so a half-written entry (a crash mid-write) is never read as a hit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autotune._files import writing_atomically


@dataclass
class CacheCounts:
    hits: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    # Fine-tuning work: epochs run for this trial, and epochs a cache hit made unnecessary.
    epochs_trained: int = 0
    epochs_reused: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"hits": self.hits, "misses": self.misses, "epochs_trained": self.epochs_trained, "epochs_reused": self.epochs_reused}


class ContentCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.counts = CacheCounts()

    def entry(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str, *, label: str) -> Path | None:
        """The entry for ``key`` if it is complete (counted as a hit), else None."""
        final = self.entry(key)
        if final.is_dir():
            self.counts.hits.append(label)
            return final
        return None

    def get_or_build(self, key: str, build: Callable[[Path], None], *, label: str) -> Path:
        """Return the entry for ``key``; on a miss, ``build(tmpdir)`` fills a new one first."""
        final = self.entry(key)
        if final.is_dir():
            self.counts.hits.append(label)
            return final
        self.counts.misses.append(label)
        self.root.mkdir(parents=True, exist_ok=True)
        # Two workers may build the same entry at once: the first renamed in is kept.
        with writing_atomically(final, directory=True) as tmp:
            build(tmp)
        return final

    def take_counts(self) -> CacheCounts:
        counts, self.counts = self.counts, CacheCounts()
        return counts
