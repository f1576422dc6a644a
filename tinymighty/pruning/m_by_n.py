"""2:4 (M:N) sparsity: groups of consecutive weights in the TFLite layout, our mask where tfmot's grouping
does not apply, the pattern checks, and the 2:4 variant."""

import numpy as np

from .grid import M_BY_N
from .sparsity import tflite_weights
from .wrappers import _apply_masks_now, _prunable_names, _prune_layers, _strip, _tfmot, fine_tune


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
    np.put_along_axis(keep, order[..., : n - m], True, axis=-1)
    rows = keep.reshape(keep.shape[0], -1)
    if k.ndim == 4:
        h, w, cin, cout = k.shape
        rows = rows[:, : h * w * cin].reshape(cout, h, w, cin)
        return np.transpose(rows, (1, 2, 3, 0)).astype(k.dtype)
    return rows[:, : k.shape[0]].T.astype(k.dtype)


def m_by_n_pattern(kernel, m_by_n=M_BY_N):
    """Share of groups of n consecutive weights (TFLite layout) with at least m zeros, and the layout used."""
    m, n = m_by_n
    k = np.asarray(kernel)
    groups = m_by_n_groups(k, n)
    full = groups[:, : (k.size // k.shape[-1]) // n]  # partial trailing groups are padding, not weights
    zeros = (full == 0).sum(axis=-1)
    if k.ndim == 4:
        axis = (
            "input channels" if k.shape[2] % n == 0 else ("kernel width" if k.shape[1] % n == 0 else "flattened h*w*in")
        )
    else:
        axis = "input features"
    return {
        "groups": int(zeros.size),
        "groups_ok": int((zeros >= m).sum()),
        "fraction_ok": float((zeros >= m).mean()) if zeros.size else 1.0,
        "sparsity": float(1.0 - np.count_nonzero(k) / k.size),
        "grouped_along": axis,
    }


def _tfmot_m_by_n_ok(kernel, n=M_BY_N[1]):
    """tfmot's sparsity_m_by_n groups along the input channels; only right when they divide into groups."""
    return kernel.ndim in (2, 4) and kernel.shape[-2] % n == 0


def _fixed_masks_callback(variables_and_masks):
    """A Keras callback keeping weights * mask after every batch, for masks chosen up front (our 2:4 masks)."""
    from ..tfutil import tf_keras

    class FixedMasks(tf_keras.callbacks.Callback):
        def _apply(self):
            for var, mask in variables_and_masks:
                var.assign(var.numpy() * mask)

        def on_train_begin(self, logs=None):
            self._apply()

        def on_train_batch_end(self, batch, logs=None):
            self._apply()

    return FixedMasks()


def prune_2by4(model, train=None, val=None, ft=None, seed=0, workdir=None, log=print, tag="sp24"):
    """2:4 sparsity on every prunable kernel. Layers whose input channels divide into groups of four go
    through tfmot's `sparsity_m_by_n`; the others (TinyConv's one-input-channel conv) get our mask along
    the TFLite layout's next axis (kernel width). One-shot when `ft` is None, else fine-tuned with the masks
    held fixed. Returns (stripped model, {layer: method}, history rows)."""

    tfmot = _tfmot()
    sk = tfmot.sparsity.keras
    names = _prunable_names(model)
    by_tfmot = [n for n in names if _tfmot_m_by_n_ok(model.get_layer(n).get_weights()[0])]
    own = [n for n in names if n not in by_tfmot]
    methods = {n: "tfmot sparsity_m_by_n (groups along input channels)" for n in by_tfmot}
    methods.update(
        {
            n: "own 2:4 mask (groups along "
            + m_by_n_pattern(model.get_layer(n).get_weights()[0])["grouped_along"]
            + ")"
            for n in own
        }
    )
    wrapped = _prune_layers(
        model, by_tfmot, pruning_schedule=sk.ConstantSparsity(0.5, begin_step=0, frequency=1), sparsity_m_by_n=M_BY_N
    )
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
        history = fine_tune(
            wrapped,
            train,
            val,
            ft,
            seed,
            workdir,
            tag,
            log,
            callbacks=[sk.UpdatePruningStep(), _fixed_masks_callback(fixed)],
        )
        for var, mask in fixed:  # the best checkpoint was saved after a masked batch; make sure
            var.assign(var.numpy() * mask)
    return _strip(wrapped), methods, history
