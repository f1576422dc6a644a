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


def _eng(axis):
    """Counts as 1.5M / 300k instead of an offset like '1e6' that collides with the label."""
    from matplotlib.ticker import EngFormatter

    axis.set_major_formatter(EngFormatter(sep=""))


def accuracy_panels(figs, name, points, panels, title, groups, ncols=2, floor_points=25.0, reference=None):
    """Small multiples of accuracy against cost: one panel per (key, label) in `panels`, one colour per group.

    points: dicts with "accuracy", "group" and the panels' keys. groups: the groups in legend order, as
    (key, display name). The y axis starts at most `floor_points` below the reference accuracy (default: the
    best point); points below that are drawn on the bottom edge as down-pointing triangles and counted."""
    plt = figs.plt
    rows = (len(panels) + ncols - 1) // ncols
    fig = plt.figure(figsize=(7.4, 2.3 * rows + 0.7))
    grid = fig.add_gridspec(rows + 1, ncols, height_ratios=[1] * rows + [0.22])
    axes = np.empty((rows, ncols), dtype=object)
    for i in range(rows):
        for j in range(ncols):
            axes[i, j] = fig.add_subplot(grid[i, j], sharey=axes[0, 0] if (i, j) != (0, 0) else None)
    top = 100 * max(p["accuracy"] for p in points)
    ref = 100 * reference if reference is not None else top
    lo = max(min(100 * p["accuracy"] for p in points) - 1.0, ref - floor_points)
    colours = {g: f"C{i % 10}" for i, (g, _) in enumerate(groups)}
    for ax, (key, label) in zip(axes.flat, panels, strict=False):
        pts = [p for p in points if p.get(key) is not None]
        clipped = 0
        for g, _name in groups:
            mine = [p for p in pts if p["group"] == g]
            inside = [p for p in mine if 100 * p["accuracy"] >= lo]
            below = [p for p in mine if 100 * p["accuracy"] < lo]
            clipped += len(below)
            ax.scatter([p[key] for p in inside], [100 * p["accuracy"] for p in inside], s=16, color=colours[g])
            ax.scatter([p[key] for p in below], [lo + 0.4] * len(below), s=22, marker="v", color=colours[g])
        if reference is not None:
            ax.axhline(ref, color="k", ls="--", lw=0.8)
        ax.set(xlabel=label)
        ax.set_ylim(lo, top + 1.0)
        if "log scale" in label:
            from matplotlib.ticker import LogLocator, NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_minor_formatter(NullFormatter())
        _eng(ax.xaxis)
        if clipped:
            ax.annotate(
                f"\u25bc {clipped} below {lo:.0f}%", (0.99, 0.02), xycoords="axes fraction", ha="right", fontsize=7
            )
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for i, ax in enumerate(axes.flat):
        if i % ncols:
            ax.tick_params(labelleft=False)
        else:
            ax.set_ylabel("test accuracy (%)")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=colours[g], label=gname)
        for g, gname in groups
        if any(p["group"] == g for p in points)
    ]
    if reference is not None:
        handles.append(plt.Line2D([], [], ls="--", color="k", lw=0.8, label="float model"))
    legend = fig.add_subplot(grid[rows, :])
    legend.axis("off")
    legend.legend(handles=handles, loc="center", ncol=min(5, len(handles)), fontsize=7.5, frameon=False)
    fig.suptitle(title, fontsize=10)
    return figs.save(fig, name)


def grouped_barh(figs, name, groups, panels, title):
    """Horizontal bars, one row per item, items grouped under bold group headings: labels stay readable however
    many items there are. groups: [(group name, [(label, {series: value})])]. panels: [(title, [(series, colour,
    legend label)], x label, secondary)] where series in one panel stack; secondary is None or (label, forward,
    inverse) for a second x axis on top."""
    plt = figs.plt
    slots, labels, heads = [], [], []
    y = 0
    for gname, items in groups:
        heads.append(y)
        labels.append(gname)
        slots.append(None)
        y += 1
        for label, values in items:
            labels.append(label)
            slots.append(values)
            y += 1
    height = 0.125 * len(slots) + 1.1
    fig, axes = plt.subplots(1, len(panels), figsize=(7.4, height), sharey=True, squeeze=False)
    ys = list(range(len(slots)))
    for ax, (ptitle, series, xlabel, secondary) in zip(axes[0], panels, strict=False):
        left = [0.0] * len(slots)
        for key, colour, legend in series:
            vals = [(v or {}).get(key) or 0 for v in slots]
            ax.barh(ys, vals, left=left, height=0.72, color=colour, label=legend)
            left = [a + b for a, b in zip(left, vals, strict=False)]
        ax.set(title=ptitle, xlabel=xlabel)
        ax.title.set_fontsize(8.5)
        _eng(ax.xaxis)
        ax.grid(axis="y", visible=False)
        for h in heads[1:]:
            ax.axhline(h - 0.5, color="#999", lw=0.6)
        if len(series) > 1:  # room on the right for the legend, clear of the bars
            ax.set_xlim(0, 1.75 * max(left))
            ax.legend(fontsize=7, loc="center right")
        if secondary:
            slabel, forward, inverse = secondary
            top = ax.secondary_xaxis("top", functions=(forward, inverse))
            top.set_xlabel(slabel, fontsize=7.5)
            top.tick_params(labelsize=7)
    ax0 = axes[0, 0]
    ax0.set_yticks(ys, labels)
    ax0.set_ylim(len(slots) - 0.5, -0.5)
    for i, tick in enumerate(ax0.get_yticklabels()):
        tick.set_fontsize(7.5)
        if slots[i] is None:
            tick.set_fontweight("bold")
    fig.suptitle(title, fontsize=10)
    return figs.save(fig, name)
