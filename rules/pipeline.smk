# Stage 5b (issue 10): the keyword spotter end to end, raw audio in, keywords out. The firmware of a deployed
# variant is built with the feature extractor and the recognizer; the device runs the test clips from raw audio
# (accuracy, equal to the host's prediction by prediction) and a long recording stride by stride (events equal
# to the host's, instructions per stage); the host runs the same recording through the same C frontend, TFLM
# and the recognizer's reference, and times each stage.
from tinymighty.config import ConfigError, exit_on_config_error

PIPE_CFG = config.get("pipeline") or {"enabled": False}
PIPELINE_ON = (
    bool(PIPE_CFG.get("enabled"))
    and config["firmware"]["enabled"]
    and config["features"]["kind"] == "micro"
    and config["firmware"]["backend"] == "qemu"  # the PCM is preloaded into QEMU's PSRAM
)


def _pipeline_grid():
    """The deployed variants named by pipeline.variants (all when it is empty), of every architecture."""
    if not PIPELINE_ON:
        return []
    wanted = PIPE_CFG.get("variants") or []
    deployed = [v for v in GRID if v.int8]
    chosen = [v for v in deployed if not wanted or v.name in wanted]
    if not chosen:
        raise ConfigError(
            f"pipeline.variants {wanted} names no deployed variant of this config; choose from "
            f"{sorted({v.name for v in deployed})}, or [] for all"
        )
    return chosen


with exit_on_config_error():
    PIPELINE_GRID = _pipeline_grid()
PIPELINE_VARIANTS = V.name_regex(PIPELINE_GRID)
MICRO_FRONTEND_PY = str(Path(workflow.basedir, "tinymighty", "data", "micro_frontend.py"))


def pipeline_summary():
    """report: the pipeline's summary, when it runs at all."""
    return [f"{RESULTS}/pipeline/summary.json"] if PIPELINE_GRID else []


rule pipeline_test_pcm:
    input:
        index=f"{RESULTS}/data/index.json",
        dataset=f"{RESULTS}/data/dataset",
        test=f"{RESULTS}/features/testing.npz",
    output:
        f"{RESULTS}/pipeline/testing_pcm.npz",
    log:
        f"{RESULTS}/logs/pipeline_test_pcm.log",
    benchmark:
        f"{RESULTS}/benchmarks/pipeline_test_pcm.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        features=config["features"],
        frontend=FRONTEND_CODE,
        seed=config["seed"],
        clips=config["firmware"]["accuracy_inputs"],
    script:
        "../scripts/pipeline_test_pcm.py"


rule pipeline_recording:
    input:
        index=f"{RESULTS}/data/index.json",
        dataset=f"{RESULTS}/data/dataset",
    output:
        wav=f"{RESULTS}/pipeline/recording.wav",
        placements=f"{RESULTS}/pipeline/recording.json",
    log:
        f"{RESULTS}/logs/pipeline_recording.log",
    benchmark:
        f"{RESULTS}/benchmarks/pipeline_recording.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        seconds=PIPE_CFG.get("recording_s", 60),
        features=config["features"],
        seed=config["seed"],
        background_volume=config["augment"]["background_volume"],
    script:
        "../scripts/pipeline_recording.py"


rule pipeline_build:
    input:
        c=f"{RESULTS}/firmware/{{arch}}/{{variant}}/model/model.c",
        h=f"{RESULTS}/firmware/{{arch}}/{{variant}}/model/model.h",
        sources=FIRMWARE_SOURCES,
        tables=MICRO_FRONTEND_PY,
    output:
        f"{RESULTS}/firmware/{{arch}}/{{variant}}/pipeline/firmware.elf",
    log:
        f"{RESULTS}/logs/pipeline_build_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pipeline_build_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=PIPELINE_VARIANTS,
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        features=config["features"],
    script:
        "../scripts/pipeline_build.py"


rule pipeline_host:
    input:
        model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
        codegen=f"{RESULTS}/firmware/{{arch}}/{{variant}}/codegen.json",
        index=f"{RESULTS}/data/index.json",
        wav=f"{RESULTS}/pipeline/recording.wav",
        placements=f"{RESULTS}/pipeline/recording.json",
    output:
        f"{RESULTS}/variants/{{arch}}/{{variant}}/pipeline_host.json",
    log:
        f"{RESULTS}/logs/pipeline_host_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pipeline_host_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=PIPELINE_VARIANTS,
    threads: 1
    resources:
        mem_mb=1500,
        runtime=15,
    params:
        recognizer=config["recognizer"],
        features=config["features"],
        frontend=FRONTEND_CODE,
        tolerance_ms=PIPE_CFG.get("tolerance_ms", 750),
        timing_runs=PIPE_CFG.get("host_timing_runs", 3),
    script:
        "../scripts/pipeline_host.py"


rule pipeline_device:
    input:
        elf=f"{RESULTS}/firmware/{{arch}}/{{variant}}/pipeline/firmware.elf",
        codegen=f"{RESULTS}/firmware/{{arch}}/{{variant}}/codegen.json",
        index=f"{RESULTS}/data/index.json",
        wav=f"{RESULTS}/pipeline/recording.wav",
        placements=f"{RESULTS}/pipeline/recording.json",
        host=f"{RESULTS}/variants/{{arch}}/{{variant}}/pipeline_host.json",
        pcm=f"{RESULTS}/pipeline/testing_pcm.npz",
        host_outputs=f"{RESULTS}/variants/{{arch}}/{{variant}}/outputs.npy",
    output:
        f"{RESULTS}/firmware/{{arch}}/{{variant}}/pipeline.json",
    log:
        # The raw device transcripts: kept even when the job fails.
        stream=f"{RESULTS}/firmware/{{arch}}/{{variant}}/pipeline_stream.log",
        clips=f"{RESULTS}/firmware/{{arch}}/{{variant}}/pipeline_clips.log",
    benchmark:
        f"{RESULTS}/benchmarks/pipeline_device_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=PIPELINE_VARIANTS,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        recognizer=config["recognizer"],
        features=config["features"],
        tolerance_ms=PIPE_CFG.get("tolerance_ms", 750),
        accuracy_inputs=config["firmware"]["accuracy_inputs"],
    script:
        "../scripts/pipeline_device.py"


rule pipeline_summary:
    input:
        host=[f"{variant_dir(v.arch, v.name)}/pipeline_host.json" for v in PIPELINE_GRID],
        device=[f"{RESULTS}/firmware/{v.arch}/{v.name}/pipeline.json" for v in PIPELINE_GRID],
        placements=f"{RESULTS}/pipeline/recording.json",
    output:
        f"{RESULTS}/pipeline/summary.json",
    log:
        f"{RESULTS}/logs/pipeline_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/pipeline_summary.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        recognizer=config["recognizer"],
        features=config["features"],
    script:
        "../scripts/pipeline_summary.py"
