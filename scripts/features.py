from tinymighty.data.steps import features_step

p = snakemake.params
features_step(
    snakemake.input.index,
    snakemake.output[0],
    p.features,
    p.augment,
    p.seed,
    snakemake.wildcards.split,
    log_path=snakemake.log[0],
)
