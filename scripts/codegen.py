import os

from tinymighty.codegen.step import codegen_step

# The step writes no log of its own: everything this job prints (TensorFlow, a traceback) goes to its log file.
_log = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(_log, 1), os.dup2(_log, 2)

o = snakemake.output
codegen_step(snakemake.input.model, o.c, o.info, snakemake.params.sparse_threshold, config=snakemake.config)
