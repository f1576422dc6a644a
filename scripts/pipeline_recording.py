import os

from tinymighty.device.pipeline_step import recording_step

# The step writes no log of its own: everything this job prints (a traceback) goes to its log file.
_log = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(_log, 1), os.dup2(_log, 2)

o, p = snakemake.output, snakemake.params
recording_step(
    snakemake.input.index,
    o.wav,
    o.placements,
    p.seconds,
    p.features,
    p.seed,
    p.background_volume,
    config=snakemake.config,
)
