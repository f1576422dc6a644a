from tinymighty.model.steps import train_step

train_step(
    snakemake.wildcards.arch,
    snakemake.input.train,
    snakemake.input.val,
    snakemake.output.model,
    snakemake.output.history,
    snakemake.params.train,
    snakemake.params.seed,
    log_path=snakemake.log[0],
)
