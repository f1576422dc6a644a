from tinymighty.data.steps import prepare_holdout_step

prepare_holdout_step(
    snakemake.input[0],
    snakemake.output[0],
    snakemake.params.wanted_words,
    log_path=snakemake.log[0],
    config=snakemake.config,
)
