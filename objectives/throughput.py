"""Samples per second (maximise) against the deployed artifact's accuracy (maximise), with the
batch size searched; feasible within the accuracy limit and, optionally, a per-call p99 limit
(a batch that waits too long for its answer is no use to a service with a deadline)."""

from autotune.search.objective import Constraint, Metric, Objective

BATCH_SIZES = (1, 4, 16, 64)


def objective(max_accuracy_drop: float, max_p99_ms: float | None = None) -> Objective:
    constraints = [Constraint("accuracy_drop", max_accuracy_drop)]
    if max_p99_ms is not None:
        constraints.append(Constraint("latency_p99_ms", max_p99_ms))
    return Objective(
        name="throughput",
        metrics=(Metric("throughput_sps", "maximize"), Metric("accuracy", "maximize")),
        constraints=tuple(constraints),
        batch_sizes=BATCH_SIZES,
    )
