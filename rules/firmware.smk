# Stage 5: every full-int8 variant compiled ahead of time to C, built for the Cortex-M4 and measured on the
# device (QEMU mps2-an386 by default, or a board on a serial port).
from pathlib import Path

FIRMWARE_SOURCES = sorted(
    str(p)
    for p in Path(workflow.basedir, "firmware").rglob("*")
    if p.is_file() and (p.suffix in {".c", ".h", ".cpp", ".ino", ".ld", ".mk"} or p.name == "Makefile")
)
# The code generator is code the C depends on: a change to it must regenerate every model.
CODEGEN_SOURCES = sorted(str(p) for p in Path(workflow.basedir, "tinymighty", "codegen").rglob("*.py"))


rule codegen:
    input:
        model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
        generator=CODEGEN_SOURCES,
    output:
        c=f"{RESULTS}/firmware/{{arch}}/{{variant}}/model/model.c",
        h=f"{RESULTS}/firmware/{{arch}}/{{variant}}/model/model.h",
        info=f"{RESULTS}/firmware/{{arch}}/{{variant}}/codegen.json",
    log:
        f"{RESULTS}/logs/codegen_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/codegen_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=INT8_VARIANTS,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        sparse_threshold=config["firmware"]["sparse_threshold"],
    script:
        "../scripts/codegen.py"


rule firmware_build:
    input:
        c=f"{RESULTS}/firmware/{{arch}}/{{variant}}/model/model.c",
        h=f"{RESULTS}/firmware/{{arch}}/{{variant}}/model/model.h",
        sources=FIRMWARE_SOURCES,
    output:
        f"{RESULTS}/firmware/{{arch}}/{{variant}}/build/firmware.elf",
    log:
        f"{RESULTS}/logs/firmware_build_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/firmware_build_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=INT8_VARIANTS,
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    script:
        "../scripts/firmware_build.py"


rule device:
    input:
        elf=f"{RESULTS}/firmware/{{arch}}/{{variant}}/build/firmware.elf",
        model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
        test=f"{RESULTS}/features/testing.npz",
        host_outputs=f"{RESULTS}/variants/{{arch}}/{{variant}}/outputs.npy",
        codegen=f"{RESULTS}/firmware/{{arch}}/{{variant}}/codegen.json",
        sketch_link=device_sketch_link,
    output:
        f"{RESULTS}/firmware/{{arch}}/{{variant}}/device.json",
    log:
        # The raw device transcript: kept even when the job fails.
        f"{RESULTS}/firmware/{{arch}}/{{variant}}/device.log",
    benchmark:
        f"{RESULTS}/benchmarks/device_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=INT8_VARIANTS,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
        # One board can only run one session at a time; QEMU instances are independent.
        device=lambda w: 1 if config["firmware"]["backend"] == "serial" else 0,
    params:
        backend=config["firmware"]["backend"],
        port=config["firmware"]["port"],
        baudrate=config["firmware"]["baudrate"],
        accuracy_inputs=config["firmware"]["accuracy_inputs"],
        bench_runs=config["firmware"]["bench_runs"],
        timing_inputs=config["firmware"]["timing_inputs"],
    script:
        "../scripts/device.py"


# A physically attached board must be driven from the machine it is plugged into.
if config["firmware"]["backend"] == "serial":

    localrules:
        device,
