from tinymighty.steps import metrics_step

metrics_step(snakemake.input.host, (snakemake.input.device or [None])[0], snakemake.output[0],
             config=snakemake.config)
