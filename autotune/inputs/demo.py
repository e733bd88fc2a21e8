"""The embedded demo: a small CNN trained once on scikit-learn's digits (real data that ships
inside scikit-learn; nothing is downloaded), cached so later runs do not retrain it.

The 8×8 digits are upsampled to 32×32 and fed to a few 3×3 convolutions: large enough that
precision, threads and the training-based techniques change its latency measurably (about
0.5 ms fp32 on one core here), small enough to train in about 12 s on two cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autotune._files import writing_atomically

DEMO_VERSION = 1
SEED = 0
EPOCHS = 8
VAL_FRACTION = 0.2


def demo_paths(root: Path) -> tuple[Path, Path]:
    folder = root / f"_demo-v{DEMO_VERSION}"
    return folder / "model.keras", folder / "digits.npz"


def digits_npz(path: Path) -> None:
    """Write the digits, upsampled to 32×32 in [0, 1], as a shuffled train/val npz."""
    from sklearn.datasets import load_digits

    from autotune._keras import tf

    digits = load_digits()
    x = digits.images.astype(np.float32)[..., None] / 16.0
    x = tf().image.resize(x, (32, 32)).numpy().astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    x, y = x[order], y[order]
    n_val = int(len(x) * VAL_FRACTION)
    np.savez_compressed(path, x_train=x[n_val:], y_train=y[n_val:], x_val=x[:n_val], y_val=y[:n_val])


def build_model():  # -> tf_keras.Model
    from autotune._keras import keras

    k = keras()
    L = k.layers
    return k.Sequential(
        [
            L.Input((32, 32, 1)),
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.MaxPool2D(),
            L.Conv2D(64, 3, padding="same", activation="relu"),
            L.Conv2D(64, 3, padding="same", activation="relu"),
            L.MaxPool2D(),
            L.Flatten(),
            L.Dense(128, activation="relu"),
            L.Dense(10),
        ],
        name="digits_cnn",
    )


def ensure_demo(root: Path) -> tuple[Path, Path]:
    """Return (model path, data path), training and caching the demo model on first use."""
    from autotune.inputs.data import load_npz

    model_path, data_path = demo_paths(root)
    if model_path.is_file() and data_path.is_file():
        return model_path, data_path
    folder = model_path.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Another process may finish first; theirs is as good as ours, and is kept.
    with writing_atomically(folder, directory=True) as tmp:
        digits_npz(tmp / data_path.name)
        data = load_npz(tmp / data_path.name)

        from autotune._keras import keras

        k = keras()
        k.utils.set_random_seed(SEED)
        model = build_model()
        model.compile(
            optimizer=k.optimizers.Adam(1e-3),
            loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        model.fit(data.x_train, data.y_train, epochs=EPOCHS, batch_size=32, verbose=0)
        model.save(tmp / model_path.name)
    return model_path, data_path
