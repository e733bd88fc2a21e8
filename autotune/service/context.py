"""What the app serves: the storage, the queue, the folders, and how it is guarded."""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna

from autotune.service import tasks
from autotune.service.queue import Queue
from autotune.service.uploads import Folders
from autotune.storage import store


@dataclass
class Service:
    """What the app serves: the storage, the queue, the folders, and how it is guarded."""

    storage_url: str
    folders: Folders
    require_token: bool = False
    trust_model_code: bool = False
    max_upload_bytes: int = 2 << 30
    tasks: tasks.Tasks = field(default_factory=tasks.Tasks)
    queue: Queue = field(init=False)
    _storage: optuna.storages.RDBStorage = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.folders.make()
        self.queue = Queue(self.storage_url)
        self._storage = store.open_storage(self.storage_url)

    def storage(self) -> optuna.storages.RDBStorage:
        """One storage for every request (Optuna's RDB storage is safe across threads)."""
        return self._storage
