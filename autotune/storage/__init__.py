"""The study database: opening Optuna storages (SQLite, PostgreSQL), creating and loading
studies, and the names of every record autotune keeps on a study or a trial (``store``).
It imports only ``autotune.inputs`` (the study configuration it stores) and the errors.
"""
