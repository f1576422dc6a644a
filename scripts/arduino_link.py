import os

from tinymighty.device.arduino import link_step

# The step writes no log of its own: everything this job prints (make, a traceback) goes to its log file.
_log = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(_log, 1), os.dup2(_log, 2)

link_step(snakemake.input.sketch, snakemake.output[0], snakemake.config)
