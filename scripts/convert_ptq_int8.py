import os

from tinymighty.model.steps import convert_ptq_int8_step

# The step writes no log of its own: everything this job prints (TensorFlow, a traceback) goes to its log file.
_log = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(_log, 1), os.dup2(_log, 2)

o = snakemake.output
convert_ptq_int8_step(
    snakemake.input.model, snakemake.input.train, o.model, o.info, snakemake.params.samples, config=snakemake.config
)
