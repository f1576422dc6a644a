"""Everything the report shows, computed from the workflow's result files; the reference figures it compares
with are data in report/reference/seed_study.yaml."""

from pathlib import Path

import numpy as np
import yaml

from ..budgets import BOARD, CLOCK_HZ, FLASH_BYTES, RAM_BYTES
from ..provenance import provenance, read_json
from ..variant import model_ids
from .figures import (
    confusion_figure,
    curves_figure,
    device_cost_figure,
    family_name,
    family_order,
    preprocessing_figure,
    tradeoff_figure,
)
from .generalisation import generalisation
from .pipeline import pipeline_context
from .recommend import budgets_from_config
from .summary import front_page

REFERENCE = Path(__file__).resolve().parent.parent.parent / "report" / "reference" / "seed_study.yaml"
# Confusion matrices for the reference models only: one per variant would bury the report.
CONFUSION_VARIANTS = ("float", "ptq_int8", "qat_int8")


def reference(path=REFERENCE):
    """The original study's figures and the published model the size estimate compares with (with sources)."""
    return yaml.safe_load(Path(path).read_text())


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


# Held-out voices (issue 13): copied from metrics.json's `holdout` into each row as holdout_<key>.
HOLDOUT_KEYS = ("accuracy", "balanced_accuracy", "unknown_false_accept")


def variant_row(h, size):
    """One variant as the report and summary.csv see it, from its metrics.json (and the model's size)."""
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
        "balanced_accuracy": h.get("balanced_accuracy"),
        "unknown_false_accept": h.get("unknown_false_accept"),
        **{f"holdout_{k}": (h.get("holdout") or {}).get(k) for k in HOLDOUT_KEYS},
        "deployable": h.get("deployable"),
        "device": dev,
        "host": h,
    }
    if dev:
        # A board that counts cycles (the Arduino sketch) gives cycles and time at its clock; QEMU gives emulated
        # instructions, whose ms at the board's clock are an estimate. `instructions` is the per-inference count
        # either way, so rankings work on both, and `time_unit` says which it is. The median over the timed test
        # clips is the figure; min and max show how much it depends on the clip.
        cycles = dev.get("cycles")
        row["time_unit"] = "cycles" if cycles else "instructions"
        row["board"] = cycles["board"] if cycles else "mps2_an386 (QEMU)"
        count = cycles or dev["instructions"]
        row["instructions"] = count["median"]
        row["instructions_min"] = count.get("min")
        row["instructions_max"] = count.get("max")
        row["instructions_inputs"] = count.get("inputs", 1)
        row["flash"] = dev["flash"]["total"]
        row["ram"] = dev["ram"]["total"]
        row["mcu_ms_est"] = cycles["ms_median"] if cycles else 1000.0 * row["instructions"] / CLOCK_HZ
        row["device_accuracy"] = dev.get("accuracy")
        row["device_matches_tflm"] = dev.get("matches_host")
    return row


def cross_check(rows):
    """tf.lite's reference kernels against TFLM over the int8 variants: how many differ, by up to how much."""
    checked = [r for r in rows if r.get("tflm")]
    differ = [r for r in checked if not r["tflm"]["bitexact"]]
    return {
        "checked": len(checked),
        "differ": len(differ),
        "max_lsb": max((r["tflm"]["max_abs_diff"] for r in differ), default=0),
        "predictions": sum(r["tflm"].get("predictions_differing", 0) for r in checked),
        "variants_with_prediction_changes": sum(1 for r in checked if r["tflm"].get("predictions_differing")),
    }


def build_context(inputs, config, figs):
    """Everything the template shows, computed from the workflow's result files."""
    index = read_json(inputs["index"])
    labels = index["labels"]
    archs = model_ids(config)
    sizes = {a: read_json(p) for a, p in zip(archs, inputs["sizes"], strict=False)}
    hosts = [read_json(p) for p in inputs["metrics"]]
    ref = reference()
    budgets = budgets_from_config(config)
    ctx = {
        "title": config["report"]["title"],
        "config": config,
        "labels": labels,
        "counts": index["counts"],
        "sizes": sizes,
        "archs": archs,
        "published": ref["published_kws"],
        "seed_ref": ref["original_study"],
        "board": BOARD,
        "mcu_clock_mhz": CLOCK_HZ / 1e6,
        "flash_mb": FLASH_BYTES / 2**20,
        "ram_kb": RAM_BYTES / 2**10,
        "provenance": provenance(config),
        # Issue 13's held-out-voice evaluation fills this; the template includes generalisation.html.j2 when set.
        "generalisation": None,
    }
    # Part 1
    with np.load(inputs["test_features"]) as d:
        x_test = d["x"]
    ctx["input_shape"] = tuple(int(n) for n in x_test.shape[1:])
    ctx["input_values"] = int(np.prod(x_test.shape[1:]))
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
    rows = [variant_row(h, sizes[h["arch"]]["total"]) for h in hosts]
    ctx["confusions"] = {
        r["label"]: confusion_figure(figs, r["label"], r["host"]["confusion"], labels)
        for r in rows
        if r["variant"] in CONFUSION_VARIANTS
    }
    ctx["rows"] = rows
    ctx["generalisation"] = generalisation(rows, config)  # test split vs voices never heard
    order = family_order(rows)
    ctx["families"] = [
        {"key": fam, "name": family_name(fam), "rows": [r for r in rows if (r["family"] or r["variant"]) == fam]}
        for fam in order
    ]
    ctx["xcheck"] = cross_check(rows)
    fl = next((r for r in rows if r["variant"] == "float"), None)
    ctx["fig_tradeoffs"] = tradeoff_figure(figs, rows, fl["accuracy"] if fl else None)
    dev_rows = [r for r in rows if r.get("device")]
    # The device section speaks of cycles only when every deployed variant was measured on a cycle-counting board.
    ctx["device_cycles"] = bool(dev_rows) and all(r["time_unit"] == "cycles" for r in dev_rows)
    ctx["device_boards"] = sorted({r["board"] for r in dev_rows})
    if dev_rows:
        ctx["fig_device"] = device_cost_figure(figs, dev_rows, CLOCK_HZ, multi_arch=len(archs) > 1)
    from ..pruning import report as preport
    from ..quantization import report as qreport

    ctx.update(qreport.report_context(rows, config, figs))
    ctx.update(preport.report_context(rows, config, figs, family_name))
    ctx["front"] = front_page(rows, config, budgets, archs[0], config["data"]["source"])
    roles = {h["row"]["label"]: h["role"] for h in ctx["front"]["headline"]}
    ctx.update(pipeline_context(inputs, rows, config, figs, roles))  # the keyword spotter end to end (issue 10)
    if inputs.get("model_c"):
        ctx["model_c_excerpt"] = c_excerpt(Path(inputs["model_c"]).read_text(), rows_per_array=1)
    return ctx
