"""Matplotlib set up once for every figure, the collector that saves them, and the generic accuracy/cost plots."""

from pathlib import Path

import numpy as np


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"figure.dpi": 110, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "tinymighty"}
    )
    return plt


class Figures:
    """Collects figures as PNG files next to the report, named deterministically."""

    def __init__(self, out_dir):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.plt = plt()

    def save(self, fig, name):
        path = self.dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
        self.plt.close(fig)
        return f"{self.dir.name}/{path.name}"


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
            ax.annotate(
                p["label"], (p[xkey], 100 * p["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
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
