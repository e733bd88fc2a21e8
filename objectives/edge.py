"""For a device where memory matters as much as time: latency p50 at batch 1 (minimise),
the deployed artifact's accuracy (maximise) and its size on disk (minimise), three objectives
at once, feasible within the accuracy limit. The front is a surface: `autotune plot` draws
latency against accuracy with the size in the labels, and `export --prefer size` picks the
smallest feasible member."""

from autotune.search.objective import Constraint, Metric, Objective


def objective(max_accuracy_drop: float) -> Objective:
    return Objective(
        name="edge",
        metrics=(Metric("latency_p50_ms", "minimize"), Metric("accuracy", "maximize"), Metric("size_bytes", "minimize")),
        constraints=(Constraint("accuracy_drop", max_accuracy_drop),),
    )
