"""Unstructured magnitude pruning with tfmot: one-shot, or gradual during fine-tuning."""

import math

from .wrappers import _apply_masks_now, _prunable_names, _prune_layers, _strip, _tfmot, fine_tune


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


def prune_unstructured_one_shot(model, sparsity):
    """Zero the smallest-magnitude `sparsity` of every prunable kernel with tfmot's own mask code, no
    training. Returns the stripped (plain Keras) model."""
    tfmot = _tfmot()
    sk = tfmot.sparsity.keras
    wrapped = _prune_layers(
        model, _prunable_names(model), pruning_schedule=sk.ConstantSparsity(sparsity, begin_step=0, frequency=1)
    )
    _apply_masks_now(wrapped)
    return _strip(wrapped)


def prune_unstructured_gradual(model, sparsity, train, val, ft, seed, workdir, log=print, tag="prune"):
    """Gradual magnitude pruning during fine-tuning (polynomial schedule from 0 to `sparsity` over the
    first `prune_fraction` of the steps), keeping the best-by-validation epoch among those at the final
    sparsity. Returns (stripped model, schedule dict, history rows)."""

    tfmot = _tfmot()
    sk = tfmot.sparsity.keras
    end_step, freq, final_epoch = pruning_schedule_steps(
        len(train[0]), ft["batch_size"], ft["epochs"], ft["prune_fraction"]
    )
    sched = sk.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0, end_step=end_step, frequency=freq
    )
    wrapped = _prune_layers(model, _prunable_names(model), pruning_schedule=sched)
    history = fine_tune(
        wrapped,
        train,
        val,
        ft,
        seed,
        workdir,
        tag,
        log,
        callbacks=[sk.UpdatePruningStep()],
        checkpoint_from_epoch=final_epoch,
    )
    schedule = {
        "kind": "polynomial_decay",
        "begin_step": 0,
        "end_step": end_step,
        "frequency": freq,
        "checkpoint_from_epoch": final_epoch,
    }
    return _strip(wrapped), schedule, history
