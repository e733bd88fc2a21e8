"""For a regressor: latency p50 at batch 1 (minimise) against the deployed artifact's mean
absolute error on the validation targets (minimise). The study's quality limit
(``max_accuracy_drop`` in the study file, ``--max-accuracy-drop`` on the command line) bounds
how much the MAE may grow over the fp32 baseline's, in the targets' units. Training-based
techniques fine-tune on mean squared error, and distillation matches the teacher's outputs."""

from autotune.search.objective import Constraint, Metric, Objective


def objective(max_mae_increase: float) -> Objective:
    return Objective(
        name="regression",
        metrics=(Metric("latency_p50_ms", "minimize"), Metric("mae", "minimize")),
        constraints=(Constraint("mae_increase", max_mae_increase),),
        task="regression",
    )
