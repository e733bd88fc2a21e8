"""Recurrent layers (LSTM, GRU, SimpleRNN, and any of them inside Bidirectional): detecting
them for conversion, and narrowing their units for students and channel pruning.

Conversion: a recurrent model is converted at the deployed batch with a static input
signature (see ``autotune.build.convert``), and, for full-integer int8 only, a layer
TFLite runs as a WHILE loop is unrolled over its time steps first (``unrolled``).

Surgery: a recurrent layer starts a channel group of ``units`` channels, like a Dense layer.
Its kernel ``(inputs, G·units)``, recurrent kernel ``(units, G·units)`` and bias ``(G·units)``
(GRU with ``reset_after``: ``(2, G·units)``) hold G gate blocks side by side (LSTM 4: i, f, c, o;
GRU 3: z, r, h; SimpleRNN 1); the same unit indices are taken from every block, from the
recurrent kernel's rows and columns, and the kernel's rows follow the input's kept channels
(a Conv1D, an Embedding, or a recurrent layer below that returns sequences). Bidirectional
concatenates [forward units, backward units]: both directions keep the same unit indices
(chosen by their summed scores), and the layers after it see the pair of index sets (flow
kind ``pair``). An Embedding starts a group of its output dimensions (columns of its table).
Units are kept, never wrong, where the surgery cannot follow them:

- ``stateful`` layers: their state variables are sized for the old units and carried across
  calls, so a thinner copy would not continue the same sequence;
- ``return_state``, an ``initial_state`` or a constant passed in (several inputs): the states
  are other layers' channels that this module does not trace;
- a Bidirectional that returns both directions apart (``merge_mode=None``), or wraps
  anything but LSTM/GRU/SimpleRNN;
- a layer whose output reaches the model's output (with or without ``return_sequences``):
  output channels are the task's;
- anything that reads the output and is not known to carry it (TimeDistributed, Masking of a
  thinned input, ...): the same rule as for every layer in ``channels``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autotune.errors import CandidateFailed

# Gate blocks per recurrent layer class.
GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
# Unrolling grows the graph with the time steps; past this many, full int8 of a loop fails.
MAX_UNROLL_STEPS = 128


def is_recurrent(model: Any) -> bool:
    """True if any layer of ``model`` (nested models and wrappers such as Bidirectional and
    TimeDistributed included) is a recurrent layer."""
    from autotune._keras import keras

    rnn = keras().layers.RNN
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        if isinstance(layer, rnn):
            return True
        stack.extend(getattr(layer, "layers", []))
        for attr in ("layer", "forward_layer", "backward_layer"):
            inner = getattr(layer, attr, None)
            if inner is not None and inner is not layer:
                stack.append(inner)
    return False


def _rnn_config(cfg: dict[str, Any]) -> dict[str, Any]:
    return cfg["layer"]["config"] if "layer" in cfg else cfg


def surgery_kind(layer: Any) -> str | None:
    """``"rnn"`` or ``"bidirectional"`` for a layer this module narrows, ``"embedding"`` for
    an Embedding, ``"locked"`` for a recurrent layer whose units must be kept, None otherwise."""
    cls = type(layer).__name__
    if cls == "Embedding":
        return "embedding"
    if cls not in GATES and cls != "Bidirectional":
        return None
    cfg = layer.get_config()
    inner = _rnn_config(cfg)
    if cls == "Bidirectional":
        backward = cfg.get("backward_layer")
        if cfg["layer"]["class_name"] not in GATES or cfg.get("merge_mode") is None:
            return "locked"
        if backward is not None and backward["class_name"] != cfg["layer"]["class_name"]:
            return "locked"
    if inner.get("stateful") or inner.get("return_state"):
        return "locked"
    return "bidirectional" if cls == "Bidirectional" else "rnn"


def narrowable(layer: Any, input_kind: str) -> bool:
    """Whether ``layer`` may start a group of its own, given what flows into it (a flow kind of
    ``channels``): an Embedding reads token ids; a recurrent layer's kernel rows can follow a
    group or a Bidirectional's pair, not a Flatten's layout."""
    kind = surgery_kind(layer)
    if kind == "embedding":
        return input_kind == "fixed"
    return kind != "locked" and input_kind in ("fixed", "group", "pair")


def units(layer: Any) -> int:
    """Channels of the group a layer starts (units, or an Embedding's output dimension)."""
    cfg = layer.get_config()
    return int(cfg["output_dim"] if "output_dim" in cfg else _rnn_config(cfg)["units"])


def output_kind(layer: Any) -> str:
    """How a narrowed layer's output channels are laid out: ``group`` (the unit indices) or
    ``pair`` (a concatenating Bidirectional: the indices in each direction)."""
    cfg = layer.get_config()
    return "pair" if type(layer).__name__ == "Bidirectional" and cfg.get("merge_mode") == "concat" else "group"


def _gate_columns(idx: np.ndarray, size: int, gates: int) -> np.ndarray:
    return (np.arange(gates)[:, None] * size + idx[None, :]).ravel()


def _rnn_scores(weights: list[np.ndarray], size: int, gates: int) -> np.ndarray:
    """L1 norm of what flows into each unit, over every gate: kernel and recurrent kernel columns."""
    kernel, recurrent = weights[0], weights[1]
    return np.abs(kernel).reshape(-1, gates, size).sum(axis=(0, 1)) + np.abs(recurrent).reshape(-1, gates, size).sum(axis=(0, 1))


def unit_scores(layer: Any) -> np.ndarray:
    """Per-unit strength of a recurrent layer (both directions summed), normalised so layers
    weigh alike when a group holds several."""
    cls, size = type(layer).__name__, units(layer)
    weights = layer.get_weights()
    if cls == "Bidirectional":
        gates = GATES[layer.get_config()["layer"]["class_name"]]
        half = len(weights) // 2
        norms = _rnn_scores(weights[:half], size, gates) + _rnn_scores(weights[half:], size, gates)
    else:
        norms = _rnn_scores(weights, size, GATES[cls])
    return norms / (norms.mean() + 1e-12)


def thinned_config(layer: Any, cfg: dict[str, Any], out_idx: np.ndarray) -> dict[str, Any]:
    """The config of ``layer`` with the units (or output dimension) that ``out_idx`` keeps."""
    kind = surgery_kind(layer)
    if kind == "embedding":
        return {**cfg, "output_dim": len(out_idx)}
    n = len(out_idx) // 2 if output_kind(layer) == "pair" else len(out_idx)
    if kind == "rnn":
        return {**cfg, "units": n}
    cfg = {**cfg, "layer": {**cfg["layer"], "config": {**cfg["layer"]["config"], "units": n}}}
    if cfg.get("backward_layer") is not None:
        back = cfg["backward_layer"]
        cfg["backward_layer"] = {**back, "config": {**back["config"], "units": n}}
    return cfg


def _take_rnn(weights: list[np.ndarray], in_idx: np.ndarray | None, idx: np.ndarray | None, size: int, gates: int) -> list[np.ndarray]:
    kernel, recurrent, *bias = weights
    if in_idx is not None:
        kernel = kernel[in_idx]
    if idx is not None:
        cols = _gate_columns(idx, size, gates)
        kernel, recurrent = kernel[:, cols], recurrent[idx][:, cols]
        bias = [b[..., cols] for b in bias]  # (G·units,) or GRU reset_after's (2, G·units)
    return [kernel, recurrent, *bias]


def take_weights(layer: Any, in_idx: np.ndarray | None, out_idx: np.ndarray | None) -> list[np.ndarray]:
    """``layer``'s weights restricted to the kept input channels and output channels."""
    weights = layer.get_weights()
    kind, size = surgery_kind(layer), units(layer)
    if kind == "embedding":
        return weights if out_idx is None else [weights[0][:, out_idx]]
    idx = out_idx[: len(out_idx) // 2] if out_idx is not None and output_kind(layer) == "pair" else out_idx
    if kind == "rnn":
        return _take_rnn(weights, in_idx, idx, size, GATES[type(layer).__name__])
    gates, half = GATES[layer.get_config()["layer"]["class_name"]], len(weights) // 2
    return _take_rnn(weights[:half], in_idx, idx, size, gates) + _take_rnn(weights[half:], in_idx, idx, size, gates)


def _loops(cfg: Any) -> bool:
    """True if a layer config (or one nested in it) holds a recurrent layer that is not unrolled."""
    if isinstance(cfg, dict):
        return cfg.get("unroll") is False or any(_loops(v) for v in cfg.values())
    return isinstance(cfg, list) and any(_loops(v) for v in cfg)


def unrolled(model: Any) -> Any:
    """A copy of ``model`` whose recurrent layers are unrolled over their (static) time steps,
    with the same weights: no WHILE loop is left for TFLite's full-integer calibration, which
    crashes the process on one (TensorFlow 2.21: GRU, SimpleRNN, masked LSTM)."""
    from autotune._keras import keras

    k = keras()

    def unroll(cfg: Any) -> Any:
        if isinstance(cfg, dict):
            return {key: (True if key == "unroll" else unroll(v)) for key, v in cfg.items()}
        if isinstance(cfg, list):
            return [unroll(v) for v in cfg]
        return cfg

    def clone(layer: Any) -> Any:
        return layer.__class__.from_config(unroll(layer.get_config()))

    for layer in model.layers:
        if _loops(layer.get_config()):
            shape = layer.input_shape
            steps = shape[1] if isinstance(shape, tuple) and len(shape) > 2 else None
            if steps is None or steps > MAX_UNROLL_STEPS:
                raise CandidateFailed(
                    f"full-integer int8 of recurrent layer {layer.name} needs it unrolled (TFLite's calibration cannot "
                    f"run its WHILE loop), and its {steps or 'unknown'} time steps are past the {MAX_UNROLL_STEPS} unrolled"
                )
    try:
        copy = k.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
    except (ValueError, TypeError) as e:
        raise CandidateFailed(f"unrolling the recurrent layers for int8 failed: {str(e).splitlines()[0][:200]}") from None
    return copy
