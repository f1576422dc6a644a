# Stage 6: one metrics.json per variant, then the HTML + PDF report over all of them, plus a CSV summary.


rule metrics:
    input:
        host=f"{RESULTS}/variants/{{arch}}/{{variant}}/host.json",
        device=device_metrics,
    output:
        f"{RESULTS}/variants/{{arch}}/{{variant}}/metrics.json",
    log:
        f"{RESULTS}/logs/metrics_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/metrics_{{arch}}_{{variant}}.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/metrics.py"


rule report:
    input:
        index=f"{RESULTS}/data/index.json",
        test_features=f"{RESULTS}/features/testing.npz",
        sizes=expand(f"{RESULTS}/models/{{arch}}/size.json", arch=V.model_ids(config)),
        histories=expand(f"{RESULTS}/models/{{arch}}/history.csv", arch=V.model_ids(config)),
        metrics=all_metrics(),
        model_c=first_model_c(),
    output:
        html=report(f"{RESULTS}/report.html", caption="../report/captions/report.rst", category="Report"),
        pdf=f"{RESULTS}/report.pdf",
        csv=report(f"{RESULTS}/summary.csv", caption="../report/captions/summary.rst", category="Report"),
        figures=report(
            directory(f"{RESULTS}/report_files"),
            patterns=["{name}.png"],
            caption="../report/captions/figures.rst",
            category="Figures",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    script:
        "../scripts/report.py"
