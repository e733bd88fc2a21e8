"""Built-in objectives: one module each, defining ``objective(max_accuracy_drop) -> Objective``."""
