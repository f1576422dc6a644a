from tinymighty.data.steps import holdout_step

p = snakemake.params
holdout_step(
    snakemake.output[0],
    p.voices,
    p.keywords,
    p.unknown_words,
    p.sizes,
    p.synthetic,
    p.seed,
    log_path=snakemake.log[0],
)
