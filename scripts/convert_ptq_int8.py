from tinymighty.steps import convert_ptq_int8_step

o = snakemake.output
convert_ptq_int8_step(snakemake.input.model, snakemake.input.train, o.model, o.info, snakemake.params.samples,
                      config=snakemake.config)
