"""Pruning study (issue 5): unstructured, structured (channels removed), 2:4 and prune+QAT.

Every variant starts from the trained float model `results/models/{arch}/float.h5`, is pruned, optionally
fine-tuned, converted to a full-int8 TFLite model and written with `steps.write_variant`; the shared
`evaluate` rule and the firmware rules then measure it like any other variant.

Variant names (all from `config["pruning"]`):

* `unst_s90_os` / `unst_s90_ft`: unstructured magnitude pruning with tfmot at 90% sparsity, one-shot (the
  trained model's smallest weights are zeroed, no training) or gradual with fine-tuning (polynomial
  schedule, `UpdatePruningStep`, `strip_pruning`). The achieved sparsity of every pruned layer is checked.
* `chan_l1_k6_os` / `chan_l1_k6_ft`: structured channel pruning: the Conv2D filters are ranked by their
  L1, L2 or L-infinity norm, the top k of `out_of` (8 for TinyConv) are kept and a genuinely smaller model
  is built (fewer filters, the matching input channels/rows of the next layers removed).
* `sp24_os` / `sp24_ft`: 2:4 sparsity (two zeros in every group of four consecutive weights of the TFLite
  weight layout). tfmot's `sparsity_m_by_n` groups along the input channels; a conv with one input channel
  (TinyConv's) would stay dense, so there the groups run along the kernel width (the next axis of the
  `[out, h, w, in]` layout) with our own mask.
* `pqat_s75`: gradual pruning then pruning-preserving QAT
  (`tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme`); the sparsity is checked in the
  exported int8 TFLite weights.

TensorFlow is imported inside the functions: the Snakefile imports this module to build the variant grid.
"""
import csv
import math
import tempfile
from pathlib import Path

import numpy as np

from .variants import Variant

FAMILY_UNSTRUCTURED = "prune_unstructured"
FAMILY_STRUCTURED = "prune_structured"
FAMILY_2BY4 = "prune_2by4"
FAMILY_PQAT = "prune_qat"
FAMILIES = (FAMILY_UNSTRUCTURED, FAMILY_STRUCTURED, FAMILY_2BY4, FAMILY_PQAT)
MODES = ("os", "ft")
MODE_LABELS = {"os": "no fine-tuning (one-shot)", "ft": "with fine-tuning"}
NORMS = ("l1", "l2", "linf")
NORM_LABELS = {"l1": "L1", "l2": "L2", "linf": "L\u221e"}
PRUNABLE = ("Conv2D", "DepthwiseConv2D", "Dense")
M_BY_N = (2, 4)


# ----------------------------------------------------------------------------------------------------------
# The variant grid
# ----------------------------------------------------------------------------------------------------------

def sparsity_tag(s: float) -> str:
    """0.9 -> 's90', 0.05 -> 's05', 0.875 -> 's87p5' (names stay unique and sortable)."""
    pct = round(100 * float(s), 4)
    return f"s{int(pct):02d}" if pct == int(pct) else "s" + f"{pct:g}".replace(".", "p")


def specs(config):
    """{variant name: spec} for every pruning variant the config asks for; a spec is everything one job
    needs (and nothing else), so it doubles as the rule's params."""
    cfg = config.get("pruning") or {}
    if not cfg.get("enabled", False):
        return {}
    modes = list(cfg.get("modes", MODES))
    ft = dict(cfg["fine_tune"])
    out = {}

    def add(name, family, mode, **kw):
        spec = dict(family=family, mode=mode, **kw)
        if mode == "ft":
            spec["fine_tune"] = ft
        out[name] = spec

    unst = cfg.get("unstructured") or {}
    for s in unst.get("sparsities", []):
        for mode in modes:
            add(f"unst_{sparsity_tag(s)}_{mode}", FAMILY_UNSTRUCTURED, mode, sparsity=float(s),
                tolerance=float(unst.get("tolerance", 0.01)))
    st = cfg.get("structured") or {}
    if st:
        grid = [(st["norm"], k) for k in st.get("keep", [])]
        grid += [(n, st["compare_keep"]) for n in st.get("compare_norms", []) if "compare_keep" in st]
        seen = set()
        for norm, k in grid:
            if not 0 < k < st.get("out_of", 8):
                raise ValueError(f"pruning.structured: keep {k} must be between 1 and out_of - 1 "
                                 f"({st.get('out_of', 8) - 1}); keeping every filter prunes nothing")
            if (norm, k) in seen:
                continue
            seen.add((norm, k))
            for mode in modes:
                add(f"chan_{norm}_k{k}_{mode}", FAMILY_STRUCTURED, mode, norm=norm, keep=int(k),
                    out_of=int(st.get("out_of", 8)))
    if (cfg.get("two_by_four") or {}).get("enabled", False):
        for mode in modes:
            add(f"sp24_{mode}", FAMILY_2BY4, mode, m_by_n=list(M_BY_N))
    pq = cfg.get("pqat") or {}
    for s in pq.get("sparsities", []):
        add(f"pqat_{sparsity_tag(s)}", FAMILY_PQAT, "ft", sparsity=float(s),
            tolerance=float(unst.get("tolerance", 0.01)), qat_epochs=int(pq["epochs"]))
    return out


def variants(config, arch):
    return [Variant(arch, name, spec["family"]) for name, spec in specs(config).items()]


# ----------------------------------------------------------------------------------------------------------
# Measuring sparsity
# ----------------------------------------------------------------------------------------------------------

def kernel_sparsity(model):
    """{layer: sparsity of its kernel} for every Conv2D/DepthwiseConv2D/Dense layer of a plain Keras model."""
    out = {}
    for layer in model.layers:
        if type(layer).__name__ in PRUNABLE:
            k = layer.get_weights()[0]
            out[layer.name] = 1.0 - np.count_nonzero(k) / k.size
    return out


def tflite_weights(content: bytes):
    """[(op index, op name, int8/float weight array in TFLite layout)] for conv and fully connected ops."""
    from .tfutil import ref_interpreter

    interp = ref_interpreter(content)
    out = []
    for op in interp._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            out.append((op["index"], op["op_name"], np.array(interp.get_tensor(int(op["inputs"][1])))))
    return out


def tflite_sparsity(content: bytes):
    """Sparsity of each weight tensor as stored in the TFLite file (what the device sees)."""
    return [{"op": f"{i}:{name}", "shape": list(w.shape), "sparsity": 1.0 - np.count_nonzero(w) / w.size}
            for i, name, w in tflite_weights(content)]


def check_sparsity(achieved: dict, target: float, tolerance: float, what="achieved sparsity"):
    """Fail unless every pruned layer is within `tolerance` (absolute, 0.01 = one point) of the target."""
    bad = {k: v for k, v in achieved.items() if abs(v - target) > tolerance}
    if bad:
        raise RuntimeError(f"{what} misses the target {target:.2%} by more than {100 * tolerance:.1f} points: "
                           + ", ".join(f"{k} {v:.2%}" for k, v in bad.items())
                           + ". With few fine-tuning steps, check the pruning frequency and end step.")


def m_by_n_groups(kernel, n=M_BY_N[1]):
    """The weights of each output channel in TFLite order ([out, h, w, in] or [out, in]), cut into
    consecutive groups of n (zero-padded at the end): shape (out, groups, n)."""
    k = np.asarray(kernel)
    if k.ndim == 4:
        rows = np.transpose(k, (3, 0, 1, 2)).reshape(k.shape[3], -1)
    elif k.ndim == 2:
        rows = k.T
    else:
        raise ValueError(f"kernel of rank {k.ndim} is not supported")
    return _row_groups(rows, n)


def _row_groups(rows, n):
    rows = np.asarray(rows).reshape(rows.shape[0], -1)
    rows = np.pad(rows, ((0, 0), (0, (-rows.shape[1]) % n)))
    return rows.reshape(rows.shape[0], -1, n)


def tflite_m_by_n(content: bytes, m_by_n=M_BY_N):
    """For each TFLite conv/FC weight tensor (already in [out, ...] layout): groups of n consecutive weights
    per output channel, and how many have at least m zeros. Trailing padding groups count as zeros."""
    m, n = m_by_n
    out = []
    for i, name, w in tflite_weights(content):
        zeros = (_row_groups(w, n) == 0).sum(axis=-1)
        out.append({"op": f"{i}:{name}", "groups": int(zeros.size), "groups_ok": int((zeros >= m).sum())})
    return out


def m_by_n_mask(kernel, m_by_n=M_BY_N):
    """Keep the n-m largest magnitudes of every group of n consecutive weights (TFLite layout); ties go to
    the earlier weight. Returned in the kernel's own (Keras) layout."""
    m, n = m_by_n
    k = np.asarray(kernel)
    groups = np.abs(m_by_n_groups(k, n))
    order = np.argsort(-groups, axis=-1, kind="stable")
    keep = np.zeros_like(groups, dtype=bool)
    np.put_along_axis(keep, order[..., :n - m], True, axis=-1)
    rows = keep.reshape(keep.shape[0], -1)
    if k.ndim == 4:
        h, w, cin, cout = k.shape
        rows = rows[:, :h * w * cin].reshape(cout, h, w, cin)
        return np.transpose(rows, (1, 2, 3, 0)).astype(k.dtype)
    return rows[:, :k.shape[0]].T.astype(k.dtype)


def m_by_n_pattern(kernel, m_by_n=M_BY_N):
    """Share of groups of n consecutive weights (TFLite layout) with at least m zeros, and the layout used."""
    m, n = m_by_n
    k = np.asarray(kernel)
    groups = m_by_n_groups(k, n)
    full = groups[:, :(k.size // k.shape[-1]) // n]  # partial trailing groups are padding, not weights
    zeros = (full == 0).sum(axis=-1)
    if k.ndim == 4:
        axis = "input channels" if k.shape[2] % n == 0 else ("kernel width" if k.shape[1] % n == 0
                                                               else "flattened h*w*in")
    else:
        axis = "input features"
    return {"groups": int(zeros.size), "groups_ok": int((zeros >= m).sum()),
            "fraction_ok": float((zeros >= m).mean()) if zeros.size else 1.0,
            "sparsity": float(1.0 - np.count_nonzero(k) / k.size), "grouped_along": axis}


def _tfmot_m_by_n_ok(kernel, n=M_BY_N[1]):
    """tfmot's sparsity_m_by_n groups along the input channels; only right when they divide into groups."""
    return kernel.ndim in (2, 4) and kernel.shape[-2] % n == 0


# ----------------------------------------------------------------------------------------------------------
# tfmot helpers
# ----------------------------------------------------------------------------------------------------------

def _tfmot():
    from .tfutil import tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tfmot is imported)
    import tensorflow_model_optimization as tfmot

    return tfmot


def _wrappers(model):
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

    return [l for l in model.layers if isinstance(l, PruneLowMagnitude) and l.pruning_vars]


def _prune_layers(model, names, **kwargs):
    """Wrap the named layers with tfmot's prune_low_magnitude (the others are shared as they are)."""
    tfmot = _tfmot()
    from .tfutil import tf_keras

    def wrap(layer):
        return tfmot.sparsity.keras.prune_low_magnitude(layer, **kwargs) if layer.name in names else layer

    return tf_keras.models.clone_model(model, clone_function=wrap)


def _prunable_names(model):
    return [l.name for l in model.layers if type(l).__name__ in PRUNABLE]


def _apply_masks_now(wrapped, step=1):
    """Run tfmot's own mask update once, eagerly, at `step`: one-shot magnitude pruning, no training."""
    for layer in _wrappers(wrapped):
        layer.pruning_step.assign(step)
        layer.pruning_obj.conditional_mask_update()
        layer.pruning_obj.weight_mask_op()


def _strip(wrapped):
    # Masks are applied to the weights first: a best-by-validation checkpoint may hold weights the
    # optimizer moved after the last remask.
    for layer in _wrappers(wrapped):
        layer.pruning_obj.weight_mask_op()
    return _tfmot().sparsity.keras.strip_pruning(wrapped)


def pruning_schedule_steps(n_train, batch_size, epochs, prune_fraction, max_frequency=100, updates=10):
    """(end_step, frequency, first epoch at final sparsity) for gradual pruning over the first
    `prune_fraction` of fine-tuning. tfmot updates masks at steps where (step - begin) % frequency == 0 up to
    end_step, counting from 1; its default frequency (100) would never fire in a short fine-tune, and an end
    step that is not a multiple of the frequency would never reach the final sparsity."""
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    prune_epochs = min(epochs, max(1, round(epochs * prune_fraction)))
    target = prune_epochs * steps_per_epoch
    frequency = max(1, min(max_frequency, target // updates))
    end_step = max(frequency, (target // frequency) * frequency)
    final_epoch = math.ceil(end_step / steps_per_epoch) - 1  # 0-based epoch whose end has final masks
    return end_step, frequency, final_epoch


def _fixed_masks_callback(variables_and_masks):
    """A Keras callback keeping weights * mask after every batch, for masks chosen up front (our 2:4 masks)."""
    from .tfutil import tf_keras

    class FixedMasks(tf_keras.callbacks.Callback):
        def _apply(self):
            for var, mask in variables_and_masks:
                var.assign(var.numpy() * mask)

        def on_train_begin(self, logs=None):
            self._apply()

        def on_train_batch_end(self, batch, logs=None):
            self._apply()

    return FixedMasks()


def _history_rows(path):
    if not Path(path).exists():
        return []
    return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(path))]


# ----------------------------------------------------------------------------------------------------------
# Unstructured magnitude pruning
# ----------------------------------------------------------------------------------------------------------

def prune_unstructured_one_shot(model, sparsity):
    """Zero the smallest-magnitude `sparsity` of every prunable kernel with tfmot's own mask code, no
    training. Returns the stripped (plain Keras) model."""
    tfmot = _tfmot()
    sk = tfmot.sparsity.keras
    wrapped = _prune_layers(model, _prunable_names(model),
                            pruning_schedule=sk.ConstantSparsity(sparsity, begin_step=0, frequency=1))
    _apply_masks_now(wrapped)
    return _strip(wrapped)


def prune_unstructured_gradual(model, sparsity, train, val, ft, seed, workdir, log=print, tag="prune"):
    """Gradual magnitude pruning during fine-tuning (polynomial schedule from 0 to `sparsity` over the
    first `prune_fraction` of the steps), keeping the best-by-validation epoch among those at the final
    sparsity. Returns (stripped model, schedule dict, history rows)."""
    from .train import fit

    tfmot = _tfmot()
    sk = tfmot.sparsity.keras
    end_step, freq, final_epoch = pruning_schedule_steps(len(train[0]), ft["batch_size"], ft["epochs"],
                                                         ft["prune_fraction"])
    sched = sk.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                               end_step=end_step, frequency=freq)
    wrapped = _prune_layers(model, _prunable_names(model), pruning_schedule=sched)
    hist = Path(workdir) / f"{tag}_history.csv"
    fit(wrapped, train, val, ft["epochs"], ft["batch_size"], ft["learning_rate"],
        Path(workdir) / f"{tag}.weights.h5", hist, seed, tag=tag, callbacks=[sk.UpdatePruningStep()], log=log,
        checkpoint_from_epoch=final_epoch)
    schedule = {"kind": "polynomial_decay", "begin_step": 0, "end_step": end_step, "frequency": freq,
                "checkpoint_from_epoch": final_epoch}
    return _strip(wrapped), schedule, _history_rows(hist)


# ----------------------------------------------------------------------------------------------------------
# Structured (channel) pruning
# ----------------------------------------------------------------------------------------------------------

def filter_norms(kernel, norm):
    """Norm of each output filter of a Conv2D kernel (h, w, in, out)."""
    flat = np.asarray(kernel).reshape(-1, kernel.shape[-1])
    if norm == "l1":
        return np.abs(flat).sum(axis=0)
    if norm == "l2":
        return np.sqrt((flat ** 2).sum(axis=0))
    if norm == "linf":
        return np.abs(flat).max(axis=0)
    raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")


def top_filters(kernel, norm, keep):
    """Indices (ascending) of the `keep` filters with the largest norm; ties go to the lower index."""
    order = np.argsort(-filter_norms(kernel, norm), kind="stable")
    return np.sort(order[:keep])


def _kept_count(filters, keep, out_of):
    return max(1, min(filters, round(filters * keep / out_of)))


_CHANNELWISE = ("Dropout", "ReLU", "Activation", "AveragePooling2D", "MaxPooling2D", "BatchNormalization",
                "Flatten", "Softmax", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "DepthwiseConv2D")


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
    from .tfutil import tf_keras

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
    from .tfutil import tf_keras

    # Slice tensors of flat indices the same way as the weights: they say which original entries survive.
    index = _sliced_weights(_chain(model, lambda l: [np.arange(w.size).reshape(w.shape) for w in l.get_weights()]),
                            kept)
    masked = tf_keras.models.clone_model(model)
    for layer, orig in zip(masked.layers, model.layers):
        ws = orig.get_weights()
        if not ws:
            continue
        out = []
        for w, idx in zip(ws, index[orig.name]):
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


# ----------------------------------------------------------------------------------------------------------
# 2:4
# ----------------------------------------------------------------------------------------------------------

def prune_2by4(model, train=None, val=None, ft=None, seed=0, workdir=None, log=print, tag="sp24"):
    """2:4 sparsity on every prunable kernel. Layers whose input channels divide into groups of four go
    through tfmot's `sparsity_m_by_n`; the others (TinyConv's one-input-channel conv) get our mask along
    the TFLite layout's next axis (kernel width). One-shot when `ft` is None, else fine-tuned with the masks
    held fixed. Returns (stripped model, {layer: method}, history rows)."""
    from .train import fit

    tfmot = _tfmot()
    sk = tfmot.sparsity.keras
    names = _prunable_names(model)
    by_tfmot = [n for n in names if _tfmot_m_by_n_ok(model.get_layer(n).get_weights()[0])]
    own = [n for n in names if n not in by_tfmot]
    methods = {n: "tfmot sparsity_m_by_n (groups along input channels)" for n in by_tfmot}
    methods.update({n: "own 2:4 mask (groups along " + m_by_n_pattern(
        model.get_layer(n).get_weights()[0])["grouped_along"] + ")" for n in own})
    wrapped = _prune_layers(model, by_tfmot, pruning_schedule=sk.ConstantSparsity(0.5, begin_step=0, frequency=1),
                            sparsity_m_by_n=M_BY_N)
    fixed = []
    for n in own:
        var = wrapped.get_layer(n).kernel
        mask = m_by_n_mask(var.numpy())
        var.assign(var.numpy() * mask)
        fixed.append((var, mask))
    history = []
    if ft is None:
        _apply_masks_now(wrapped)
    else:
        hist = Path(workdir) / f"{tag}_history.csv"
        fit(wrapped, train, val, ft["epochs"], ft["batch_size"], ft["learning_rate"],
            Path(workdir) / f"{tag}.weights.h5", hist, seed, tag=tag,
            callbacks=[sk.UpdatePruningStep(), _fixed_masks_callback(fixed)], log=log)
        for var, mask in fixed:  # the best checkpoint was saved after a masked batch; make sure
            var.assign(var.numpy() * mask)
        history = _history_rows(hist)
    return _strip(wrapped), methods, history


# ----------------------------------------------------------------------------------------------------------
# Prune + QAT
# ----------------------------------------------------------------------------------------------------------

def prune_preserving_qat(pruned, train, val, ft, epochs, seed, workdir, log=print, tag="pqat"):
    """Pruning-preserving QAT of an already pruned (stripped) model. Returns (QAT model, plain float model
    with the QAT-trained weights, history rows)."""
    from .tfutil import tf_keras
    from .train import fit

    tfmot = _tfmot()
    q = tfmot.quantization.keras
    annotated = q.quantize_annotate_model(pruned)
    with q.quantize_scope():
        qat = q.quantize_apply(annotated, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
    hist = Path(workdir) / f"{tag}_history.csv"
    fit(qat, train, val, epochs, ft["batch_size"], ft["learning_rate"], Path(workdir) / f"{tag}.weights.h5",
        hist, seed, tag=tag, log=log)
    plain = tf_keras.models.clone_model(pruned)
    for layer in plain.layers:
        if layer.weights:
            # The wrapper owns the inner layer's kernel (it quantizes it); find each weight by its name.
            wrapper = qat.get_layer("quant_" + layer.name)
            byname = {v.name.split("/")[-1]: v for v in wrapper.weights if v.name.startswith(layer.name + "/")}
            layer.set_weights([byname[v.name.split("/")[-1]].numpy() for v in layer.weights])
    return qat, plain, _history_rows(hist)


# ----------------------------------------------------------------------------------------------------------
# The workflow step
# ----------------------------------------------------------------------------------------------------------

def prune_step(model_path, train_npz, val_npz, out_tflite, out_info, spec, seed, samples, latency_runs=100,
               variant=None, log_path=None, config=None):
    """One pruning variant: load the float model, prune as `spec` says, fine-tune or not, int8, write."""
    from .convert import to_int8
    from .evaluate import host_latency
    from .runlog import make_log
    from .size import estimate
    from .steps import write_variant
    from .tfutil import make_deterministic
    from .train import load_model, load_split

    log = make_log(log_path)
    make_deterministic(seed)
    family, mode = spec["family"], spec["mode"]
    ft = spec.get("fine_tune")
    train, val = load_split(train_npz), load_split(val_npz)
    model = load_model(model_path)
    before = estimate(model)["total"]
    extra = {"mode": mode, "fine_tuned": mode == "ft", "fine_tune": ft}
    qat_model = None
    with tempfile.TemporaryDirectory(dir=Path(out_info).parent, prefix=".prune_") as work:
        if family == FAMILY_UNSTRUCTURED:
            target = spec["sparsity"]
            if ft:
                pruned, schedule, history = prune_unstructured_gradual(model, target, train, val, ft, seed, work,
                                                                       log=log, tag=variant or "prune")
                extra.update(schedule=schedule, history=history)
            else:
                pruned = prune_unstructured_one_shot(model, target)
            achieved = kernel_sparsity(pruned)
            log(f"{variant}: target {target:.2%}, achieved " + ", ".join(f"{k} {v:.2%}" for k, v in achieved.items()))
            check_sparsity(achieved, target, spec["tolerance"])
            extra.update(sparsity_target=target, sparsity_achieved=achieved)
        elif family == FAMILY_STRUCTURED:
            # The unpruned model's reference-kernel latency, measured in the same job for a fair ratio.
            extra["host_latency_ref_unpruned"] = host_latency(to_int8(model, train[0], samples), train[0][0],
                                                              latency_runs, reference=True)
            pruned, kept, norms = prune_structured(model, spec["norm"], spec["keep"], spec["out_of"])
            if ft:
                hist = Path(work) / "history.csv"
                from .train import fit

                fit(pruned, train, val, ft["epochs"], ft["batch_size"], ft["learning_rate"],
                    Path(work) / "ft.weights.h5", hist, seed, tag=variant or "chan", log=log)
                extra["history"] = _history_rows(hist)
            extra.update(norm=spec["norm"], keep=spec["keep"], out_of=spec["out_of"],
                         kept_channels={k: v.tolist() for k, v in kept.items()}, filter_norms=norms)
            after = estimate(pruned)["total"]
            log(f"{variant}: kept {extra['kept_channels']} by {spec['norm']}; params {before['params']} -> "
                f"{after['params']}, MACs {before['macs']} -> {after['macs']}")
            if not (after["params"] < before["params"] and after["macs"] < before["macs"]):
                raise RuntimeError(f"structured pruning did not shrink the model: {before} -> {after}")
        elif family == FAMILY_2BY4:
            pruned, methods, history = prune_2by4(model, train, val, ft, seed, work, log=log, tag=variant or "sp24")
            pattern = {l.name: m_by_n_pattern(l.get_weights()[0]) for l in pruned.layers
                       if type(l).__name__ in PRUNABLE}
            for name, p in pattern.items():
                log(f"{variant}: {name} 2:4 groups ok {p['groups_ok']}/{p['groups']} along {p['grouped_along']} "
                    f"({methods[name]}), sparsity {p['sparsity']:.2%}")
                if p["groups_ok"] != p["groups"]:
                    raise RuntimeError(f"{name}: only {p['groups_ok']} of {p['groups']} groups are 2:4 sparse")
            extra.update(m_by_n=spec["m_by_n"], pattern=pattern, methods=methods,
                         sparsity_target=0.5, sparsity_achieved={k: v["sparsity"] for k, v in pattern.items()})
            if history:
                extra["history"] = history
        elif family == FAMILY_PQAT:
            target = spec["sparsity"]
            pruned, schedule, history = prune_unstructured_gradual(model, target, train, val, ft, seed, work,
                                                                   log=log, tag="prune")
            check_sparsity(kernel_sparsity(pruned), target, spec["tolerance"], "sparsity before QAT")
            qat_model, pruned, qat_history = prune_preserving_qat(pruned, train, val, ft, spec["qat_epochs"],
                                                                  seed, work, log=log)
            achieved = kernel_sparsity(pruned)
            check_sparsity(achieved, target, spec["tolerance"], "sparsity after QAT")
            extra.update(sparsity_target=target, sparsity_achieved=achieved, schedule=schedule, history=history,
                         qat_history=qat_history, qat_epochs=spec["qat_epochs"],
                         scheme="Default8BitPrunePreserveQuantizeScheme")
        else:
            raise ValueError(f"unknown pruning family {family!r}")
    content = to_int8(qat_model if qat_model is not None else pruned, train[0], samples)
    in_tflite = tflite_sparsity(content)
    log(f"{variant}: int8 TFLite {len(content)} bytes; weight sparsity " +
        ", ".join(f"{t['op']} {t['sparsity']:.2%}" for t in in_tflite))
    if "sparsity_target" in extra and family != FAMILY_2BY4:
        # Zero float weights quantize to zero; fewer zeros in the file means the export lost the sparsity.
        low = [t for t in in_tflite if t["sparsity"] < extra["sparsity_target"] - spec["tolerance"]]
        if low:
            raise RuntimeError(f"sparsity did not survive into the TFLite weights: {low}")
    extra["tflite_sparsity"] = in_tflite
    if family == FAMILY_2BY4:
        extra["tflite_pattern"] = tflite_m_by_n(content)
        bad = [t for t in extra["tflite_pattern"] if t["groups_ok"] != t["groups"]]
        if bad:
            raise RuntimeError(f"the 2:4 pattern did not survive into the TFLite weights: {bad}")
    extra["host_latency_ref"] = host_latency(content, train[0][0], latency_runs, reference=True)
    total = estimate(pruned)["total"]
    extra["sparsity_overall"] = 1.0 - total["nonzero_params"] / total["params"]
    write_variant(pruned, content, out_tflite, out_info, family, config, **extra)


# ----------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------

INSTR_LABEL = "emulated instructions / inference (QEMU)"


def _dense_instructions(row):
    """Instructions of the same weights run by the dense kernels, when the firmware measured them separately
    (it does for variants it deployed with the sparse encoding: device["dense_kernels"])."""
    dev = row.get("device") or {}
    dense = dev.get("dense_kernels") or {}
    v = dense.get("instructions_median", dev.get("instructions_dense"))
    if isinstance(v, dict):
        v = v.get("median")
    if v is None and dev and not _sparse_layers(row):
        v = row.get("instructions")  # deployed with dense kernels only: that is the dense-kernel count
    return v


def _sparse_layers(row):
    layers = (((row.get("device") or {}).get("codegen") or {}).get("layers")) or []
    return [f"{l.get('index', i)}:{l.get('op', '?')}" for i, l in enumerate(layers) if l.get("encoding") == "sparse"]


def _prow(r):
    h = r.get("host") or {}
    return {"label": r["label"], "arch": r["arch"], "variant": r["variant"], "family": r.get("family"),
            "mode": h.get("mode"), "accuracy": r["accuracy"], "params": r.get("params"),
            "nonzero_params": r.get("nonzero_params"), "macs": r.get("macs"), "flops": r.get("flops"),
            "tflite_bytes": r.get("tflite_bytes"), "gzip_bytes": r.get("gzip_bytes"), "host_ms": r.get("host_ms"),
            "instructions": r.get("instructions"), "instructions_dense": _dense_instructions(r),
            "flash": r.get("flash"), "flash_model": ((r.get("device") or {}).get("flash") or {}).get("model"),
            "flash_model_dense": ((r.get("device") or {}).get("dense_kernels") or {}).get("flash_model"),
            "sparse_layers": _sparse_layers(r),
            "sparsity_target": h.get("sparsity_target"), "sparsity_overall": h.get("sparsity_overall"),
            "sparsity_achieved": h.get("sparsity_achieved"), "tflite_sparsity": h.get("tflite_sparsity"),
            "norm": h.get("norm"), "keep": h.get("keep"), "out_of": h.get("out_of"),
            "kept_channels": h.get("kept_channels"), "filter_norms": h.get("filter_norms"),
            "pattern": h.get("pattern"), "methods": h.get("methods"),
            "fine_tuned": h.get("fine_tuned"), "deployable": r.get("deployable"), "n": h.get("n"),
            "host_ref_ms": (h.get("host_latency_ref") or {}).get("median_ms"),
            "host_ref_unpruned_ms": (h.get("host_latency_ref_unpruned") or {}).get("median_ms")}


def _curve(ax, points, xkey, mode, tag=None, **kw):
    pts = sorted((p for p in points if p.get(xkey) is not None and p["mode"] == mode), key=lambda p: p[xkey])
    if not pts:
        return
    xs, ys = [p[xkey] for p in pts], [100 * p["accuracy"] for p in pts]
    style = {"os": dict(marker="o", ls="--", color="tab:orange"), "ft": dict(marker="s", ls="-", color="tab:blue")}
    ax.plot(xs, ys, label=kw.pop("label", MODE_LABELS[mode]), **{**style[mode], **kw})
    if tag:
        for p, x, y in zip(pts, xs, ys):
            ax.annotate(tag(p), (x, y), fontsize=6.5, xytext=(3, 3), textcoords="offset points")


def _eng(ax):
    """Counts on the x axis as 1.5M / 300k instead of an offset like '1e6' that collides with the label."""
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def _reference(ax, refs, xkey):
    """Mark the unpruned models (float, dense int8) for comparison."""
    for r, m in ((refs.get("float"), "*"), (refs.get("ptq_int8"), "D")):
        if r and r.get(xkey) is not None:
            ax.scatter([r[xkey]], [100 * r["accuracy"]], marker=m, s=45, color="black", zorder=5,
                       label=f"unpruned {r['variant']}")


def pareto_front(points, xkey):
    """Indices of the points no other point beats on both (lower x, higher accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][xkey], -points[i]["accuracy"]))
    front, best = [], -1.0
    for i in order:
        if points[i]["accuracy"] > best:
            front.append(i)
            best = points[i]["accuracy"]
    return front


def _pareto_axes(ax, points, xkey, xlabel, title):
    pts = [p for p in points if p.get(xkey) is not None]
    if not pts:
        ax.set_visible(False)
        return []
    front = pareto_front(pts, xkey)
    families = sorted({p["family"] or "other" for p in pts})
    for i, fam in enumerate(families):
        mine = [p for p in pts if (p["family"] or "other") == fam]
        ax.scatter([p[xkey] for p in mine], [100 * p["accuracy"] for p in mine], s=18, color=f"C{i % 10}",
                   alpha=0.75, label=fam)
    fx = [pts[i][xkey] for i in front]
    fy = [100 * pts[i]["accuracy"] for i in front]
    ax.step(fx, fy, where="post", color="black", lw=1.2, label="Pareto frontier")
    ax.scatter(fx, fy, s=60, facecolors="none", edgecolors="black", zorder=5)
    for i in front:
        ax.annotate(pts[i]["variant"], (pts[i][xkey], 100 * pts[i]["accuracy"]), fontsize=6.5, xytext=(3, -9),
                    textcoords="offset points")
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=6.5, loc="lower right")
    _eng(ax)
    return [pts[i]["label"] for i in front]


def report_context(rows, config, figs):
    """Figures, tables and the answers for the report's pruning section (report/templates/pruning.html.j2)."""
    cfg = config.get("pruning") or {}
    prows = sorted((_prow(r) for r in rows if r.get("family") in FAMILIES),
                   key=lambda p: (p["arch"], FAMILIES.index(p["family"]), p.get("norm") or "",
                                  -(p.get("keep") or 0), p.get("sparsity_target") or 0, p["mode"] or ""))
    if not cfg.get("enabled") or not prows:
        return {"pruning": {"enabled": False}}
    plt = figs.plt
    threshold = (config.get("firmware") or {}).get("sparse_threshold")
    st = cfg.get("structured") or {}
    out = {"enabled": True, "rows": prows, "archs": {}, "config": cfg, "sparse_threshold": threshold}
    for arch in sorted({p["arch"] for p in prows}):
        a = {}
        refs = {r["variant"]: _prow(r) for r in rows if r["arch"] == arch and r["variant"] in ("float", "ptq_int8")}
        mine = [p for p in prows if p["arch"] == arch]
        unst = [p for p in mine if p["family"] == FAMILY_UNSTRUCTURED]
        chan = [p for p in mine if p["family"] == FAMILY_STRUCTURED and p["norm"] == st.get("norm")]
        cmp_ = [p for p in mine if p["family"] == FAMILY_STRUCTURED and p["keep"] == st.get("compare_keep")]
        has_dev = any(p.get("instructions") is not None for p in mine)
        sparsity_tag_ = lambda p: f"{100 * p['sparsity_target']:.0f}%"  # noqa: E731
        keep_tag = lambda p: f"{p['keep']}/{p['out_of']}"  # noqa: E731

        # Accuracy vs non-zero parameters: unstructured and structured side by side.
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
        for mode in MODES:
            _curve(ax[0], unst, "nonzero_params", mode, sparsity_tag_)
            _curve(ax[1], chan, "nonzero_params", mode, keep_tag)
        for x, t in ((ax[0], "Unstructured magnitude pruning (labels: sparsity)"),
                     (ax[1], f"Structured channel pruning, {NORM_LABELS.get(st.get('norm'), '')} "
                             "(labels: filters kept)")):
            _reference(x, refs, "nonzero_params")
            x.set(xlabel="non-zero parameters (count)", title=t)
            _eng(x)
            x.legend(fontsize=7)
        ax[0].set_ylabel("test accuracy (%)")
        a["fig_params"] = figs.save(fig, f"pruning_acc_vs_params_{arch}")

        # Structured: accuracy vs FLOPs, host latency (optimised and reference kernels), MCU instructions.
        if chan:
            unpruned_ref = [p["host_ref_unpruned_ms"] for p in chan if p.get("host_ref_unpruned_ms")]
            if unpruned_ref and refs.get("ptq_int8"):
                refs["ptq_int8"]["host_ref_ms"] = float(np.median(unpruned_ref))
            panels = [("flops", "FLOPs per inference (count)", "FLOPs"),
                      ("host_ms", "host latency per inference (ms)", "desktop CPU runtime\n(TFLite default kernels)"),
                      ("host_ref_ms", "host latency per inference (ms)",
                       "desktop CPU runtime\n(TFLite reference kernels)"),
                      ("instructions", INSTR_LABEL, "MCU runtime (emulated)")]
            if not has_dev:
                panels = panels[:3]
            fig, ax = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.7), sharey=True)
            for x, (key, xlabel, title) in zip(ax, panels):
                for mode in MODES:
                    _curve(x, chan, key, mode, keep_tag)
                _reference(x, refs, key)
                x.set(xlabel=xlabel, title=f"accuracy vs {title}")
                x.title.set_fontsize(8)
                if key in ("flops", "instructions"):
                    _eng(x)
                x.legend(fontsize=6)
            ax[0].set_ylabel("test accuracy (%)")
            fig.suptitle("Structured (channel) pruning, pruned channels removed", fontsize=9)
            a["fig_structured_cost"] = figs.save(fig, f"pruning_structured_cost_{arch}")

        # Unstructured: accuracy vs instructions, dense vs sparse kernels.
        if unst and has_dev:
            fig, ax = plt.subplots(figsize=(6.5, 3.8))
            for mode in MODES:
                _curve(ax, unst, "instructions", mode, sparsity_tag_,
                       label=f"{MODE_LABELS[mode]}, as deployed (sparse kernels above the threshold)")
                if any(p["instructions_dense"] is not None for p in unst):
                    _curve(ax, unst, "instructions_dense", mode, sparsity_tag_,
                           label=f"{MODE_LABELS[mode]}, dense kernels", alpha=0.45, marker="x")
            ref = refs.get("ptq_int8")
            if ref and ref.get("instructions"):
                ax.axvline(ref["instructions"], color="gray", ls=":", lw=1)
                ax.annotate("dense int8 (ptq_int8)", (ref["instructions"], ax.get_ylim()[0]), fontsize=7,
                            rotation=90, xytext=(3, 3), textcoords="offset points", color="gray")
            _reference(ax, refs, "instructions")
            ax.set(xlabel=INSTR_LABEL, ylabel="test accuracy (%)",
                   title="Unstructured pruning on the MCU: dense vs sparse kernels")
            _eng(ax)
            ax.legend(fontsize=6.5)
            a["fig_unst_instr"] = figs.save(fig, f"pruning_unstructured_instructions_{arch}")

        # L1 / L2 / L-infinity at one ratio.
        if cmp_:
            norms = [n for n in NORMS if any(p["norm"] == n for p in cmp_)]
            fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.5), gridspec_kw={"width_ratios": [1, 1.4]})
            width = 0.38
            for j, mode in enumerate(MODES):
                vals = [next((100 * p["accuracy"] for p in cmp_ if p["norm"] == n and p["mode"] == mode), np.nan)
                        for n in norms]
                bars = ax.bar(np.arange(len(norms)) + (j - 0.5) * width, vals, width, label=MODE_LABELS[mode],
                              color={"os": "tab:orange", "ft": "tab:blue"}[mode])
                ax.bar_label(bars, fmt="%.1f", fontsize=7)
            ax.set_xticks(range(len(norms)), [NORM_LABELS[n] for n in norms])
            ax.set_ylim(0, 118)
            ax.set(xlabel="filter ranking norm", ylabel="test accuracy (%)",
                   title=f"Accuracy, keeping {st.get('compare_keep')} of {st.get('out_of')} filters")
            ax.legend(fontsize=7, loc="upper center", ncol=2)
            # Which filters each norm keeps: each filter's norm relative to the largest, kept ones solid.
            first = {}
            for p in cmp_:
                if p.get("filter_norms") and p["norm"] not in first:
                    first[p["norm"]] = p
            w2 = 0.8 / max(1, len(first))
            for j, (n, p) in enumerate(sorted(first.items(), key=lambda kv: NORMS.index(kv[0]))):
                layer = next(iter(p["filter_norms"]))
                v = np.asarray(p["filter_norms"][layer], dtype=float)
                kept = set(p["kept_channels"][layer])
                xs = np.arange(len(v)) + (j - (len(first) - 1) / 2) * w2
                for i in range(len(v)):
                    ax2.bar(xs[i], v[i] / v.max(), w2, color=f"C{j}", alpha=1.0 if i in kept else 0.25)
            if first:
                ax2.set_xticks(range(len(v)), [str(i) for i in range(len(v))])
                ax2.set(xlabel=f"filter of {layer} (faded: removed)", ylabel="filter norm / largest",
                        title="Which filters each norm keeps")
                from matplotlib.patches import Patch

                ax2.legend(handles=[Patch(color=f"C{j}", label=NORM_LABELS[n]) for j, n in
                                    enumerate(sorted(first, key=NORMS.index))], fontsize=7)
            else:
                ax2.set_visible(False)
            a["fig_norms"] = figs.save(fig, f"pruning_norms_{arch}")
            a["norms"] = [{"norm": NORM_LABELS[n], **{m: next((p for p in cmp_ if p["norm"] == n and p["mode"] == m),
                                                              None) for m in MODES}} for n in norms]
            best = {m: max((p for p in cmp_ if p["mode"] == m), key=lambda p: p["accuracy"], default=None)
                    for m in MODES}
            a["best_norm"] = {m: (NORM_LABELS[b["norm"]], b["accuracy"]) for m, b in best.items() if b}
            # One standard error of a test accuracy: differences within ~2 of these are noise.
            a["norm_se"] = max((math.sqrt(p["accuracy"] * (1 - p["accuracy"]) / p["n"]) for p in cmp_ if p.get("n")),
                               default=None)
            a["norms_same_channels"] = len({str(p["kept_channels"]) for p in cmp_}) == 1

        a.update(_answers(unst, chan, mine, refs, threshold))
        out["archs"][arch] = a

    # Pareto over every deployable variant (all families), per architecture.
    out["pareto"] = {}
    for arch in out["archs"]:
        pts = [_prow(r) for r in rows if r["arch"] == arch and r.get("deployable")]
        on_dev = [p for p in pts if p.get("flash") is not None]
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        if on_dev:
            f1 = _pareto_axes(ax[0], on_dev, "flash", "firmware flash (bytes: code + model)",
                              "Accuracy vs flash (all deployed variants)")
            f2 = _pareto_axes(ax[1], on_dev, "instructions", INSTR_LABEL, "Accuracy vs MCU instructions")
            note = None
        else:
            f1 = _pareto_axes(ax[0], pts, "tflite_bytes", "int8 TFLite model (bytes)",
                              "Accuracy vs model bytes (no device results: flash not measured)")
            f2 = _pareto_axes(ax[1], pts, "gzip_bytes", "gzip-compressed int8 TFLite model (bytes)",
                              "Accuracy vs compressed model bytes")
            note = "No device results (firmware disabled or not yet run): the Pareto plots use TFLite bytes."
        ax[0].set_ylabel("test accuracy (%)")
        out["pareto"][arch] = {"fig": figs.save(fig, f"pruning_pareto_{arch}"), "front_a": f1, "front_b": f2,
                               "note": note, "on_device": bool(on_dev)}
    return {"pruning": out}


def _answers(unst, chan, mine, refs, threshold):
    """Numbers the template's answer boxes quote."""
    ans = {"speedup": [], "chan_rows": []}
    dense = refs.get("ptq_int8") or {}
    if unst:
        top = max(p["sparsity_target"] for p in unst)
        at = {p["mode"]: p for p in unst if p["sparsity_target"] == top}
        ans["unst_top"] = {"sparsity": top, "os": at.get("os"), "ft": at.get("ft")}
        # Sparse-kernel speed-up and flash at the highest sparsity that was deployed.
        speed = []
        for p in sorted(unst, key=lambda p: (p["sparsity_target"], p["mode"])):
            dense_i = p["instructions_dense"] or dense.get("instructions")
            if p.get("instructions") and dense_i:
                speed.append({"label": p["variant"], "sparsity": p["sparsity_target"],
                              "instructions": p["instructions"], "dense_instructions": dense_i,
                              "vs_dense_int8": dense.get("instructions") / p["instructions"]
                              if dense.get("instructions") else None,
                              "speedup": dense_i / p["instructions"], "flash_model": p.get("flash_model"),
                              "dense_flash_model": dense.get("flash_model"), "sparse_layers": p["sparse_layers"],
                              "gzip_bytes": p["gzip_bytes"], "dense_gzip_bytes": dense.get("gzip_bytes")})
        ans["speedup"] = speed
        s90 = [s for s in speed if abs(s["sparsity"] - 0.9) < 1e-6 and s["vs_dense_int8"]]
        if s90:
            # The target: at 90% sparsity, >= 3x fewer instructions than the dense int8 model, less flash.
            s = max(s90, key=lambda s: s["vs_dense_int8"])
            ans["target_90"] = {**s, "met": s["vs_dense_int8"] >= 3 and s["flash_model"] is not None
                                and s["dense_flash_model"] is not None and s["flash_model"] < s["dense_flash_model"]}
    if chan:
        ans["chan_rows"] = sorted(chan, key=lambda p: (-p["keep"], p["mode"]))
        small = min(chan, key=lambda p: (p["macs"], p["mode"] != "ft"))

        def ratio(key):
            return small[key] / dense[key] if small.get(key) and dense.get(key) else None

        ans["chan_speed"] = {"variant": small["variant"], "macs": ratio("macs"), "params": ratio("params"),
                             "tflite_bytes": ratio("tflite_bytes"), "host_ms": ratio("host_ms"),
                             "host_ref_ms": ratio("host_ref_ms"), "instructions": ratio("instructions")}
    ans["sp24"] = [p for p in mine if p["family"] == FAMILY_2BY4]
    ans["pqat"] = [p for p in mine if p["family"] == FAMILY_PQAT]
    ans["dense"] = dense
    return ans
