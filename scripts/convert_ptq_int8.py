from tinymighty.steps import convert_ptq_int8_step

convert_ptq_int8_step(snakemake.input.model, snakemake.input.train, snakemake.output[0], snakemake.params.samples)
