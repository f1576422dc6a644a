from tinymighty.data.steps import dataset_step

p = snakemake.params
dataset_step(
    snakemake.output[0],
    p.source,
    p.path,
    p.url,
    p.sha256,
    p.synthetic,
    p.splits,
    p.seed,
    holdout=p.holdout,
    log_path=snakemake.log[0],
    config=snakemake.config,
    manifest=snakemake.input.get("manifest"),
)
