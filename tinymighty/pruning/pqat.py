"""Prune + QAT: pruning-preserving quantization-aware training of an already pruned model."""

from .wrappers import _tfmot, fine_tune


def prune_preserving_qat(pruned, train, val, ft, epochs, seed, workdir, log=print, tag="pqat"):
    """Pruning-preserving QAT of an already pruned (stripped) model. Returns (QAT model, plain float model
    with the QAT-trained weights, history rows)."""
    from ..tfutil import tf_keras

    tfmot = _tfmot()
    q = tfmot.quantization.keras
    annotated = q.quantize_annotate_model(pruned)
    with q.quantize_scope():
        qat = q.quantize_apply(annotated, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
    history = fine_tune(qat, train, val, ft, seed, workdir, tag, log, epochs=epochs)
    plain = tf_keras.models.clone_model(pruned)
    for layer in plain.layers:
        if layer.weights:
            # The wrapper owns the inner layer's kernel (it quantizes it); find each weight by its name.
            wrapper = qat.get_layer("quant_" + layer.name)
            byname = {v.name.split("/")[-1]: v for v in wrapper.weights if v.name.startswith(layer.name + "/")}
            layer.set_weights([byname[v.name.split("/")[-1]].numpy() for v in layer.weights])
    return qat, plain, history
