from tinymighty.data.steps import features_step

p = snakemake.params
# The held-out voices go through the test split's pipeline: same features, no augmentation.
features_step(snakemake.input.index, snakemake.output[0], p.features, {}, p.seed, "testing", log_path=snakemake.log[0])
