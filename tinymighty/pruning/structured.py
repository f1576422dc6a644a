"""Structured (channel) pruning: rank each Conv2D's filters by a norm, keep the top ones, and build the genuinely
smaller model (the consumers' matching input channels removed)."""

import numpy as np

from .grid import NORMS


def filter_norms(kernel, norm):
    """Norm of each output filter of a Conv2D kernel (h, w, in, out)."""
    flat = np.asarray(kernel).reshape(-1, kernel.shape[-1])
    if norm == "l1":
        return np.abs(flat).sum(axis=0)
    if norm == "l2":
        return np.sqrt((flat**2).sum(axis=0))
    if norm == "linf":
        return np.abs(flat).max(axis=0)
    raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")


def top_filters(kernel, norm, keep):
    """Indices (ascending) of the `keep` filters with the largest norm; ties go to the lower index."""
    order = np.argsort(-filter_norms(kernel, norm), kind="stable")
    return np.sort(order[:keep])


def _kept_count(filters, keep, out_of):
    return max(1, min(filters, round(filters * keep / out_of)))


_CHANNELWISE = (
    "Dropout",
    "ReLU",
    "Activation",
    "AveragePooling2D",
    "MaxPooling2D",
    "BatchNormalization",
    "Flatten",
    "Softmax",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "DepthwiseConv2D",
)


def _chain(model, weights=None):
    """The model as a chain of (name, kind, weights, input shape); channel surgery works on this."""
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        w = layer.get_weights() if weights is None else weights(layer)
        out.append((layer.name, kind, w, tuple(layer.input.shape[1:])))
    return out


def plan_channels(model, norm, keep, out_of):
    """{conv layer name: kept filter indices} for every Conv2D, ranking each on its kernel after the input
    channels removed upstream are dropped (so the ranking is of the filters as they will run)."""
    kept = {}
    channels = None  # kept indices of the current tensor's last axis, None = all
    for name, kind, w, _ in _chain(model):
        if kind == "Conv2D":
            k = w[0] if channels is None else w[0][:, :, channels, :]
            channels = top_filters(k, norm, _kept_count(k.shape[-1], keep, out_of))
            kept[name] = channels
        elif kind == "Dense":
            channels = None
        elif kind not in _CHANNELWISE and channels is not None:
            raise NotImplementedError(f"channel pruning does not know how {kind} ({name}) treats channels")
    return kept


def _sliced_weights(chain, kept):
    """New weights for each layer after removing channels: Conv2D filters (and the next layers' input
    channels), depthwise channels, BatchNorm channels, and the Dense rows fed by a removed channel."""
    new = {}
    channels = None
    positions = None  # set by Flatten: spatial positions in front of the channel axis of the Dense input
    for name, kind, w, in_shape in chain:
        if kind == "Conv2D":
            k = w[0] if channels is None else w[0][:, :, channels, :]
            channels = kept.get(name)
            w = [k] + w[1:] if channels is None else [k[..., channels]] + [b[channels] for b in w[1:]]
        elif channels is None:
            pass
        elif kind == "DepthwiseConv2D":
            if w[0].shape[-1] != 1:
                raise NotImplementedError("channel pruning supports depth_multiplier 1 only")
            w = [w[0][:, :, channels, :]] + [b[channels] for b in w[1:]]
        elif kind == "BatchNormalization":
            w = [x[channels] for x in w]
        elif kind == "Flatten":
            positions = int(np.prod(in_shape[:-1])) if len(in_shape) > 1 else 1
        elif kind == "Dense":
            k = w[0]
            if positions is not None:  # Flatten of (..., C) puts channel c of position p at row p * C + c
                k = k.reshape(positions, -1, k.shape[-1])[:, channels, :].reshape(-1, k.shape[-1])
            else:
                k = k[channels]
            w = [k] + w[1:]
            channels, positions = None, None
        new[name] = w
    return new


def remove_channels(model, kept):
    """A genuinely smaller copy of `model` keeping only the `kept` filters of each Conv2D (a dict name ->
    indices): fewer conv filters, and the matching input channels of the consumers (depthwise channels,
    next conv's input channels, Dense rows after Flatten) removed."""
    from ..tfutil import tf_keras

    cfg = model.get_config()
    for lc in cfg["layers"]:
        if lc["config"]["name"] in kept:
            lc["config"]["filters"] = int(len(kept[lc["config"]["name"]]))
    small = tf_keras.Model.from_config(cfg)
    weights = _sliced_weights(_chain(model), kept)
    for layer in small.layers:
        if weights.get(layer.name):
            layer.set_weights(weights[layer.name])
    return small


def mask_channels(model, kept):
    """The original-size model with each removed channel's whole path zeroed (filter, bias, and every
    weight reading the channel downstream): it must compute exactly what `remove_channels` computes."""
    from ..tfutil import tf_keras

    # Slice tensors of flat indices the same way as the weights: they say which original entries survive.
    index = _sliced_weights(
        _chain(model, lambda l: [np.arange(w.size).reshape(w.shape) for w in l.get_weights()]), kept
    )
    masked = tf_keras.models.clone_model(model)
    for layer, orig in zip(masked.layers, model.layers, strict=False):
        ws = orig.get_weights()
        if not ws:
            continue
        out = []
        for w, idx in zip(ws, index[orig.name], strict=False):
            keep = np.zeros(w.size, dtype=bool)
            keep[idx.ravel()] = True
            out.append(np.where(keep.reshape(w.shape), w, 0).astype(w.dtype))
        layer.set_weights(out)
    return masked


def prune_structured(model, norm, keep, out_of):
    """(smaller model, kept indices per conv, filter norms per conv)."""
    kept = plan_channels(model, norm, keep, out_of)
    norms = {}
    for layer in model.layers:
        if layer.name in kept:
            norms[layer.name] = filter_norms(layer.get_weights()[0], norm).tolist()
    return remove_channels(model, kept), kept, norms
