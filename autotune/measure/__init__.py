"""Running artifacts and measuring them: executors for LiteRT and TensorFlow (``artifact``),
latency statistics, quality metrics and the environment fingerprint (``stats``), the timer
that interleaves a candidate with the baseline (``timing``), the host's lock, pinning and
compute peak (``host``) and multiply-accumulate counting (``compute``). It may import
``build`` (the peak's matrix product is converted like any model) and the layers below it;
never the study loop or the results.
"""

# Space files written before the layout by layer import it from here.
from autotune.measure.stats import usable_cores

__all__ = ["usable_cores"]
