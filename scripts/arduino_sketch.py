import os

from tinymighty.device.arduino import sketch_step

# The step writes no log of its own: everything this job prints (a traceback) goes to its log file.
_log = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(_log, 1), os.dup2(_log, 2)

i, p = snakemake.input, snakemake.params
sketch_step(i.c, i.codegen, i.index, snakemake.output[0], p.features, p.recognizer)
