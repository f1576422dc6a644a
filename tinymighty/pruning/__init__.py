"""Pruning study (issue 5): unstructured, structured (channels removed), 2:4 and prune+QAT.

Every variant starts from the trained float model `results/models/{arch}/float.h5`, is pruned, optionally
fine-tuned, converted to a full-int8 TFLite model and written with `model.steps.write_variant`; the shared
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

Modules:

* `grid`          which variants a config asks for, and each job's spec (imports no TensorFlow: the workflow
  imports it to build the DAG).
* `sparsity`      measuring and checking sparsity, in Keras kernels and in the TFLite file.
* `wrappers`      tfmot's pruning wrappers: wrap layers, apply the masks, strip.
* `unstructured`  magnitude pruning, one-shot or gradual with fine-tuning.
* `structured`    channel pruning: rank filters, build the smaller model.
* `m_by_n`        2:4 masks, patterns and the 2:4 variant.
* `pqat`          pruning-preserving QAT.
* `step`          one variant's workflow job.
* `report`        the report's pruning section.

TensorFlow is imported inside the functions.
"""
