from tinymighty.steps import convert_float_step

convert_float_step(snakemake.input[0], snakemake.output.model, snakemake.output.info, config=snakemake.config)
