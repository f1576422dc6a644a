from tinymighty.model.steps import evaluate_holdout_step

i, w = snakemake.input, snakemake.wildcards
evaluate_holdout_step(
    i.model,
    i.features,
    i.index,
    snakemake.output[0],
    snakemake.params.voices,
    arch=w.arch,
    variant=w.variant,
    log_path=snakemake.log[0],
    config=snakemake.config,
)
