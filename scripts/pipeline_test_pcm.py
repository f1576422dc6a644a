from tinymighty.device.pipeline_step import test_pcm_step

i, p = snakemake.input, snakemake.params
test_pcm_step(i.index, i.test, snakemake.output[0], p.features, p.seed, p.clips, log_path=snakemake.log[0])
