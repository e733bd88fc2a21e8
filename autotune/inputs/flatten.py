"""Nested models made flat: one Functional model of the inner layers, verified.

The transfer-learning pattern puts a whole model (a ``keras.applications`` base, a
Sequential block) inside another as if it were one layer. Channel surgery and TF-MOT see
such a layer as opaque, so nothing in it can be pruned, thinned or quantised. Here the
outer graph is walked node by node, the same way tf_keras runs a Functional model: every
ordinary layer is re-created from its config and called on the mapped tensors, every
nested Functional/Sequential model is entered (its InputLayers vanish: their tensors are
the ones that fed the nested model), weights are copied, and the flat copy must predict
what the original predicts before it is returned. The walk reads tf_keras's graph internals
(``_nodes_by_depth``, ``Node.map_arguments``, ``_call_spec``), the ones ``Functional.call``
itself runs on; the prediction check catches any drift in them.

Layer names. Layers of the outer model keep their names. A layer of a nested model keeps
its name unless an earlier layer already holds it (the outer layers hold theirs first, then
nested layers claim names in graph order); on a clash it becomes
``<nested model name>_<layer name>``, with ``_2``, ``_3``... appended if that is taken too.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from autotune.errors import ConfigError, first_line

# Flat and nested compute the same ops in the same order; anything beyond rounding noise
# means the graph was wired differently. Relative to the outputs' own magnitude with no floor
# of 1: an untrained base (weights=None) outputs values near 1e-11, under which any wiring
# would pass an absolute test.
_RTOL = 1e-5
_SAMPLES = 4
_FREE_DIM = 32  # stands in for unknown (None) input dimensions when sampling


def _is_model(layer: Any, k: Any) -> bool:
    return isinstance(layer, k.Model)


def _graph_layers(model: Any) -> list[Any]:
    """The layers of the model's own graph, its InputLayers included, in graph order."""
    seen: dict[int, Any] = {}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            seen.setdefault(id(node.layer), node.layer)
    return list(seen.values())


class _Flattener:
    def __init__(self, k: Any, tf: Any, top: Any) -> None:
        self.k, self.tf = k, tf
        # Outer names are claimed first so that they never change.
        self.taken = {layer.name for layer in _graph_layers(top) if not _is_model(layer, k)}
        self.clones: dict[int, tuple[Any, Any]] = {}  # id(original) -> (original, copy)
        self.entered: dict[int, str] = {}  # id(nested model) -> its name

    def name_for(self, name: str, owner: str | None) -> str:
        if owner is None or name not in self.taken:
            self.taken.add(name)
            return name
        candidate, n = f"{owner}_{name}", 2
        while candidate in self.taken:
            candidate, n = f"{owner}_{name}_{n}", n + 1
        self.taken.add(candidate)
        return candidate

    def clone(self, layer: Any, owner: str | None) -> Any:
        """One fresh copy per original layer, so a layer shared by several calls stays shared."""
        if id(layer) in self.clones:
            return self.clones[id(layer)][1]
        try:
            config = layer.get_config()
            config["name"] = self.name_for(layer.name, owner)
            copy = layer.__class__.from_config(config)
        except (NotImplementedError, TypeError, ValueError, KeyError) as e:
            raise ConfigError(
                f"layer {layer.name!r} ({type(layer).__name__}) cannot be re-created from its config, so the "
                f"nested model cannot be flattened: {first_line(e)}"
            ) from None
        self.clones[id(layer)] = (layer, copy)
        return copy

    def run(self, model: Any, inputs: list[Any], owner: str | None, training: bool | None) -> list[Any]:
        """Call copies of ``model``'s layers on ``inputs`` (one per ``model.inputs``); its outputs."""
        tensors = {id(t): new for t, new in zip(model.inputs, inputs)}
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if node.is_input or any(id(t) not in tensors for t in node.keras_inputs):
                    continue  # inputs exist already; a node off the path to the outputs is skipped, as Keras does
                # map_arguments pops one tensor per use, so a tensor read twice is listed twice.
                uses = Counter(node.flat_input_ids)
                args, kwargs = node.map_arguments(
                    {kid: [tensors[id(t)]] * uses[kid] for kid, t in zip(node.flat_input_ids, node.keras_inputs)}
                )
                layer = node.layer
                if _is_model(layer, self.k):
                    outputs = self.enter(layer, args, kwargs, training)
                else:
                    outputs = self.call(layer, args, kwargs, owner, training)
                for old, new in zip(self.tf.nest.flatten(node.outputs), self.tf.nest.flatten(outputs)):
                    tensors[id(old)] = new
        missing = [t for t in model.outputs if id(t) not in tensors]
        if missing:
            raise ConfigError(f"model {model.name!r} cannot be flattened: output {missing[0].name} is not computed from its inputs")
        return [tensors[id(t)] for t in model.outputs]

    def call(self, layer: Any, args: Any, kwargs: dict[str, Any], owner: str | None, training: bool | None) -> Any:
        copy = self.clone(layer, owner)
        spec = layer._call_spec
        if training is not None and layer._expects_training_arg:
            # The nested model was called with training=... (``base(x, training=False)`` keeps a
            # frozen base's BatchNormalization in inference mode): its layers inherit that,
            # unless they were called with their own.
            passed = spec.arg_was_passed("training", args, kwargs, inputs_in_args=True)
            if not passed or spec.get_arg_value("training", args, kwargs, inputs_in_args=True) is None:
                args, kwargs = spec.set_arg_value("training", training, args, dict(kwargs), inputs_in_args=True)
        try:
            return copy(*args, **kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be called in the flattened model: {first_line(e)}") from None

    def enter(self, model: Any, args: Any, kwargs: dict[str, Any], training: bool | None) -> list[Any]:
        if not getattr(model, "_is_graph_network", False):
            raise ConfigError(
                f"nested model {model.name!r} is a subclassed {type(model).__name__}, whose graph cannot be read; "
                "only nested Functional and Sequential models can be flattened"
            )
        if id(model) in self.entered:
            raise ConfigError(
                f"nested model {model.name!r} is called more than once (shared); flattening would unshare its weights"
            )
        self.entered[id(model)] = model.name
        inputs, rest, kwargs = model._call_spec.split_out_first_arg(args, kwargs)
        call = dict(zip(model._call_spec.arg_names[1:], rest)) | kwargs
        if call.get("mask") is not None:
            raise ConfigError(f"nested model {model.name!r} is called with an explicit mask, which flattening does not carry over")
        inner = call.get("training")
        if inner is not None and not isinstance(inner, bool):
            raise ConfigError(f"nested model {model.name!r} is called with training={inner!r}; only True, False or None can be flattened")
        flat = model._flatten_to_reference_inputs(inputs)
        if len(flat) != len(model.inputs):
            raise ConfigError(f"nested model {model.name!r} takes {len(model.inputs)} inputs but is called with {len(flat)}")
        outputs = self.run(model, flat, model.name, training if inner is None else inner)
        return self.tf.nest.pack_sequence_as(model._nested_outputs, outputs)


def flatten_nested(model: Any) -> Any:
    """``model`` with every nested Functional/Sequential model (at any depth) replaced by its
    layers: one flat Functional model with the same inputs, outputs, weights and predictions.

    A model that holds no nested model is returned as it is (the same object), and so is a
    subclassed model, which has no graph to walk (the techniques that need one say so
    themselves). Raises ConfigError, naming the layer, if a nested model is subclassed,
    called more than once or with a mask, if a layer cannot be re-created from its config,
    or if the flat copy's predictions differ from the original's."""
    from autotune._keras import keras, native_stderr_silenced, tf

    k, t = keras(), tf()
    if not getattr(model, "_is_graph_network", False):
        return model
    if not any(_is_model(layer, k) for layer in model.layers):
        return model
    flattener = _Flattener(k, t, model)
    with native_stderr_silenced():
        inputs = [flattener.clone(x._keras_history.layer, None).output for x in model.inputs]
        outputs = flattener.run(model, inputs, None, None)
        flat = k.Model(
            t.nest.pack_sequence_as(model._nested_inputs, inputs),
            t.nest.pack_sequence_as(model._nested_outputs, outputs),
            name=model.name,
        )
        for original, copy in flattener.clones.values():
            try:
                copy.set_weights(original.get_weights())
            except ValueError as e:
                raise ConfigError(f"layer {original.name!r}: its weights do not fit the flattened copy: {first_line(e)}") from None
        _verify(model, flat, t, sorted(flattener.entered.values()))
    return flat


def _verify(model: Any, flat: Any, tf: Any, nested: list[str]) -> None:
    """The flat model must predict what the nested one does on seeded random inputs."""
    rng = np.random.default_rng(0)

    def sample(x: Any) -> np.ndarray:
        shape = (_SAMPLES, *(_FREE_DIM if d is None else d for d in x.shape[1:]))
        kind = np.dtype(x.dtype.as_numpy_dtype)
        if np.issubdtype(kind, np.integer) or kind == np.bool_:
            return rng.integers(0, 2, shape).astype(kind)
        return rng.standard_normal(shape).astype(kind)

    x = tf.nest.map_structure(sample, model._nested_inputs)
    try:
        expected = [np.asarray(v) for v in tf.nest.flatten(model(x, training=False))]
        got = [np.asarray(v) for v in tf.nest.flatten(flat(x, training=False))]
    except Exception as e:  # noqa: BLE001 - the user's layers may raise anything; either way the copy is unproven
        raise ConfigError(f"model {model.name!r}: cannot compare the flattened model's predictions: {first_line(e)}") from None
    for a, b in zip(expected, got):
        if a.shape != b.shape:
            raise ConfigError(f"model {model.name!r}: the flattened model's output has shape {b.shape}, the original's {a.shape}")
        if not a.size:
            continue
        diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        if not diff <= _RTOL * float(np.max(np.abs(a))):  # "not <=" also refuses NaN
            raise ConfigError(f"flattening nested model {', '.join(map(repr, nested))} changes the predictions "
                              f"(max abs diff {diff:.3g}); a layer inside does not survive re-creation from its config")
