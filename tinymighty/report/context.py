"""Everything the report shows, computed from the workflow's result files, and the published reference figures."""

from pathlib import Path

import numpy as np

from ..budgets import CLOCK_HZ, FLASH_BYTES, RAM_BYTES
from ..plots import bar_figure, scatter_figure
from ..provenance import provenance, read_json
from .figures import confusion_figure, curves_figure, preprocessing_figure

# Confusion matrices for the reference models only: one per variant would bury the report.
CONFUSION_VARIANTS = ("float", "ptq_int8", "qat_int8")
# Published reference for the size comparison (Zhang et al., "Hello Edge", 2017, Table 3: DS-CNN small).
PUBLISHED_KWS = {"name": "Hello Edge DS-CNN-S", "params": 38_600, "ops": 5_400_000}
# The original study's figures (../shared/SEED.md: real Speech Commands v2, 4 classes, PyTorch).
SEED_REFERENCE = {
    "params": 16_652,
    "macs": 336_000,
    "flops": 672_004,
    "float_accuracy": 0.939,
    "int8_accuracy": 0.933,
    "float_bytes": 69_288,
    "int8_bytes": 20_000,
    "counts": {"training": 10_556, "validation": 1_333, "testing": 1_368},
}


def _first_clip(index, word):
    """(path relative to the dataset, position in the test split) of the first test clip of `word`."""
    for pos, e in enumerate(index["splits"]["testing"]):
        if e["label"] == word and e["file"]:
            return e["file"], pos
    return None, None


def c_excerpt(text, rows_per_array=2):
    """The generated C with each weight array cut to its first rows: the structure, not 16,000 numbers."""
    out, rows = [], 0
    for line in text.splitlines():
        data_row = line.startswith("    ") and line.strip()[:1] in "-0123456789"
        if not data_row:
            rows = 0
            out.append(line)
            continue
        rows += 1
        if rows <= rows_per_array:
            out.append(line)
        elif rows == rows_per_array + 1:
            out.append("    /* ... */")
    return "\n".join(out)


def build_context(inputs, config, figs):
    """Everything the template shows, computed from the workflow's result files."""
    index = read_json(inputs["index"])
    labels = index["labels"]
    from ..variant import model_ids

    archs = model_ids(config)
    sizes = {a: read_json(p) for a, p in zip(archs, inputs["sizes"], strict=False)}
    hosts = [read_json(p) for p in inputs["metrics"]]
    ctx = {
        "title": config["report"]["title"],
        "config": config,
        "labels": labels,
        "counts": index["counts"],
        "sizes": sizes,
        "archs": archs,
        "published": PUBLISHED_KWS,
        "seed_ref": SEED_REFERENCE,
        "mcu_clock_mhz": CLOCK_HZ / 1e6,
        "flash_mb": FLASH_BYTES / 2**20,
        "ram_kb": RAM_BYTES / 2**10,
        "provenance": provenance(config),
    }
    # Part 1
    with np.load(inputs["test_features"]) as d:
        x_test = d["x"]
    ctx["preprocessing"] = {}
    for word in config["data"]["wanted_words"][:2]:  # the seed showed one "yes" and one "no"
        rel, pos = _first_clip(index, word)
        if rel is not None:
            ctx["preprocessing"][rel] = preprocessing_figure(
                figs, Path(index["data_dir"]) / rel, config["features"], x_test[pos], name=f"preprocessing_{word}"
            )
    # Part 3
    ctx["curves"] = {a: curves_figure(figs, a, h) for a, h in zip(archs, inputs["histories"], strict=False)}
    # Parts 4-6: one row per variant
    rows = []
    for h in hosts:
        size = sizes[h["arch"]]["total"]
        dev = h.get("device")
        latency = h.get("host_latency") or {}
        row = {
            "arch": h["arch"],
            "variant": h["variant"],
            "label": f"{h['arch']}/{h['variant']}",
            "family": h.get("family"),
            "accuracy": h["accuracy"],
            "tflite_bytes": h.get("tflite_bytes"),
            "gzip_bytes": h.get("gzip_bytes"),
            "agreement": h.get("agreement_with_float"),
            "host_ms": latency.get("median_ms"),
            "host_p10": latency.get("p10_ms"),
            "host_p90": latency.get("p90_ms"),
            "params": h.get("params", size["params"]),
            "nonzero_params": h.get("nonzero_params"),
            "macs": h.get("macs", size["macs"]),
            "flops": h.get("flops", size["flops"]),
            "tflm": h.get("tflm"),
            "per_class": h["per_class"],
            "deployable": h.get("deployable"),
            "device": dev,
            "host": h,
        }
        if dev:
            row["instructions"] = dev["instructions"]["median"]
            row["flash"] = dev["flash"]["total"]
            row["ram"] = dev["ram"]["total"]
            row["mcu_ms_est"] = 1000.0 * dev["instructions"]["median"] / CLOCK_HZ
        rows.append(row)
        if h["variant"] in CONFUSION_VARIANTS:
            ctx.setdefault("confusions", {})[row["label"]] = confusion_figure(
                figs, row["label"], h["confusion"], labels
            )
    ctx["rows"] = rows
    ctx["fig_acc_size"] = scatter_figure(
        figs, "acc_vs_size", rows, "tflite_bytes", "TFLite model size (bytes)", "Accuracy vs model size"
    )
    ctx["fig_acc_flops"] = scatter_figure(
        figs, "acc_vs_flops", rows, "flops", "FLOPs per inference", "Accuracy vs FLOPs"
    )
    ctx["fig_acc_latency"] = scatter_figure(
        figs, "acc_vs_latency", rows, "host_ms", "host latency per inference (ms)", "Accuracy vs host latency"
    )
    dev_rows = [r for r in rows if r.get("device")]
    if dev_rows:
        ctx["fig_acc_instr"] = scatter_figure(
            figs,
            "acc_vs_instructions",
            dev_rows,
            "instructions",
            "emulated instructions per inference (QEMU count, not cycles)",
            "Accuracy vs emulated MCU instructions",
        )
        names = [r["label"] for r in dev_rows]
        ctx["fig_memory"] = bar_figure(
            figs,
            "firmware_memory",
            names,
            {
                "flash model": [r["device"]["flash"]["model"] for r in dev_rows],
                "flash code": [r["device"]["flash"]["code"] for r in dev_rows],
                "RAM total": [r["device"]["ram"]["total"] for r in dev_rows],
            },
            "bytes",
            "Firmware flash and RAM",
        )
        ctx["fig_instr"] = bar_figure(
            figs,
            "firmware_instructions",
            names,
            {"instructions": [r["instructions"] for r in dev_rows]},
            "emulated instructions / inference",
            "Emulated instructions per variant",
        )
    from ..pruning import report as preport
    from ..quantization import report as qreport

    for study in (qreport, preport):
        hook = getattr(study, "report_context", None)
        if hook:
            ctx.update(hook(rows, config, figs))
    if inputs.get("model_c"):
        ctx["model_c_excerpt"] = c_excerpt(Path(inputs["model_c"]).read_text())
    return ctx
