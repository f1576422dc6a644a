"""Quantization study (issue 4): QAT int8, PTQ/QAT bit-width sweeps, minifloat, as workflow variants.

Everything is built with the pinned TensorFlow Model Optimization Toolkit (tfmot); nothing here writes its
own fake-quant op for the integer schemes.

Modules:

* ``grid``       which variants a config asks for, and each job's parameters (imports no TensorFlow: the
  workflow imports it to build the DAG).
* ``minifloat``  the minifloat formats: rounding rule and the tfmot quantizer that applies it.
* ``methods``    building the tfmot fake-quant model, calibrating its ranges, QAT fine-tuning.
* ``export``     the integer-only TFLite file and what its weights take.
* ``step``       one variant's workflow job.
* ``report``     the report's quantization section.
"""
