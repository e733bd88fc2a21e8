"""Keras 3 operation nodes and activations, expressed in a tf_keras Functional graph.

In a Keras 3 Functional model, ``x + y``, ``x * 0.5`` and ``keras.ops.*`` calls on symbolic tensors
are saved as *operation* nodes (module ``keras.src.ops.*``), not layers; MobileNetV3 builds its
hard-sigmoid and squeeze-excite blocks that way. tf_keras has no such nodes, but it wraps a ``tf.*``
call on its symbolic tensors into a TFOpLambda layer, which saves, clones and converts to TFLite like
any layer. So each operation becomes the TF call that Keras 3's TensorFlow backend makes for it, or,
where a standard tf_keras layer computes the same (Add/Multiply of two tensors of one rank, ReLU,
Concatenate ...), that layer: channel surgery and TF-MOT understand layers, not TFOpLambda.

Activations that tf_keras lacks or computes differently (its hard_sigmoid is 0.2x+0.5 clipped at
±2.5; Keras 3's is relu6(x+3)/6) are built from the same operations.

Importing this module imports no TensorFlow: the supported names are checked before it loads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

# Element-wise merges: a tf_keras merge layer when both operands are tensors of one rank and dtype
# (the merge layers broadcast like numpy only then), else the TF op with the constant.
_MERGE = {"Add": "math.add", "Subtract": "math.subtract", "Multiply": "math.multiply",
          "Maximum": "math.maximum", "Minimum": "math.minimum"}
_BINARY = {"Divide": "math.truediv", "TrueDivide": "math.truediv", "Power": "math.pow", "Matmul": "linalg.matmul",
           "FloorDivide": "math.floordiv", "Mod": "math.floormod", "Greater": "math.greater",
           "GreaterEqual": "math.greater_equal", "Less": "math.less", "LessEqual": "math.less_equal",
           "Equal": "math.equal", "NotEqual": "math.not_equal", "LogicalAnd": "math.logical_and",
           "LogicalOr": "math.logical_or"}
_UNARY = {"Negative": "math.negative", "Absolute": "math.abs", "Abs": "math.abs", "Square": "math.square",
          "Sqrt": "math.sqrt", "Rsqrt": "math.rsqrt", "Reciprocal": "math.reciprocal", "Exp": "math.exp",
          "Expm1": "math.expm1", "Log": "math.log", "Log1p": "math.log1p", "Sign": "math.sign",
          "Floor": "math.floor", "Ceil": "math.ceil", "Sin": "math.sin", "Cos": "math.cos", "Erf": "math.erf",
          "LogSigmoid": "math.log_sigmoid", "LogicalNot": "math.logical_not", "StopGradient": "stop_gradient"}
_REDUCE = {"Mean": "math.reduce_mean", "Sum": "math.reduce_sum", "Max": "math.reduce_max",
           "Min": "math.reduce_min", "Prod": "math.reduce_prod", "Amax": "math.reduce_max", "Amin": "math.reduce_min"}
# Unary operations a tf_keras layer computes exactly: (layer class, its options from the op's config).
_LAYERS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "Relu": ("ReLU", lambda c: {}),
    "Relu6": ("ReLU", lambda c: {"max_value": 6.0}),
    "LeakyRelu": ("LeakyReLU", lambda c: {"alpha": c.get("negative_slope", 0.2)}),
    "Elu": ("ELU", lambda c: {"alpha": c.get("alpha", 1.0)}),
    "Softmax": ("Softmax", lambda c: {"axis": c.get("axis", -1)}),
    **{op: ("Activation", lambda c, a=act: {"activation": a}) for op, act in (
        ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("Silu", "swish"), ("Softplus", "softplus"),
        ("Softsign", "softsign"), ("Selu", "selu"))},
}
_SPECIAL = {"Reshape", "Transpose", "Concatenate", "Stack", "Clip", "ExpandDims", "Squeeze", "GetItem", "Cast",
            "Where", "LogSoftmax", "Gelu", "HardSigmoid", "HardSilu", "HardTanh", "Einsum", "Round"}
OPERATIONS = frozenset().union(_MERGE, _BINARY, _UNARY, _REDUCE, _LAYERS, _SPECIAL)

# Keras 3 activation names tf_keras computes identically (under the name on the right).
SAME_ACTIVATIONS = {**{a: a for a in ("linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "softplus",
                                      "softsign", "exponential", "gelu", "mish", "swish")}, "silu": "swish"}
# Keras 3 activations tf_keras lacks or computes differently: built from the operation named.
GRAPH_ACTIVATIONS = {"relu6": "Relu6", "hard_sigmoid": "HardSigmoid", "hard_silu": "HardSilu",
                     "hard_swish": "HardSilu", "leaky_relu": "LeakyRelu", "log_softmax": "LogSoftmax",
                     "hard_tanh": "HardTanh", "log_sigmoid": "LogSigmoid"}


def is_operation(entry: dict[str, Any]) -> bool:
    """True for a Keras 3 operation node (``x + y``, ``keras.ops.*``) in a saved Functional config."""
    return str(entry.get("module", "")).startswith("keras.src.ops.")


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "shape") and not isinstance(value, (np.ndarray, np.generic))


def _aligned(args: list[Any]) -> list[Any]:
    """Constants given the dtype of the tensor operand, as Keras 3 treats Python numbers (weakly
    typed); TF would otherwise make ``1 - x`` an int32 constant and refuse a float32 ``x``."""
    kinds = [a.dtype for a in args if _is_tensor(a)]
    if not kinds or not (kinds[0].is_floating or kinds[0].is_integer):
        return args
    kind = kinds[0].as_numpy_dtype

    def align(v: Any) -> Any:
        if isinstance(v, bool) or _is_tensor(v):
            return v
        if isinstance(v, (int, float, np.ndarray, np.generic)):
            arr = np.asarray(v)
            if np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(kind, np.floating):
                return v  # an int tensor meets a float constant: let TF refuse, and say so
            return arr.astype(kind)
        return v

    return [align(a) for a in args]


def _floats(tf: Any, args: list[Any]) -> list[Any]:
    """Integer tensors cast to float32: Keras 3's mean and true division of integers give floats."""
    return [tf.cast(a, "float32") if _is_tensor(a) and not a.dtype.is_floating else a for a in args]


def _tf_function(tf: Any, dotted: str) -> Callable[..., Any]:
    return functools.reduce(getattr, dotted.split("."), tf)  # "math.add" -> tf.math.add


def _hard_sigmoid(tf: Any, x: Any) -> Any:
    return tf.math.truediv(tf.nn.relu6(tf.math.add(x, np.asarray(3.0, x.dtype.as_numpy_dtype))),
                           np.asarray(6.0, x.dtype.as_numpy_dtype))  # as Keras 3's TensorFlow backend does


def _special(tf: Any, tfk: Any, cls: str, cfg: dict[str, Any], args: list[Any], name: str) -> Any:
    x = args[0]
    if cls == "Reshape":
        return tf.reshape(x, cfg["newshape"])
    if cls == "Transpose":
        return tf.transpose(x, perm=cfg.get("axes"))
    if cls in ("Concatenate", "Stack"):
        parts = list(x)
        axis = cfg.get("axis", 0 if cls == "Stack" else -1)
        if cls == "Concatenate" and all(_is_tensor(p) for p in parts) and len({p.dtype for p in parts}) == 1:
            return tfk.layers.Concatenate(axis=axis, name=name, dtype=parts[0].dtype.name)(parts)
        return (tf.concat if cls == "Concatenate" else tf.stack)(_aligned(parts), axis=axis)
    if cls == "Clip":
        low, high = _aligned([x, cfg["x_min"], cfg["x_max"]])[1:]
        return tf.clip_by_value(x, low, high)
    if cls == "HardTanh":
        return tf.clip_by_value(x, np.asarray(-1, x.dtype.as_numpy_dtype), np.asarray(1, x.dtype.as_numpy_dtype))
    if cls == "ExpandDims":
        axes = cfg["axis"] if isinstance(cfg["axis"], (list, tuple)) else [cfg["axis"]]
        rank = len(x.shape) + len(axes)
        for axis in sorted(a % rank for a in axes):  # numpy places every axis in the output's frame
            x = tf.expand_dims(x, axis)
        return x
    if cls == "Squeeze":
        return tf.squeeze(x, axis=cfg.get("axis"))
    if cls == "GetItem":  # a tuple key is saved as a list, which TF would read as a gather
        key = args[1]
        return x[tuple(key) if isinstance(key, list) else key]
    if cls == "Cast":
        return tf.cast(x, cfg["dtype"])
    if cls == "Round":
        if cfg.get("decimals", 0):
            raise ValueError("only decimals=0 is supported")
        return tf.math.round(x)
    if cls == "Where":
        return tf.where(x, *_aligned(args[1:]))
    if cls == "LogSoftmax":
        return tf.nn.log_softmax(x, axis=cfg.get("axis", -1))
    if cls == "Gelu":
        if not cfg.get("approximate", True):  # keras.ops.gelu defaults to the tanh approximation
            return tfk.layers.Activation("gelu", name=name, dtype=x.dtype.name)(x)
        return tf.nn.gelu(x, approximate=True)
    if cls == "HardSigmoid":
        return _hard_sigmoid(tf, x)
    if cls == "HardSilu":  # x * hard_sigmoid(x): the Multiply layer tf_keras's own MobileNetV3 uses
        return tfk.layers.Multiply(name=name, dtype=x.dtype.name)([x, _hard_sigmoid(tf, x)])
    if cls == "Einsum":
        return tf.einsum(cfg["subscripts"], *_aligned(args))
    raise ValueError(f"no rebuild for {cls}")  # unreachable while _SPECIAL lists only the above


def call_operation(tf: Any, tfk: Any, cls: str, cfg: dict[str, Any], args: list[Any], kwargs: dict[str, Any],
                   name: str) -> Any:
    """The tf_keras graph computing Keras 3 operation ``cls`` (its saved config ``cfg``) on ``args``.

    ``name`` names the tf_keras layer when one is made (TFOpLambda layers name themselves).
    Raises TypeError/ValueError when the node cannot be rebuilt; the caller says which node.
    """
    if kwargs:
        raise TypeError(f"keyword arguments {sorted(kwargs)} are not supported")
    if cls in _MERGE:
        a, b = args
        same = _is_tensor(a) and _is_tensor(b) and len(a.shape) == len(b.shape) and a.dtype == b.dtype
        if same and a.dtype.is_floating:
            return getattr(tfk.layers, cls)(name=name, dtype=a.dtype.name)([a, b])
        return _tf_function(tf, _MERGE[cls])(*_aligned(args))
    if cls in _BINARY:
        args = _floats(tf, args) if cls in ("Divide", "TrueDivide") else args
        return _tf_function(tf, _BINARY[cls])(*_aligned(args))
    if cls in _UNARY:
        return _tf_function(tf, _UNARY[cls])(*args)
    if cls in _REDUCE:
        if cfg.get("initial") is not None:
            raise ValueError("initial= is not supported")
        x = _floats(tf, args)[0] if cls == "Mean" else args[0]
        return _tf_function(tf, _REDUCE[cls])(x, axis=cfg.get("axis"), keepdims=bool(cfg.get("keepdims", False)))
    if cls in _LAYERS:
        layer, options = _LAYERS[cls]
        (x,) = args
        kind = {"dtype": x.dtype.name} if x.dtype.is_floating else {}
        return getattr(tfk.layers, layer)(name=name, **options(cfg), **kind)(x)
    return _special(tf, tfk, cls, cfg, args, name)


def apply_activation(tf: Any, tfk: Any, activation: str, x: Any, name: str) -> Any:
    """Keras 3 activation ``activation`` (one of GRAPH_ACTIVATIONS) applied to ``x`` in tf_keras."""
    return call_operation(tf, tfk, GRAPH_ACTIVATIONS[activation], {}, [x], {}, name)
