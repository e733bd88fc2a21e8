"""Techniques that turn one Keras model into another: the ``Technique`` base and the registry
of stored names (``_base``), one module per built-in technique (``distill``,
``channel_prune``, ``prune``, ``qat``), the channel surgery both channel techniques rest on
(``_surgery``), recurrent layers' narrowing (``recurrent``) and the shared fine-tuning
(``training``). It imports only ``autotune.inputs`` (the data a technique trains on), the
errors and TensorFlow through ``autotune._keras``; the conversion to an artifact is
``autotune.build``'s.
"""

from __future__ import annotations

from autotune.techniques._base import TECHNIQUES, Technique, technique_from_dict
from autotune.techniques.channel_prune import ChannelPrune
from autotune.techniques.distill import Distill
from autotune.techniques.prune import MagnitudePrune
from autotune.techniques.qat import QuantizeAware

__all__ = ["TECHNIQUES", "ChannelPrune", "Distill", "MagnitudePrune", "QuantizeAware", "Technique", "technique_from_dict"]
