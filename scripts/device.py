from tinymighty.device.step import device_step

i, p, w = snakemake.input, snakemake.params, snakemake.wildcards
device_step(
    i.elf,
    i.model,
    i.test,
    i.host_outputs,
    i.codegen,
    snakemake.output[0],
    snakemake.log[0],
    backend=p.backend,
    port=p.port,
    baudrate=p.baudrate,
    accuracy_inputs=p.accuracy_inputs,
    bench_runs=p.bench_runs,
    timing_inputs=p.timing_inputs,
    arch=w.arch,
    variant=w.variant,
    config=snakemake.config,
    sketch_link=i.sketch_link[0] if i.sketch_link else None,
)
