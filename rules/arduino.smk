# Stage 5c (issue 14): every deployed variant as an Arduino sketch for the Nano 33 BLE Sense (nRF52840), and the
# nRF52840 link check of its C sources (budget errors from the linker, as for mps2-an386); its C++ glue compiled
# against a stand-in for the Arduino API. Flashing and measuring the sketch needs the board: README, "A real board".


rule arduino_sketch:
    input:
        c=f"{RESULTS}/firmware/{{arch}}/{{variant}}/model/model.c",
        h=f"{RESULTS}/firmware/{{arch}}/{{variant}}/model/model.h",
        codegen=f"{RESULTS}/firmware/{{arch}}/{{variant}}/codegen.json",
        index=f"{RESULTS}/data/index.json",
        sources=FIRMWARE_SOURCES,
        tables=MICRO_FRONTEND_PY,
    output:
        directory(f"{RESULTS}/firmware/{{arch}}/{{variant}}/arduino/kws"),
    log:
        f"{RESULTS}/logs/arduino_sketch_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/arduino_sketch_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=INT8_VARIANTS,
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        features=config["features"],
        recognizer=config["recognizer"],
    script:
        "../scripts/arduino_sketch.py"


rule arduino_link:
    input:
        sketch=f"{RESULTS}/firmware/{{arch}}/{{variant}}/arduino/kws",
        sources=FIRMWARE_SOURCES,
    output:
        f"{RESULTS}/firmware/{{arch}}/{{variant}}/arduino/link.json",
    log:
        f"{RESULTS}/logs/arduino_link_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/arduino_link_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=INT8_VARIANTS,
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    script:
        "../scripts/arduino_link.py"
