"""The study database: opening Optuna storages (SQLite, PostgreSQL), creating and loading
studies, and the names of every record autotune keeps on a study or a trial (``store``); a
trial's record, typed (``record``: ``TrialRecord``, its metrics, latency figures and end-of-run
re-measurement), the one code that turns it into trial user attributes and back, and the rule
from a task to the quality its limit applies to (``Quality``). It imports only
``autotune.inputs`` (the study configuration it stores) and the errors.
"""
