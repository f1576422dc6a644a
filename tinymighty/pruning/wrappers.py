"""tfmot's pruning wrappers: wrap the prunable layers, apply their masks now, strip them; and the history a
fine-tune leaves behind."""

import csv
from pathlib import Path

from .sparsity import PRUNABLE


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


def _wrappers(model):
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

    return [l for l in model.layers if isinstance(l, PruneLowMagnitude) and l.pruning_vars]


def _prune_layers(model, names, **kwargs):
    """Wrap the named layers with tfmot's prune_low_magnitude (the others are shared as they are)."""
    tfmot = _tfmot()
    from ..tfutil import tf_keras

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


def _history_rows(path):
    if not Path(path).exists():
        return []
    return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(path))]


def fine_tune(model, train, val, ft, seed, workdir, tag, log, epochs=None, **fit_kwargs):
    """Fine-tunes a pruning variant in `workdir` (best epoch by validation accuracy, as every study does);
    returns the per-epoch history rows."""
    from ..model.train import fit

    hist = Path(workdir) / f"{tag}_history.csv"
    checkpoint = Path(workdir) / f"{tag}.weights.h5"
    epochs = ft["epochs"] if epochs is None else epochs
    fit(
        model,
        train,
        val,
        epochs,
        ft["batch_size"],
        ft["learning_rate"],
        checkpoint,
        hist,
        seed,
        tag=tag,
        log=log,
        **fit_kwargs,
    )
    return _history_rows(hist)
