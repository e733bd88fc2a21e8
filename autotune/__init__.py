"""autotune: measured multi-objective search for deployable TensorFlow/Keras models.

The package is layered; each subpackage imports only those below it (``lint-imports``
checks it): ``cli`` and ``report`` (printing) → ``study`` (the run and its trials) →
``results`` (front, choice, export, plots) → ``measure`` (executors, timing, host) →
``build`` (builder, cache, conversion) → ``search`` (recipes, objectives, spaces) →
``techniques`` and ``storage`` → ``inputs`` (configuration, model, data) → ``_keras`` (the
one TensorFlow import), ``errors`` and ``_files`` (writing a file or directory atomically).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("autotune")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
