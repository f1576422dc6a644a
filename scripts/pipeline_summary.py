import os

from tinymighty.device.pipeline_step import pipeline_summary_step

# The step writes no log of its own: everything this job prints (a traceback) goes to its log file.
_log = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(_log, 1), os.dup2(_log, 2)

i, p = snakemake.input, snakemake.params
pipeline_summary_step(
    list(i.host), list(i.device), i.placements, snakemake.output[0], p.recognizer, p.features, config=snakemake.config
)
