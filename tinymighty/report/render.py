"""The report page: Jinja2 HTML, the same page as PDF, the CSV summary, and build_report which makes all three."""

import csv
from pathlib import Path

from ..plots import Figures
from .context import build_context

REPO = Path(__file__).resolve().parent.parent.parent
TEMPLATES = REPO / "report" / "templates"
CSS = REPO / "report" / "style.css"


def instructions_spread(row):
    """'±0.27%': the largest distance of one timed clip's instruction count from the median, relative to it;
    '' when only one clip was timed."""
    med, lo, hi = row.get("instructions"), row.get("instructions_min"), row.get("instructions_max")
    if not med or lo is None or hi is None or (row.get("instructions_inputs") or 1) < 2:
        return ""
    return f"\u00b1{100 * max(med - lo, hi - med) / med:.2f}%"


def render(ctx, out_html, out_pdf=None):
    """The page as HTML, and as PDF unless out_pdf is None."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v, d=1: "n/a" if v is None else f"{100 * v:.{d}f}%"
    env.filters["ms"] = lambda v: "n/a" if v is None else f"{v:.3f}"
    env.filters["spread"] = instructions_spread
    env.filters["num"] = lambda v: "n/a" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:,.3g}")
    page = env.get_template("report.html.j2").render(css=CSS.read_text(), **ctx)
    out_html = Path(out_html)
    out_html.write_text(page)
    if out_pdf is None:
        return
    from weasyprint import HTML

    HTML(string=page, base_url=str(out_html.parent)).write_pdf(str(out_pdf))


# summary.csv: one row per variant. `accuracy` is TFLM's for int8 models (the runtime the device equals);
# the tflite_ref_* columns are tf.lite's reference kernels as a cross-check. `./tbm recommend` reads
# accuracy, deployable, flash, ram and instructions (cycles on a board: time_unit).
SUMMARY_KEYS = [
    "arch",
    "variant",
    "accuracy",
    "agreement",
    "params",
    "nonzero_params",
    "macs",
    "flops",
    "tflite_bytes",
    "gzip_bytes",
    "host_ms",
    "instructions",  # the median over the timed test clips (instructions_inputs), and their range
    "instructions_min",
    "instructions_max",
    "instructions_inputs",
    "time_unit",  # what `instructions` counts: QEMU's emulated instructions, or a board's cycles
    "board",
    "flash",
    "ram",
    "family",
    "deployable",
    "mcu_ms_est",
    "device_accuracy",
    "device_matches_tflm",
    "tflite_ref_accuracy",
    "tflite_ref_outputs_differing",
    "tflite_ref_max_lsb",
    # Figures a class mix cannot flatter, on the test split and on the held-out voices (issue 13).
    "balanced_accuracy",
    "unknown_false_accept",
    "holdout_accuracy",
    "holdout_balanced_accuracy",
    "holdout_unknown_false_accept",
]


def summary_record(r):
    t = r.get("tflm") or {}
    return {
        **{k: r.get(k) for k in SUMMARY_KEYS},
        "tflite_ref_accuracy": t.get("reference_accuracy"),
        "tflite_ref_outputs_differing": t.get("rows_differing"),
        "tflite_ref_max_lsb": t.get("max_abs_diff"),
    }


def write_summary_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, SUMMARY_KEYS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(summary_record(r))


def build_report(inputs, config, out_html, out_pdf, out_csv, figures_dir):
    figs = Figures(figures_dir)
    figs.plt.rcParams["savefig.dpi"] = 150  # sharp at the printed size (A4 text width)
    ctx = build_context(inputs, config, figs)
    write_summary_csv(ctx["rows"], out_csv)
    render(ctx, out_html, out_pdf)
