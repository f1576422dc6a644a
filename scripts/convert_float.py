from tinymighty.steps import convert_float_step

convert_float_step(snakemake.input[0], snakemake.output[0])
