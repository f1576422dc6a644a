from tinymighty.device.pipeline_step import pipeline_host_step

i, p, w = snakemake.input, snakemake.params, snakemake.wildcards
pipeline_host_step(
    i.model,
    i.codegen,
    i.index,
    i.wav,
    i.placements,
    snakemake.output[0],
    p.recognizer,
    p.features,
    p.tolerance_ms,
    timing_runs=p.timing_runs,
    arch=w.arch,
    variant=w.variant,
    log_path=snakemake.log[0],
    config=snakemake.config,
)
