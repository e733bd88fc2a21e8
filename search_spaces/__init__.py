"""Built-in search spaces: one module each, defining ``space(trial) -> Recipe``."""
