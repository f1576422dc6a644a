# Stage 6: one metrics.json per variant, then the HTML + PDF report over all of them, plus a CSV summary.
from tinymighty.report.figures import figure_part

# Snakemake's report (`snakemake --report`): figures grouped by the part of the study they belong to.
REPORT_PARTS = {
    "preprocessing": "1. Preprocessing",
    "training": "3. Training",
    "deployment": "4. Deployment",
    "quantization": "5. Quantization",
    "pruning": "6. Pruning",
}


rule metrics:
    input:
        host=f"{RESULTS}/variants/{{arch}}/{{variant}}/host.json",
        device=device_metrics,
        holdout=holdout_metrics,
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
        pipeline=pipeline_summary(),
    output:
        html=report(f"{RESULTS}/report.html", caption="../report/captions/report.rst", category="Report"),
        pdf=report(f"{RESULTS}/report.pdf", caption="../report/captions/report.rst", category="Report"),
        csv=report(f"{RESULTS}/summary.csv", caption="../report/captions/summary.rst", category="Report"),
        # One caption file for every figure (it picks the text by file name); one category per part of the study.
        figures=report(
            directory(f"{RESULTS}/report_files"),
            patterns=["{name}.png"],
            caption="../report/captions/figures.rst",
            category=lambda w: REPORT_PARTS[figure_part(w.name)],
            labels=lambda w: {"figure": w.name},
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
    params:
        budgets=config.get("budgets"),
    script:
        "../scripts/report.py"
