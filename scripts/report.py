import os

from tinymighty.report.render import build_report

# The step writes no log of its own: everything this job prints (TensorFlow, a traceback) goes to its log file.
_log = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(_log, 1), os.dup2(_log, 2)

i, o = snakemake.input, snakemake.output
inputs = {k: (list(v) if k in ("sizes", "histories", "metrics") else v) for k, v in i.items()}
inputs["model_c"] = (list(i.model_c) or [None])[0]
build_report(inputs, snakemake.config, o.html, o.pdf, o.csv, o.figures)
