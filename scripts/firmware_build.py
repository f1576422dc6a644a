from tinymighty.steps import firmware_build_step

firmware_build_step(snakemake.input.c, snakemake.output[0])
