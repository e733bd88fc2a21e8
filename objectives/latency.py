"""Latency of one call at batch 1 (p50, minimise) against the deployed artifact's accuracy
(maximise), feasible while the accuracy drop from the fp32 baseline stays within the limit."""

from autotune.search.objective import Constraint, Metric, Objective


def objective(max_accuracy_drop: float) -> Objective:
    return Objective(
        name="latency",
        metrics=(Metric("latency_p50_ms", "minimize"), Metric("accuracy", "maximize")),
        constraints=(Constraint("accuracy_drop", max_accuracy_drop),),
    )
