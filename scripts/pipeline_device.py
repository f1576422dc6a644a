from tinymighty.device.pipeline_step import pipeline_device_step

i, p, w = snakemake.input, snakemake.params, snakemake.wildcards
pipeline_device_step(
    i.elf,
    i.codegen,
    i.index,
    i.wav,
    i.placements,
    i.host,
    i.pcm,
    i.host_outputs,
    snakemake.output[0],
    snakemake.log.stream,
    snakemake.log.clips,
    p.recognizer,
    p.features,
    p.tolerance_ms,
    p.accuracy_inputs,
    arch=w.arch,
    variant=w.variant,
    config=snakemake.config,
)
