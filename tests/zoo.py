"""A zoo of the model shapes users bring, built small and trained briefly on data that ships
inside scikit-learn (digits) or is generated (token sequences): nothing is downloaded.

Each builder writes ``model`` (as the user would have saved it) and ``data.npz`` into a folder
and returns both paths; ``epochs`` and ``limit`` (samples, train and validation together)
keep the tests' versions quick. The tests run each shape end to end; ``benchmarks/zoo.py`` searches
each with a real budget. Keras 3 models are built with ``import keras`` (what users of
TensorFlow 2.21 get), tf_keras ones through autotune's own import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

SEED = 0


def _digits(size: int, channels: int = 1, scale: float = 1.0, limit: int | None = None) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    from autotune._keras import tf

    d = load_digits()
    x = d.images.astype(np.float32)[..., None] / 16.0
    x = tf().image.resize(x, (size, size)).numpy().astype(np.float32) * scale
    if channels > 1:
        x = np.repeat(x, channels, axis=-1)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))[:limit]
    x, y = x[order], y[order]
    n_val = len(x) // 5
    return {"x_train": x[n_val:], "y_train": y[n_val:], "x_val": x[:n_val], "y_val": y[:n_val]}


def _rows(size: int, limit: int | None = None) -> dict[str, np.ndarray]:
    """Digits as sequences: ``size`` rows of ``size`` pixels, read top to bottom."""
    return {k: (v[..., 0] if k.startswith("x") else v) for k, v in _digits(size, limit=limit).items()}


def _tokens(n: int = 1500, length: int = 24, vocab: int = 40) -> dict[str, np.ndarray]:
    """Token sequences labelled by which of two marker tokens occurs more often, padded with 0
    at the end (so Masking/mask_zero matter): learnable only by reading the sequence."""
    rng = np.random.default_rng(SEED)
    x = rng.integers(3, vocab, (n, length)).astype(np.int32)
    lengths = rng.integers(length // 2, length + 1, n)
    for i, m in enumerate(lengths):
        marks = rng.integers(1, 3, rng.integers(1, 6))
        x[i, rng.choice(m, len(marks), replace=False)] = marks
        x[i, m:] = 0
    y = ((x == 1).sum(1) > (x == 2).sum(1)).astype(np.int64)
    n_val = n // 5
    return {"x_train": x[n_val:], "y_train": y[n_val:], "x_val": x[:n_val], "y_val": y[:n_val]}


def _settle_batch_norm(model) -> None:
    """Keras applications keep BN statistics with momentum 0.999, which a few epochs on a small
    set never settle, so inference would be near chance; 0.9 settles them within an epoch."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            _settle_batch_norm(layer)
        elif type(layer).__name__ == "BatchNormalization":
            layer.momentum = 0.9


def _fit(model, data: dict[str, np.ndarray], epochs: int, lr: float = 2e-3) -> None:
    _settle_batch_norm(model)
    model.compile(optimizer=_adam(model, lr), loss=_loss(model), metrics=["accuracy"])
    model.fit(data["x_train"], data["y_train"], epochs=epochs, batch_size=32, verbose=0)


def _adam(model, lr: float):
    if type(model).__module__.startswith("keras."):
        import keras

        return keras.optimizers.Adam(lr)
    from autotune._keras import keras

    return keras().optimizers.Adam(lr)


def _loss(model):
    if type(model).__module__.startswith("keras."):
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    from autotune._keras import keras

    return keras().losses.SparseCategoricalCrossentropy(from_logits=True)


def _save(folder: Path, model, name: str, data: dict[str, np.ndarray]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    model_path, data_path = folder / name, folder / "data.npz"
    model.save(model_path)
    np.savez_compressed(data_path, **data)
    return model_path, data_path


def _seed_all() -> None:
    import keras

    from autotune._keras import keras as tf_keras

    keras.utils.set_random_seed(SEED)
    tf_keras().utils.set_random_seed(SEED)


def _transfer(k, folder: Path, epochs: int, limit: int | None) -> tuple[Path, Path]:
    """The Keras guide's transfer learning with the Keras ``k``: a MobileNetV2 base (alpha
    0.35) used as one layer of a Functional model whose grey input is repeated into three."""
    _seed_all()
    inp = k.Input((32, 32, 1))
    x = k.layers.Concatenate()([inp, inp, inp])
    base = k.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    x = k.layers.GlobalAveragePooling2D()(base(x))
    model = k.Model(inp, k.layers.Dense(10)(k.layers.Dropout(0.1)(x)), name="transfer")
    data = _digits(32, limit=limit)
    _fit(model, data, epochs)
    return _save(folder, model, "model.keras", data)


def nested_tf_keras(folder: Path, epochs: int = 3, limit: int | None = None) -> tuple[Path, Path]:
    """The transfer-learning shape in tf_keras."""
    from autotune._keras import keras

    return _transfer(keras(), folder, epochs, limit)


def nested_keras3(folder: Path, epochs: int = 3, limit: int | None = None) -> tuple[Path, Path]:
    """The same shape written by Keras 3 (``import keras``)."""
    import keras

    return _transfer(keras, folder, epochs, limit)


def mobilenet_v3_keras3(folder: Path, epochs: int = 3, limit: int | None = None) -> tuple[Path, Path]:
    """A stock Keras 3 application: MobileNetV3Small (alpha 0.75; hard-swish, SE blocks, its
    own Rescaling, so it takes pixels in 0..255)."""
    import keras

    _seed_all()
    model = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75, weights=None, classes=10,
                                                include_preprocessing=True, classifier_activation=None)
    data = _digits(32, channels=3, scale=255.0, limit=limit)
    _fit(model, data, epochs)
    return _save(folder, model, "model.keras", data)


def lstm_rows_keras3(folder: Path, epochs: int = 4, limit: int | None = None) -> tuple[Path, Path]:
    """Keras 3 ``Sequential([Input((16, 16)), LSTM(64), Dense(10)])`` reading a digit's rows."""
    import keras

    _seed_all()
    model = keras.Sequential([keras.Input((16, 16)), keras.layers.LSTM(64), keras.layers.Dense(10)])
    data = _rows(16, limit=limit)
    _fit(model, data, epochs, lr=5e-3)
    return _save(folder, model, "model.keras", data)


def embedding_gru_tf_keras(folder: Path, epochs: int = 4, limit: int | None = None) -> tuple[Path, Path]:
    """A tf_keras text classifier: Embedding (mask_zero) → GRU → Dense, on token ids."""
    from autotune._keras import keras

    _seed_all()
    k = keras()
    model = k.Sequential([k.Input((24,), dtype="int32"), k.layers.Embedding(40, 16, mask_zero=True), k.layers.GRU(32), k.layers.Dense(2)])
    data = _tokens(limit or 1500)
    _fit(model, data, epochs, lr=5e-3)
    return _save(folder, model, "model.keras", data)


def conv_relu_bn_h5(folder: Path, epochs: int = 3, limit: int | None = None) -> tuple[Path, Path]:
    """A user CNN with batch normalisation *after* the activation (Conv → ReLU → BN), saved as
    ``.h5``: TF-MOT's QAT cannot fold such a BN, so the probe must leave QAT out."""
    from autotune._keras import keras

    _seed_all()
    k = keras()
    L = k.layers
    layers: list = [L.Input((32, 32, 1))]
    for filters in (16, 32, 32):
        layers += [L.Conv2D(filters, 3, padding="same"), L.ReLU(), L.BatchNormalization(), L.MaxPool2D()]
    model = k.Sequential([*layers, L.Flatten(), L.Dense(64, activation="relu"), L.Dense(10)], name="conv_relu_bn")
    data = _digits(32, limit=limit)
    _fit(model, data, epochs)
    return _save(folder, model, "model.h5", data)


SHAPES: dict[str, Callable[..., tuple[Path, Path]]] = {
    "nested-tf-keras": nested_tf_keras,
    "nested-keras3": nested_keras3,
    "mobilenet-v3-keras3": mobilenet_v3_keras3,
    "lstm-rows-keras3": lstm_rows_keras3,
    "embedding-gru": embedding_gru_tf_keras,
    "conv-relu-bn-h5": conv_relu_bn_h5,
}
# The shapes whose trunk is recurrent.
RECURRENT = {"lstm-rows-keras3", "embedding-gru"}
