from tinymighty.data.steps import prepare_step

p = snakemake.params
prepare_step(
    snakemake.input[0],
    snakemake.output[0],
    p.wanted_words,
    p.percentages,
    p.seed,
    clips=p.clips,
    log_path=snakemake.log[0],
    config=snakemake.config,
)
