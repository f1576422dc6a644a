"""The report page: Jinja2 HTML, the same page as PDF, the CSV summary, and build_report which makes all three."""

import csv
from pathlib import Path

from ..plots import Figures
from .context import build_context

REPO = Path(__file__).resolve().parent.parent.parent
TEMPLATES = REPO / "report" / "templates"
CSS = REPO / "report" / "style.css"


def render(ctx, out_html, out_pdf):
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
    env.filters["num"] = lambda v: "n/a" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:,.3g}")
    page = env.get_template("report.html.j2").render(css=CSS.read_text(), **ctx)
    out_html = Path(out_html)
    out_html.write_text(page)
    from weasyprint import HTML

    HTML(string=page, base_url=str(out_html.parent)).write_pdf(str(out_pdf))


def write_summary_csv(rows, path):
    keys = [
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
        "instructions",
        "flash",
        "ram",
    ]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in keys})


def build_report(inputs, config, out_html, out_pdf, out_csv, figures_dir):
    figs = Figures(figures_dir)
    ctx = build_context(inputs, config, figs)
    write_summary_csv(ctx["rows"], out_csv)
    render(ctx, out_html, out_pdf)
