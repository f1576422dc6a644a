# Tiny but Mighty: `snakemake --cores 4` regenerates results/report.html and results/report.pdf.
import os
import sys

from snakemake.utils import min_version, validate

from tinymighty import config as C
from tinymighty.device import recognizer as REC
from tinymighty.runlock import clear_stale_locks

min_version("9.0")

# A run killed by SIGKILL leaves Snakemake's lock behind; remove it when no other run is alive here.
if workflow.is_main_process:
    clear_stale_locks(log=lambda msg: print(msg, file=sys.stderr))

DEFAULT_CONFIG = os.path.join(workflow.basedir, "config.yaml")
with C.exit_on_config_error():
    C.load_yaml(DEFAULT_CONFIG)  # a YAML syntax error names the file and line (Snakemake's own message does not)


# The description of the study at the top of `snakemake --report report.zip`.
report: "report/workflow.rst"


# The embedded default, found next to this Snakefile wherever --directory points; --configfile layers on top.
configfile: DEFAULT_CONFIG


# Each problem names the key, the file and line that set it, and what to do; Snakemake's validate then only
# fills in schema defaults.
SCHEMA = os.path.join(workflow.basedir, "rules", "schema", "config.schema.yaml")
with C.exit_on_config_error():
    C.validate(config, SCHEMA, [DEFAULT_CONFIG, *workflow.overwrite_configfiles])
    validate(config, SCHEMA)
    C.check_config(config)
    REC.check_config(config)  # the recognizer's settings in inferences must fit the firmware's limits
C.sort_keys(config)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/train.smk"
include: "rules/variants.smk"
include: "rules/quantization.smk"
include: "rules/pruning.smk"
include: "rules/firmware.smk"
include: "rules/pipeline.smk"
include: "rules/arduino.smk"
include: "rules/report.smk"


# Every metrics and device result is a target too: Snakemake does not rebuild a missing file whose consumers
# are up to date, so a device.json lost to a killed run would otherwise stay lost behind an old report.
rule all:
    input:
        "results/report.html",
        "results/report.pdf",
        all_metrics(),
        [device_path(v.arch, v.name) for v in GRID if has_device(v.arch, v.name)],
        # Every deployed variant's Arduino sketch, checked by the nRF52840 link.
        [sketch_link_path(v.arch, v.name) for v in GRID if has_device(v.arch, v.name)],
        pipeline_summary(),
