from tinymighty.report import build_report

i, o = snakemake.input, snakemake.output
inputs = {k: (list(v) if k in ("sizes", "histories", "hosts", "devices") else v) for k, v in i.items()}
build_report(inputs, snakemake.config, o.html, o.pdf, o.csv)
