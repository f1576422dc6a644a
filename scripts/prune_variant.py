from tinymighty.pruning.step import prune_step

i, o, p = snakemake.input, snakemake.output, snakemake.params
prune_step(
    i.model,
    i.train,
    i.val,
    o.model,
    o.info,
    p.spec,
    p.seed,
    p.samples,
    latency_runs=p.latency_runs,
    variant=snakemake.wildcards.variant,
    log_path=snakemake.log[0],
    config=snakemake.config,
)
