# Stage 6: the HTML + PDF report over every result file, plus a CSV summary.


rule report:
    input:
        index=f"{RESULTS}/data/index.json",
        test_features=f"{RESULTS}/features/testing.npz",
        sizes=expand(f"{RESULTS}/models/{{arch}}/size.json", arch=config["train"]["architectures"]),
        histories=expand(f"{RESULTS}/models/{{arch}}/history.csv", arch=config["train"]["architectures"]),
        hosts=all_host_metrics(),
        devices=all_device_metrics(),
    output:
        html=f"{RESULTS}/report.html",
        pdf=f"{RESULTS}/report.pdf",
        csv=f"{RESULTS}/summary.csv",
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv",
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/report.py"
