from tinymighty.steps import codegen_step

o = snakemake.output
codegen_step(snakemake.input.model, o.c, o.info, snakemake.params.sparse_threshold, config=snakemake.config)
