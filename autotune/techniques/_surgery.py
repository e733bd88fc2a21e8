"""The channel surgery under channel pruning and distillation students: physically thinner
models.

Both techniques build the same thing, a copy of the model with fewer filters/units per layer, whose
weights are the parent's strongest channels (lowest L1 norm removed). Channel pruning then
fine-tunes on the labels; distillation fine-tunes against the parent's softened outputs.

The surgery works on Sequential and Functional models. It follows each layer's channels
through the graph: a Conv2D/Dense/SeparableConv2D starts a channel *group*; batch
normalisation, depthwise convolutions, activations, pooling, dropout and padding carry it;
an Add (or another element-wise merge) ties the groups of its inputs into one, since
channels added together must be pruned together; a Flatten maps it onto the following
Dense's rows. Groups that reach the model's output, feed a layer this module does not know,
or meet a Concatenate keep every channel: an unknown layer makes the model less prunable,
never wrong. Conv1D is handled as Conv2D is; recurrent layers (LSTM, GRU, SimpleRNN, also
inside Bidirectional) and Embedding are narrowed by ``autotune.techniques.recurrent``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autotune.errors import CandidateFailed, first_line
from autotune.techniques import recurrent

# Layers that pass channels through unchanged and have no per-channel weights.
_CARRY = {
    "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "SpatialDropout2D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "MaxPooling2D", "AveragePooling2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Identity",
    "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
    "SpatialDropout1D", "ZeroPadding1D", "Cropping1D", "UpSampling1D",
}  # fmt: skip
_MERGE = {"Add", "Subtract", "Average", "Maximum", "Minimum", "Multiply"}


class _Groups:
    """Union-find over channel groups; a group is named by the layer that starts it."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}
        self.locked: set[str] = set()

    def new(self, name: str, size: int) -> str:
        self.parent[name] = name
        self.size[name] = size
        return name

    def find(self, g: str) -> str:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: str, b: str) -> str:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            if rb in self.locked:
                self.locked.add(ra)
        return ra

    def lock(self, g: str) -> None:
        self.locked.add(self.find(g))

    def is_locked(self, g: str) -> bool:
        return self.find(g) in self.locked


@dataclass
class _Channels:
    """What flows out of a layer: a prunable group, a flattened group, or fixed channels."""

    kind: str  # "group" | "flat" | "fixed" | "pair" (a Bidirectional's [forward, backward] units)
    group: str | None = None
    spatial: int = 1  # for "flat": positions per channel before flattening; "pair": 2


@dataclass
class ChannelPlan:
    """For each layer: the kept indices of its input channels and of its output channels."""

    groups: _Groups
    flows: dict[str, _Channels]
    inputs: dict[str, list[str]]
    producers: dict[str, list[str]] = field(default_factory=dict)  # group root -> layers

    def prunable(self) -> list[str]:
        roots = {self.groups.find(g) for g in self.groups.parent}
        return sorted(r for r in roots if r not in self.groups.locked and r in self.producers)


def _inbound(model: Any) -> tuple[dict[str, list[str]], list[str]]:
    """Each layer's input layer names, and the output layer names; refuses shared layers."""
    k_seq = type(model).__name__ == "Sequential"
    if k_seq:
        names = [layer.name for layer in model.layers]
        inputs = {n: ([names[i - 1]] if i else []) for i, n in enumerate(names)}
        return inputs, [names[-1]]
    config = model.get_config()
    inputs = {}
    for entry in config["layers"]:
        nodes = entry.get("inbound_nodes", [])
        if len(nodes) > 1:
            raise CandidateFailed(f"layer {entry['name']} is shared (called {len(nodes)} times); channel surgery needs each layer once")
        inputs[entry["name"]] = _node_inputs(nodes[0]) if nodes else []
    outputs = [ref[0] for ref in config["output_layers"]]
    return inputs, outputs


def _node_inputs(node: Any) -> list[str]:
    """Layer names a serialised node reads, including tensors passed as keyword arguments
    (``x + y`` and ``tf.*`` calls become TFOpLambda layers that do this)."""
    refs = [node] if node and isinstance(node[0], str) else list(node)
    names: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, (list, tuple)):
            if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int) and isinstance(value[2], int):
                names.append(value[0])
                if len(value) > 3:
                    visit(value[3])
            else:
                for v in value:
                    visit(v)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)

    for ref in refs:
        visit(ref)
    return list(dict.fromkeys(names))


def _mergeable(groups: _Groups, ins: list[_Channels]) -> bool:
    """Inputs of an element-wise merge can share one group if their widths agree, apart from
    one-channel inputs that broadcast."""
    if not ins:
        return False
    widths = {groups.size[groups.find(f.group)] for f in ins if f.group is not None}
    return len(widths - {1}) <= 1


def plan(model: Any) -> ChannelPlan:
    """Trace channels through the model (see the module docstring)."""
    if type(model).__name__ != "Sequential" and not getattr(model, "_is_graph_network", False):
        raise CandidateFailed("channel pruning needs a Sequential or Functional model, not a subclassed one")
    inputs, outputs = _inbound(model)
    groups = _Groups()
    flows: dict[str, _Channels] = {}
    producers: dict[str, list[str]] = {}

    def lock_flow(flow: _Channels) -> None:
        if flow.group is not None:
            groups.lock(flow.group)

    for layer in model.layers:
        cls = type(layer).__name__
        ins = [flows[n] for n in inputs.get(layer.name, []) if n in flows]
        if not ins and cls != "InputLayer":  # the first layer of a Sequential reads the model input
            ins = [_Channels("fixed")]
        cfg = layer.get_config()
        single = ins[0] if len(ins) == 1 else None
        channels_last = cfg.get("data_format", "channels_last") == "channels_last"
        if cls == "InputLayer":
            flows[layer.name] = _Channels("fixed")
        elif recurrent.surgery_kind(layer) is not None:  # recurrent layers and Embedding
            if single is None or not recurrent.narrowable(layer, single.kind):
                for f in ins:
                    lock_flow(f)
                flows[layer.name] = _Channels("fixed")
            else:
                g = groups.new(layer.name, recurrent.units(layer))
                producers[g] = [layer.name]
                kind = recurrent.output_kind(layer)
                flows[layer.name] = _Channels(kind, g, 2 if kind == "pair" else 1)
        elif single and single.kind == "pair" and cls in _CARRY:
            flows[layer.name] = single  # pooling over time, dropout: the last axis keeps its layout
        elif cls in ("Conv2D", "Conv1D", "SeparableConv2D", "Dense") and single and channels_last and cfg.get("groups", 1) == 1 and cfg.get("depth_multiplier", 1) == 1:
            if single.kind == "flat" and cls != "Dense":
                lock_flow(single)
            size = cfg["units"] if cls == "Dense" else cfg["filters"]
            g = groups.new(layer.name, size)
            producers[g] = [layer.name]
            flows[layer.name] = _Channels("group", g)
        elif single and single.kind == "group" and (
            cls in _CARRY
            or (cls == "DepthwiseConv2D" and cfg.get("depth_multiplier", 1) == 1 and channels_last)
            or (cls == "BatchNormalization" and cfg.get("axis") in (-1, [-1], len(layer.input_shape) - 1, [len(layer.input_shape) - 1]))
            or (cls == "LayerNormalization" and cfg.get("axis") in (-1, [-1], len(layer.input_shape) - 1, [len(layer.input_shape) - 1]))
        ):
            flows[layer.name] = _Channels("group", single.group)
        elif cls == "Flatten" and single and single.kind == "group" and channels_last:
            spatial = int(np.prod(layer.input_shape[1:-1]))
            flows[layer.name] = _Channels("flat", single.group, spatial)
        elif cls in _MERGE and all(f.kind == "group" for f in ins) and _mergeable(groups, ins):
            # A one-channel input (attention, a gate) is broadcast: it keeps its channel and
            # the merge carries the others' group.
            wide = [f for f in ins if groups.size[groups.find(f.group)] > 1] or ins[:1]
            for f in ins:
                if f not in wide:
                    lock_flow(f)
            g = wide[0].group
            for f in wide[1:]:
                g = groups.union(g, f.group)
            flows[layer.name] = _Channels("group", g)
        else:  # unknown, Concatenate, Reshape, nested models, ...: keep what flows in
            for f in ins:
                lock_flow(f)
            flows[layer.name] = _Channels("fixed")
    for name in outputs:
        lock_flow(flows[name])
    by_root: dict[str, list[str]] = {}
    for g, members in producers.items():
        by_root.setdefault(groups.find(g), []).extend(members)
    return ChannelPlan(groups=groups, flows=flows, inputs=inputs, producers=by_root)


def _kernel_l1(layer: Any) -> np.ndarray:
    """L1 norm of each output channel's weights, normalised so layers weigh alike."""
    if recurrent.surgery_kind(layer) in ("rnn", "bidirectional"):
        return recurrent.unit_scores(layer)
    kernel = layer.get_weights()[1 if type(layer).__name__ == "SeparableConv2D" else 0]
    norms = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    return norms / (norms.mean() + 1e-12)


def kept_channels(model: Any, channel_plan: ChannelPlan, keep: float) -> dict[str, np.ndarray]:
    """For each prunable group root, the sorted indices of the channels to keep."""
    kept = {}
    for root in channel_plan.prunable():
        size = channel_plan.groups.size[root]
        n = max(1, int(round(size * keep)))
        if n >= size:
            continue
        score = sum(_kernel_l1(model.get_layer(name)) for name in channel_plan.producers[root])
        kept[root] = np.sort(np.argsort(-score, kind="stable")[:n])
    return kept


def thinned(model: Any, keep: float) -> Any:
    """A physically thinner copy of ``model`` keeping ``keep`` of each prunable group's
    channels (the strongest by L1 norm), with the parent's weights for what is kept."""
    from autotune._keras import keras

    k = keras()
    channel_plan = plan(model)
    kept = kept_channels(model, channel_plan, keep)
    if not kept:
        raise CandidateFailed("no layer of this model can lose channels (every group reaches the output or an unsupported layer)")
    groups = channel_plan.groups

    def out_index(name: str) -> np.ndarray | None:
        flow = channel_plan.flows[name]
        if flow.kind == "fixed" or flow.group is None:
            return None
        idx = kept.get(groups.find(flow.group))
        if idx is None or flow.kind == "group":
            return idx
        channels = groups.size[groups.find(flow.group)]
        return (np.arange(flow.spatial)[:, None] * channels + idx[None, :]).ravel()

    def in_index(name: str) -> np.ndarray | None:
        ins = channel_plan.inputs.get(name, [])
        return out_index(ins[0]) if len(ins) == 1 else None

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        idx = out_index(layer.name)
        if layer.name in groups.parent and idx is not None and recurrent.surgery_kind(layer) is not None:
            cfg = recurrent.thinned_config(layer, cfg, idx)
        elif layer.name in groups.parent and idx is not None:
            cfg["units" if "units" in cfg else "filters"] = len(idx)
        return layer.__class__.from_config(cfg)

    try:
        return _rebuild(k, model, clone, in_index, out_index)
    except (ValueError, IndexError, TypeError) as e:
        raise CandidateFailed(f"channel surgery failed: {first_line(e)}") from None


def _rebuild(k: Any, model: Any, clone: Any, in_index: Any, out_index: Any) -> Any:
    new = k.models.clone_model(model, clone_function=clone)
    for old_layer in model.layers:
        weights = old_layer.get_weights()
        if not weights:
            continue
        cls = type(old_layer).__name__
        i, o = in_index(old_layer.name), out_index(old_layer.name)
        if recurrent.surgery_kind(old_layer) not in (None, "locked"):
            weights = recurrent.take_weights(old_layer, i, o)
        elif cls == "Conv2D":
            weights = _take(weights, [(2, i), (3, o)], [(0, o)])
        elif cls == "Conv1D":  # kernel (width, in, out)
            weights = _take(weights, [(1, i), (2, o)], [(0, o)])
        elif cls == "SeparableConv2D":
            depthwise, pointwise, *bias = weights
            weights = [_take1(depthwise, 2, i), _take1(_take1(pointwise, 2, i), 3, o), *[_take1(b, 0, o) for b in bias]]
        elif cls == "Dense":
            weights = _take(weights, [(0, i), (1, o)], [(0, o)])
        elif cls == "DepthwiseConv2D":
            weights = _take(weights, [(2, i)], [(0, i)])
        elif cls in ("BatchNormalization", "LayerNormalization"):
            weights = [_take1(w, 0, i) for w in weights]
        new.get_layer(old_layer.name).set_weights(weights)
    return new


def copy_model(model: Any) -> Any:
    """A copy of ``model`` with its weights (a "student" at full width)."""
    from autotune._keras import keras

    clone = keras().models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _take1(w: np.ndarray, axis: int, idx: np.ndarray | None) -> np.ndarray:
    return w if idx is None else np.take(w, idx, axis=axis)


def _take(weights: list[np.ndarray], kernel: list[tuple[int, Any]], bias: list[tuple[int, Any]]) -> list[np.ndarray]:
    out = list(weights)
    for axis, idx in kernel:
        out[0] = _take1(out[0], axis, idx)
    for k in range(1, len(out)):
        for axis, idx in bias:
            out[k] = _take1(out[k], axis, idx)
    return out


def surgery_problem(model: Any) -> str | None:
    """Why no thinner copy of ``model`` can be built (its students and channel pruning both
    rest on that surgery), or None: the surgery is tried at half width, without training."""
    try:
        thinned(model, 0.5)
    except CandidateFailed as e:
        return str(e)
    return None
