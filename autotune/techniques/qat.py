"""Quantization-aware training with TF-MOT: fake-quantised fine-tuning, then conversion to full
int8. After magnitude pruning, the pruning-preserving scheme keeps the zeros through QAT.

Measured on a 75%-sparse CNN: plain QAT kept more accuracy than pruning-preserving QAT, and
post-training int8 as much as plain QAT. The search decides per model which to use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from autotune._keras import tfmot
from autotune.errors import CandidateFailed, InvalidRecipe, first_line
from autotune.techniques._base import Technique
from autotune.techniques.training import fine_tune_watched, keras_quality


@dataclass(frozen=True)
class QuantizeAware(Technique):
    name: ClassVar[str] = "qat"
    order: ClassVar[int] = 3
    # Fake-quantization is folded away at conversion: the int8 artifact has the parent's shape.
    shape_params: ClassVar[tuple[str, ...] | None] = ()
    # Only full-integer TFLite holds what QAT learned.
    requires_precision: ClassVar[str | None] = "int8"
    preserve_sparsity: bool = False
    epochs: int = 1
    learning_rate: float = 1e-4

    def validate(self) -> None:
        if self.epochs < 1:
            raise InvalidRecipe(f"QAT needs at least one epoch of fine-tuning, got {self.epochs}")

    def describe(self) -> str:
        return "QAT (sparsity-preserving)" if self.preserve_sparsity else "QAT"

    def apply(self, model: Any, context: Any) -> Any:
        q = tfmot().quantization.keras
        try:
            if self.preserve_sparsity:
                scheme = tfmot().experimental.combine.Default8BitPrunePreserveQuantizeScheme()
                quantized = q.quantize_apply(q.quantize_annotate_model(model), scheme)
            else:
                quantized = q.quantize_model(model)
        except (ValueError, RuntimeError, TypeError) as e:
            raise CandidateFailed(f"TF-MOT cannot quantise this model: {first_line(e)}") from None
        fine_tune_watched(quantized, context, self.name, epochs=self.epochs, learning_rate=self.learning_rate)
        context.facts.update(keras_quality(quantized, context.data))
        return quantized

    def probe(self, model: Any) -> str | None:
        try:
            tfmot().quantization.keras.quantize_model(model)
        except (ValueError, RuntimeError, TypeError, KeyError) as e:
            return f"TF-MOT cannot quantise this model: {first_line(e)}"
        return None
