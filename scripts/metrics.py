import os

from tinymighty.device.step import metrics_step

# The step writes no log of its own: everything this job prints (TensorFlow, a traceback) goes to its log file.
_log = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(_log, 1), os.dup2(_log, 2)

i = snakemake.input
metrics_step(
    i.host, (i.device or [None])[0], snakemake.output[0], config=snakemake.config, holdout_json=(i.holdout or [None])[0]
)
