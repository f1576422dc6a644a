"""The study report: figures (matplotlib), one Jinja2 HTML page, and the same page as PDF (WeasyPrint)."""
import csv
from pathlib import Path

import numpy as np

from .provenance import provenance, read_json

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "report" / "templates"
CSS = REPO / "report" / "style.css"
MCU_CLOCK_HZ = 64_000_000  # nRF52840
# Confusion matrices for the reference models only: one per variant would bury the report.
CONFUSION_VARIANTS = ("float", "ptq_int8", "qat_int8")
# Published reference for the size comparison (Zhang et al., "Hello Edge", 2017, Table 3: DS-CNN small).
PUBLISHED_KWS = {"name": "Hello Edge DS-CNN-S", "params": 38_600, "ops": 5_400_000}
# The original study's figures (../shared/SEED.md: real Speech Commands v2, 4 classes, PyTorch).
SEED_REFERENCE = {"params": 16_652, "macs": 336_000, "flops": 672_004, "float_accuracy": 0.939,
                  "int8_accuracy": 0.933, "float_bytes": 69_288, "int8_bytes": 20_000,
                  "counts": {"training": 10_556, "validation": 1_333, "testing": 1_368}}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
                         "svg.hashsalt": "tinymighty"})
    return plt


class Figures:
    """Collects figures as PNG files next to the report, named deterministically."""

    def __init__(self, out_dir):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.plt = _plt()

    def save(self, fig, name):
        path = self.dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
        self.plt.close(fig)
        return f"{self.dir.name}/{path.name}"


def preprocessing_figure(figs, wav_path, feat_cfg, model_features, name="preprocessing"):
    import librosa

    from .audio import read_wav

    plt = figs.plt
    sr = feat_cfg["sample_rate"]
    y = read_wav(wav_path, sr)
    n_fft = int(sr * feat_cfg["window_ms"] / 1000)
    hop = int(sr * feat_cfg["stride_ms"] / 1000)
    fig, ax = plt.subplots(3, 2, figsize=(10, 8))
    t = np.arange(len(y)) / sr
    ax[0, 0].plot(t, y, lw=0.5)
    ax[0, 0].set(title="Waveform", xlabel="time (s)", ylabel="amplitude")
    spec = np.abs(np.fft.rfft(y))
    ax[0, 1].semilogy(np.fft.rfftfreq(len(y), 1 / sr), spec + 1e-9, lw=0.5)
    ax[0, 1].set(title="Spectrum (whole clip)", xlabel="frequency (Hz)", ylabel="|X(f)|")
    stft = librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=512, hop_length=hop)), ref=np.max)
    ax[1, 0].imshow(stft, origin="lower", aspect="auto", extent=[0, len(y) / sr, 0, sr / 2])
    ax[1, 0].set(title="Spectrogram (dB)", xlabel="time (s)", ylabel="frequency (Hz)")
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop,
                                                             n_mels=feat_cfg["channels"], center=False))
    ax[1, 1].imshow(mel, origin="lower", aspect="auto")
    ax[1, 1].set(title=f"Mel spectrogram ({feat_cfg['channels']} bands, dB)", xlabel="frame", ylabel="mel band")
    mfcc = librosa.feature.mfcc(S=mel, n_mfcc=13)
    ax[2, 0].imshow(mfcc, origin="lower", aspect="auto")
    ax[2, 0].set(title="MFCC (13 coefficients)", xlabel="frame", ylabel="coefficient")
    ax[2, 1].imshow(model_features.T, origin="lower", aspect="auto")
    ax[2, 1].set(title=f"{feat_cfg['kind']} features (model input)", xlabel="frame", ylabel="channel")
    for a in (ax[1, 0], ax[1, 1], ax[2, 0], ax[2, 1]):
        a.grid(False)
    fig.suptitle(Path(wav_path).parent.name + "/" + Path(wav_path).name)
    return figs.save(fig, name)


def curves_figure(figs, arch, history_csv):
    rows = list(csv.DictReader(open(history_csv)))
    ep = [int(r["epoch"]) + 1 for r in rows]
    plt = figs.plt
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
    for key, a in (("accuracy", ax[0]), ("loss", ax[1])):
        a.plot(ep, [float(r[key]) for r in rows], label="training")
        a.plot(ep, [float(r["val_" + key]) for r in rows], label="validation")
        a.set(xlabel="epoch", ylabel=key, title=f"{arch}: {key}")
        a.legend()
    return figs.save(fig, f"curves_{arch}")


def confusion_figure(figs, name, cm, labels):
    plt = figs.plt
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(3.8, 3.3))
    ax.imshow(cm, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=name)
    ax.grid(False)
    return figs.save(fig, f"confusion_{name.replace('/', '_')}")


def scatter_figure(figs, name, points, xkey, xlabel, title, max_labels=12):
    """Accuracy against one cost axis: one colour per variant family, labels while they stay readable."""
    plt = figs.plt
    points = [p for p in points if p.get(xkey) is not None]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    families = sorted({p.get("family") or p["variant"] for p in points})
    for fam in families:
        pts = [p for p in points if (p.get("family") or p["variant"]) == fam]
        ax.scatter([p[xkey] for p in pts], [100 * p["accuracy"] for p in pts], s=22, label=fam)
    if len(points) <= max_labels:
        for p in points:
            ax.annotate(p["label"], (p[xkey], 100 * p["accuracy"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=7, title="family", title_fontsize=7, loc="best")
    return figs.save(fig, name)


def bar_figure(figs, name, labels, series, ylabel, title):
    plt = figs.plt
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(labels))
    for i, (sname, values) in enumerate(series.items()):
        ax.bar(x + i * width, values, width, label=sname)
    ax.set_xticks(x + width * (len(series) - 1) / 2, labels, rotation=30, ha="right")
    ax.set(ylabel=ylabel, title=title)
    if len(series) > 1:
        ax.legend()
    return figs.save(fig, name)


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
    from .variants import model_ids

    archs = model_ids(config)
    sizes = {a: read_json(p) for a, p in zip(archs, inputs["sizes"])}
    hosts = [read_json(p) for p in inputs["metrics"]]
    ctx = {"title": config["report"]["title"], "config": config, "labels": labels, "counts": index["counts"],
           "sizes": sizes, "archs": archs, "published": PUBLISHED_KWS, "seed_ref": SEED_REFERENCE,
           "mcu_clock_mhz": MCU_CLOCK_HZ / 1e6,
           "provenance": provenance(config)}
    # Part 1
    with np.load(inputs["test_features"]) as d:
        x_test = d["x"]
    ctx["preprocessing"] = {}
    for word in config["data"]["wanted_words"][:2]:  # the seed showed one "yes" and one "no"
        rel, pos = _first_clip(index, word)
        if rel is not None:
            ctx["preprocessing"][rel] = preprocessing_figure(figs, Path(index["data_dir"]) / rel, config["features"],
                                                             x_test[pos], name=f"preprocessing_{word}")
    # Part 3
    ctx["curves"] = {a: curves_figure(figs, a, h) for a, h in zip(archs, inputs["histories"])}
    # Parts 4-6: one row per variant
    rows = []
    for h in hosts:
        size = sizes[h["arch"]]["total"]
        dev = h.get("device")
        latency = h.get("host_latency") or {}
        row = {"arch": h["arch"], "variant": h["variant"], "label": f"{h['arch']}/{h['variant']}",
               "family": h.get("family"), "accuracy": h["accuracy"], "tflite_bytes": h.get("tflite_bytes"),
               "gzip_bytes": h.get("gzip_bytes"), "agreement": h.get("agreement_with_float"),
               "host_ms": latency.get("median_ms"), "host_p10": latency.get("p10_ms"),
               "host_p90": latency.get("p90_ms"), "params": h.get("params", size["params"]),
               "nonzero_params": h.get("nonzero_params"), "macs": h.get("macs", size["macs"]),
               "flops": h.get("flops", size["flops"]), "tflm": h.get("tflm"), "per_class": h["per_class"],
               "deployable": h.get("deployable"), "device": dev, "host": h}
        if dev:
            row["instructions"] = dev["instructions"]["median"]
            row["flash"] = dev["flash"]["total"]
            row["ram"] = dev["ram"]["total"]
            row["mcu_ms_est"] = 1000.0 * dev["instructions"]["median"] / MCU_CLOCK_HZ
        rows.append(row)
        if h["variant"] in CONFUSION_VARIANTS:
            ctx.setdefault("confusions", {})[row["label"]] = confusion_figure(figs, row["label"], h["confusion"],
                                                                               labels)
    ctx["rows"] = rows
    ctx["fig_acc_size"] = scatter_figure(figs, "acc_vs_size", rows, "tflite_bytes", "TFLite model size (bytes)",
                                         "Accuracy vs model size")
    ctx["fig_acc_flops"] = scatter_figure(figs, "acc_vs_flops", rows, "flops", "FLOPs per inference",
                                          "Accuracy vs FLOPs")
    ctx["fig_acc_latency"] = scatter_figure(figs, "acc_vs_latency", rows, "host_ms",
                                            "host latency per inference (ms)", "Accuracy vs host latency")
    dev_rows = [r for r in rows if r.get("device")]
    if dev_rows:
        ctx["fig_acc_instr"] = scatter_figure(figs, "acc_vs_instructions", dev_rows, "instructions",
                                              "emulated instructions per inference (QEMU count, not cycles)",
                                              "Accuracy vs emulated MCU instructions")
        names = [r["label"] for r in dev_rows]
        ctx["fig_memory"] = bar_figure(
            figs, "firmware_memory", names,
            {"flash model": [r["device"]["flash"]["model"] for r in dev_rows],
             "flash code": [r["device"]["flash"]["code"] for r in dev_rows],
             "RAM total": [r["device"]["ram"]["total"] for r in dev_rows]}, "bytes", "Firmware flash and RAM")
        ctx["fig_instr"] = bar_figure(figs, "firmware_instructions", names,
                                      {"instructions": [r["instructions"] for r in dev_rows]},
                                      "emulated instructions / inference", "Emulated instructions per variant")
    from . import pruning, quantization

    for study in (quantization, pruning):
        hook = getattr(study, "report_context", None)
        if hook:
            ctx.update(hook(rows, config, figs))
    if inputs.get("model_c"):
        ctx["model_c_excerpt"] = c_excerpt(Path(inputs["model_c"]).read_text())
    return ctx


def render(ctx, out_html, out_pdf):
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v, d=1: "n/a" if v is None else f"{100 * v:.{d}f}%"
    env.filters["ms"] = lambda v: "n/a" if v is None else f"{v:.3f}"
    env.filters["num"] = lambda v: "n/a" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:,.3g}")
    page = env.get_template("report.html.j2").render(css=CSS.read_text(), **ctx)
    out_html = Path(out_html)
    out_html.write_text(page)
    from weasyprint import HTML

    HTML(string=page, base_url=str(out_html.parent)).write_pdf(str(out_pdf))


def write_summary_csv(rows, path):
    keys = ["arch", "variant", "accuracy", "agreement", "params", "nonzero_params", "macs", "flops",
            "tflite_bytes", "gzip_bytes", "host_ms", "instructions", "flash", "ram"]
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
