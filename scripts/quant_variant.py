from tinymighty.quantization.step import variant_step

w = snakemake.wildcards
variant_step(
    w.arch,
    w.variant,
    dict(snakemake.input.items()),
    dict(snakemake.output.items()),
    snakemake.params.settings,
    log_path=snakemake.log[0],
    config=snakemake.config,
)
