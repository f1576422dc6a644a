from tinymighty.report import build_report

i, o = snakemake.input, snakemake.output
inputs = {k: (list(v) if k in ("sizes", "histories", "metrics") else v) for k, v in i.items()}
inputs["model_c"] = (list(i.model_c) or [None])[0]
build_report(inputs, snakemake.config, o.html, o.pdf, o.csv, o.figures)
