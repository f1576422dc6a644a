from tinymighty.steps import size_step

size_step(snakemake.input[0], snakemake.output[0], config=snakemake.config)
