from tinymighty.model.steps import evaluate_step

i, w = snakemake.input, snakemake.wildcards
o = snakemake.output
evaluate_step(
    i.model,
    i.info,
    i.test,
    i.index,
    o.metrics,
    o.predictions,
    o.outputs,
    snakemake.params.latency_runs,
    float_predictions=(i.float_predictions or [None])[0],
    arch=w.arch,
    variant=w.variant,
    log_path=snakemake.log[0],
    config=snakemake.config,
)
