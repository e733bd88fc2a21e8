"""The few exceptions autotune raises on purpose.

| error            | meaning                                              | effect                          |
|------------------|------------------------------------------------------|---------------------------------|
| ConfigError      | bad file, flag, model or data given by the user      | one clear line, exit 2          |
| InvalidRecipe    | a combination that cannot be built                   | trial pruned before any work    |
| CandidateFailed  | conversion or measurement failed for this candidate  | trial FAIL, the search goes on  |
| TrainingStopped  | fine-tuning hopeless after its first epoch           | trial recorded as gated         |
| SearchStopped    | the search cannot usefully go on (failures in a row) | one clear line, exit 1          |
| ExportMismatch   | the written artifact does not reproduce its record   | one clear line, exit 1          |

Anything else is a bug and propagates with its traceback.
"""


def first_line(e: BaseException) -> str:
    """The line of an exception's message worth showing a user (at most 300 characters)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # TFLite's converter puts the useful "error: ..." line somewhere in a long message.
    for ln in lines:
        if "error:" in ln.lower():
            return ln[:300]
    return (lines[0] if lines else type(e).__name__)[:300]


class AutotuneError(Exception):
    """Base of every error autotune raises deliberately; its message is one line for the user."""

    exit_code = 1


class ConfigError(AutotuneError):
    """The user's input (flag, file, model, data, study name) cannot be used."""

    exit_code = 2


class StorageError(ConfigError):
    """The study storage cannot be reached or read."""


class InvalidRecipe(AutotuneError):
    """A recipe that cannot be built; the trial is pruned before any work is spent on it."""


class CandidateFailed(AutotuneError):
    """Building or measuring this candidate failed; the trial fails and the search goes on."""


class TrainingStopped(AutotuneError):
    """A fine-tuning run stopped after its first epoch because its accuracy there cannot reach
    the gate; the trial is recorded as gated (complete, never on the front), not failed."""

    def __init__(self, reason: str, quality: dict[str, float]) -> None:
        super().__init__(reason)
        self.quality = quality  # the validation quality after the first epoch, e.g. {"accuracy_keras": 0.41}
        self.lineage: tuple[dict[str, object], ...] = ()  # set by the builder: the steps up to the stopped one


class SearchStopped(AutotuneError):
    """The search stopped before its budget because going on would waste the user's time."""


class ExportMismatch(AutotuneError):
    """The exported artifact does not reproduce the metrics recorded for its trial."""
