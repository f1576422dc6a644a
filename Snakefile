# Tiny but Mighty: `snakemake --cores 4` regenerates results/report.html and results/report.pdf.
import os

from snakemake.utils import min_version, validate

min_version("9.0")


# The embedded default, found next to this Snakefile wherever --directory points; --configfile layers on top.
configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, "rules/schema/config.schema.yaml")

from tinymighty.config import check_config, sort_keys

check_config(config)
sort_keys(config)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/train.smk"
include: "rules/variants.smk"
include: "rules/quantization.smk"
include: "rules/pruning.smk"
include: "rules/firmware.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/report.html",
        "results/report.pdf",
