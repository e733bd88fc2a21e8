"""Fine-tuning shared by the training-based techniques: one loop for label training and for
distillation, the study's training split read through tf.data, the thinner model both
channel techniques train, and the saving and loading of intermediate models in the content
cache."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotune._keras import keras, native_stderr_silenced, tf, tfmot
from autotune.errors import CandidateFailed, TrainingStopped, first_line
from autotune.inputs.data import Dataset
from autotune.techniques._surgery import copy_model, thinned

BATCH_SIZE = 64
KERAS_FILE = "model.keras"
H5_FILE = "model.h5"  # QAT wrappers do not survive the .keras format in TF-MOT 0.8
FACTS_FILE = "facts.json"


def outputs_probabilities(model: Any) -> bool:
    """True if the model ends in a softmax (probabilities), False if it outputs logits."""
    layer = model.layers[-1]
    while hasattr(layer, "layer"):  # pruning / quantisation wrappers
        layer = layer.layer
    if type(layer).__name__ == "Softmax":
        return True
    activation = layer.get_config().get("activation")
    return activation == "softmax"


def _logits(outputs: Any, probabilities: bool) -> Any:
    t = tf()
    return t.math.log(t.clip_by_value(outputs, 1e-7, 1.0)) if probabilities else outputs


def predict_logits(model: Any, x: np.ndarray, task: str = "classification") -> np.ndarray:
    """The teacher's signal for distillation: logits, or the raw outputs of a regressor."""
    out = model.predict(x, batch_size=256, verbose=0)
    if task == "regression":
        return np.asarray(out, dtype=np.float32).reshape(len(x), -1)
    return np.asarray(_logits(out, outputs_probabilities(model)), dtype=np.float32)


def keras_quality(model: Any, data: Dataset) -> dict[str, float]:
    """The gate's cheap estimate on the validation split: top-1 accuracy, or mean absolute
    error for regression."""
    pred = model.predict(data.x_val, batch_size=256, verbose=0)
    if data.task == "regression":
        return {"mae_keras": float(np.mean(np.abs(pred.reshape(data.y_val.shape) - data.y_val)))}
    return {"accuracy_keras": float(np.mean(np.argmax(pred, axis=-1) == data.y_val))}


# How much more than the most a technique has gained after its first epoch in this study a
# run must still need to gain for it to be stopped there: a margin for runs that learn late.
GAIN_SAFETY = 1.5
FIRST_EPOCH = "_epoch1"  # suffix of the facts key holding the quality after the first epoch


@dataclass(frozen=True)
class FirstEpochRule:
    """When a fine-tuning run is hopeless after its first epoch (early stop by fidelity).

    The gate stops a trained candidate whose Keras quality is past ``limit`` (a drop in
    accuracy points, or an MAE increase). After one epoch of several a run is not done
    learning, so it is stopped only if even gaining ``GAIN_SAFETY`` times the most any run of
    the same technique gained after its first epoch in this study would leave it past the
    limit. A technique with no finished run in the study yet is never stopped: its first runs
    teach the rule what the rest of the training brings.
    """

    task: str
    baseline: float  # the baseline's accuracy (or MAE)
    limit: float
    # technique name → the most its quality improved from the first epoch to the last, in
    # the units of the limit (accuracy points, or MAE)
    gains: Mapping[str, float] = field(default_factory=dict)

    def loss(self, quality: float) -> float:
        return quality - self.baseline if self.task == "regression" else self.baseline - quality

    def verdict(self, technique: str, quality: float, epochs: int) -> str | None:
        """Why a run of ``technique`` with this quality after epoch 1 of ``epochs`` stops, or None."""
        gain = self.gains.get(technique)
        if gain is None:
            return None
        loss = self.loss(quality)
        if loss - GAIN_SAFETY * max(gain, 0.0) <= self.limit:
            return None
        name, worse = ("mae", "an MAE increase") if self.task == "regression" else ("accuracy", "a drop")
        return (
            f"{name} {quality:.4f} after epoch 1 of {epochs}, {worse} of {loss:.4f}: even gaining {GAIN_SAFETY:g}× "
            f"the most a {technique} run gained after its first epoch here ({gain:.4f}) leaves it past the gate at "
            f"{self.limit:.4f}: stopped after 1 epoch, not converted or timed"
        )


class _FirstEpochWatch:
    """A Keras callback: the validation quality after the first epoch, and the rule's verdict."""

    def __init__(self, data: Dataset, technique: str, epochs: int, rule: FirstEpochRule | None) -> None:
        self.data, self.technique, self.epochs, self.rule = data, technique, epochs, rule
        self.quality: dict[str, float] = {}
        self.stopped: str | None = None

    def callback(self) -> Any:
        watch = self

        class Watch(keras().callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                if epoch != 0:
                    return
                watch.quality = keras_quality(self.model, watch.data)
                if watch.rule is not None:
                    (value,) = watch.quality.values()
                    watch.stopped = watch.rule.verdict(watch.technique, value, watch.epochs)
                    if watch.stopped is not None:
                        self.model.stop_training = True

        return Watch()


def fine_tune_watched(model: Any, context: Any, technique: str, *, epochs: int, **training: Any) -> None:
    """``fine_tune`` that records the validation quality after the first epoch in the step's
    facts (``accuracy_keras_epoch1``) and stops the run there when the context's
    ``first_epoch_rule`` says it is hopeless (``TrainingStopped``)."""
    rule = getattr(context, "first_epoch_rule", None)
    if epochs < 2:
        fine_tune(model, context.data, epochs=epochs, seed=context.seed, **training)
        return
    watch = _FirstEpochWatch(context.data, technique, epochs, rule)
    callbacks = (*training.pop("callbacks", ()), watch.callback())
    fine_tune(model, context.data, epochs=epochs, seed=context.seed, callbacks=callbacks, **training)
    if watch.stopped is not None:
        raise TrainingStopped(watch.stopped, watch.quality)
    context.facts.update({k + FIRST_EPOCH: v for k, v in watch.quality.items()})


def fine_tune(
    model: Any,
    data: Dataset,
    *,
    epochs: int,
    seed: int,
    learning_rate: float,
    teacher_logits: np.ndarray | None = None,
    temperature: float = 1.0,
    alpha: float = 0.0,
    callbacks: tuple[Any, ...] = (),
) -> None:
    """Train ``model`` in place on the training split.

    The loss is ``(1 - alpha) · cross-entropy(labels)`` plus, when ``teacher_logits`` are
    given, ``alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T))`` (Hinton et al.).
    For regression both terms are mean squared errors (to the targets, to the teacher's
    outputs) and the temperature has no role. The teacher's logits ride along in ``y`` so
    that Keras' own ``fit`` runs the loop (the pruning callbacks need it).
    """
    if epochs <= 0:
        return
    t, k = tf(), keras()
    k.utils.set_random_seed(seed)
    regression = data.task == "regression"
    probabilities = not regression and outputs_probabilities(model)
    labels = data.y_train.astype(np.float32).reshape(len(data.y_train), -1)
    width = labels.shape[1]
    if teacher_logits is None:
        y = labels
        kd_weight = 0.0
    else:
        y = np.concatenate([labels, teacher_logits.astype(np.float32)], axis=1)
        kd_weight = float(alpha)
    temp = float(temperature)

    def loss(y_true: Any, y_pred: Any) -> Any:
        if regression:
            pred = t.reshape(y_pred, (-1, width))
            mse = t.reduce_mean(t.square(y_true[:, :width] - pred), axis=-1)
            if kd_weight == 0.0:
                return mse
            kd = t.reduce_mean(t.square(y_true[:, width:] - pred), axis=-1)
            return kd_weight * kd + (1.0 - kd_weight) * mse
        student = _logits(y_pred, probabilities)
        ce = k.losses.sparse_categorical_crossentropy(t.cast(y_true[:, 0], t.int32), student, from_logits=True)
        if kd_weight == 0.0:
            return ce
        soft_teacher = t.nn.softmax(y_true[:, 1:] / temp)
        soft_student = t.nn.softmax(student / temp)
        kd = k.losses.kl_divergence(soft_teacher, soft_student) * (temp * temp)
        return kd_weight * kd + (1.0 - kd_weight) * ce

    ds = (
        t.data.Dataset.from_tensor_slices((data.x_train, y))
        .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        .batch(BATCH_SIZE)
        .prefetch(t.data.AUTOTUNE)
    )
    model.compile(optimizer=k.optimizers.Adam(learning_rate), loss=loss)
    try:
        with native_stderr_silenced():
            model.fit(ds, epochs=epochs, verbose=0, callbacks=list(callbacks))
    except (ValueError, TypeError, t.errors.OpError) as e:
        raise CandidateFailed(f"fine-tuning failed: {first_line(e)}") from None


def steps_per_epoch(data: Dataset) -> int:
    return -(-len(data.x_train) // BATCH_SIZE)


def save_entry(model: Any, facts: dict[str, Any], folder: Path) -> None:
    """Write a cache entry: the model and what the technique recorded about it."""
    quantized = any(type(layer).__name__.startswith("Quantize") for layer in model.layers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # h5 is "legacy", but the only format QAT reloads from
        model.save(folder / (H5_FILE if quantized else KERAS_FILE))
    (folder / FACTS_FILE).write_text(json.dumps(facts, sort_keys=True))


def load_facts(folder: Path) -> dict[str, Any]:
    return json.loads((folder / FACTS_FILE).read_text())


def load_entry(folder: Path) -> Any:
    """Load a model written by ``save_entry`` (our own cache: QAT's custom objects in scope,
    and the user's layers of the --custom-objects file this process loaded the model with)."""
    from autotune.inputs import custom

    k = keras()
    try:
        with tfmot().quantization.keras.quantize_scope(), custom.scope(), native_stderr_silenced():
            if (folder / H5_FILE).is_file():
                return k.models.load_model(folder / H5_FILE, compile=False)
            return k.models.load_model(folder / KERAS_FILE, compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise CandidateFailed(f"cannot reload the cached model in {folder.name}: {first_line(e)}") from None



def count_params(model: Any) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights if w.trainable))


def train_thinner(model: Any, ratio: float, context: Any, technique: str, **training: Any) -> Any:
    """Thin ``model`` to ``ratio`` of its channels (a copy at 1.0), fine-tune it, record facts."""
    student = thinned(model, ratio) if ratio < 1.0 else copy_model(model)
    fine_tune_watched(student, context, technique, **training)
    context.facts.update(
        params_before=count_params(model), params=count_params(student), **keras_quality(student, context.data)
    )
    return student
