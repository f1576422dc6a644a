"""The report's pruning section: accuracy against parameters, FLOPs, latency and MCU instructions, the norm
comparison, the Pareto fronts, and findings computed from the measurements (report/templates/pruning.html.j2).
Every finding sentence is chosen by the data: it says the opposite when the measurements say the opposite."""

import math

import numpy as np

from .grid import FAMILIES, FAMILY_2BY4, FAMILY_PQAT, FAMILY_STRUCTURED, FAMILY_UNSTRUCTURED, MODES, NORMS

MODE_LABELS = {"os": "no fine-tuning (one-shot)", "ft": "with fine-tuning"}
NORM_LABELS = {"l1": "L1", "l2": "L2", "linf": "L\u221e"}
INSTR_LABEL = "emulated instructions / inference (QEMU)"


def _dense_instructions(row):
    """Instructions of the same weights run by the dense kernels, when the firmware measured them separately
    (it does for variants it deployed with the sparse encoding: device["dense_kernels"])."""
    dev = row.get("device") or {}
    dense = dev.get("dense_kernels") or {}
    v = dense.get("instructions_median", dev.get("instructions_dense"))
    if isinstance(v, dict):
        v = v.get("median")
    if v is None and dev and not _sparse_layers(row):
        v = row.get("instructions")  # deployed with dense kernels only: that is the dense-kernel count
    return v


def _sparse_layers(row):
    layers = (((row.get("device") or {}).get("codegen") or {}).get("layers")) or []
    return [f"{l.get('index', i)}:{l.get('op', '?')}" for i, l in enumerate(layers) if l.get("encoding") == "sparse"]


SHORT_OPS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise conv", "FULLY_CONNECTED": "dense"}


def _short_ops(layers):
    """["4:CONV_2D", "6:FULLY_CONNECTED"] -> "conv, dense" (for a table cell)."""
    ops = [SHORT_OPS.get(x.split(":", 1)[-1], x.split(":", 1)[-1].lower()) for x in layers]
    return ", ".join(ops) if ops else "none"


def _prow(r):
    h = r.get("host") or {}
    return {
        "label": r["label"],
        "arch": r["arch"],
        "variant": r["variant"],
        "family": r.get("family"),
        "mode": h.get("mode"),
        "accuracy": r["accuracy"],
        "params": r.get("params"),
        "nonzero_params": r.get("nonzero_params"),
        "macs": r.get("macs"),
        "flops": r.get("flops"),
        "tflite_bytes": r.get("tflite_bytes"),
        "gzip_bytes": r.get("gzip_bytes"),
        "host_ms": r.get("host_ms"),
        "instructions": r.get("instructions"),
        "instructions_dense": _dense_instructions(r),
        "flash": r.get("flash"),
        "flash_model": ((r.get("device") or {}).get("flash") or {}).get("model"),
        "flash_model_dense": ((r.get("device") or {}).get("dense_kernels") or {}).get("flash_model"),
        "sparse_layers": _sparse_layers(r),
        "sparsity_target": h.get("sparsity_target"),
        "sparsity_overall": h.get("sparsity_overall"),
        "sparsity_achieved": h.get("sparsity_achieved"),
        "tflite_sparsity": h.get("tflite_sparsity"),
        "norm": h.get("norm"),
        "keep": h.get("keep"),
        "out_of": h.get("out_of"),
        "kept_channels": h.get("kept_channels"),
        "filter_norms": h.get("filter_norms"),
        "pattern": h.get("pattern"),
        "methods": h.get("methods"),
        "fine_tuned": h.get("fine_tuned"),
        "deployable": r.get("deployable"),
        "n": h.get("n"),
        "host_ref_ms": (h.get("host_latency_ref") or {}).get("median_ms"),
        "host_ref_unpruned_ms": (h.get("host_latency_ref_unpruned") or {}).get("median_ms"),
    }


def _curve(ax, points, xkey, mode, tag=None, **kw):
    pts = sorted((p for p in points if p.get(xkey) is not None and p["mode"] == mode), key=lambda p: p[xkey])
    if not pts:
        return
    xs, ys = [p[xkey] for p in pts], [100 * p["accuracy"] for p in pts]
    style = {"os": dict(marker="o", ls="--", color="tab:orange"), "ft": dict(marker="s", ls="-", color="tab:blue")}
    ax.plot(xs, ys, label=kw.pop("label", MODE_LABELS[mode]), **{**style[mode], **kw})
    if tag:
        for p, x, y in zip(pts, xs, ys, strict=False):
            ax.annotate(tag(p), (x, y), fontsize=6.5, xytext=(3, 3), textcoords="offset points")


def _eng(ax):
    """Counts on the x axis as 1.5M / 300k instead of an offset like '1e6' that collides with the label."""
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def _reference(ax, refs, xkey):
    """Mark the unpruned models (float, dense int8) for comparison."""
    for r, m in ((refs.get("float"), "*"), (refs.get("ptq_int8"), "D")):
        if r and r.get(xkey) is not None:
            ax.scatter(
                [r[xkey]],
                [100 * r["accuracy"]],
                marker=m,
                s=45,
                color="black",
                zorder=5,
                label=f"unpruned {r['variant']}",
            )


def pareto_front(points, xkey):
    """Indices of the points no other point beats on both (lower x, higher accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][xkey], -points[i]["accuracy"]))
    front, best = [], -1.0
    for i in order:
        if points[i]["accuracy"] > best:
            front.append(i)
            best = points[i]["accuracy"]
    return front


def _pareto_axes(ax, points, xkey, xlabel, title, family_name):
    pts = [p for p in points if p.get(xkey) is not None]
    if not pts:
        ax.set_visible(False)
        return []
    front = pareto_front(pts, xkey)
    families = sorted({p["family"] or "other" for p in pts})
    for i, fam in enumerate(families):
        mine = [p for p in pts if (p["family"] or "other") == fam]
        ax.scatter(
            [p[xkey] for p in mine],
            [100 * p["accuracy"] for p in mine],
            s=18,
            color=f"C{i % 10}",
            alpha=0.75,
            label=family_name(fam),
        )
    fx = [pts[i][xkey] for i in front]
    fy = [100 * pts[i]["accuracy"] for i in front]
    ax.step(fx, fy, where="post", color="black", lw=1.2, label="Pareto frontier")
    ax.scatter(fx, fy, s=60, facecolors="none", edgecolors="black", zorder=5)
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=6.5, loc="lower right")
    _eng(ax)
    return [pts[i]["label"] for i in front]


def report_context(rows, config, figs, family_name=str):
    """Figures, tables and the answers for the report's pruning section (report/templates/pruning.html.j2).
    `family_name` spells a variant family as the report prints it (the legend of the Pareto view)."""
    cfg = config.get("pruning") or {}
    prows = sorted(
        (_prow(r) for r in rows if r.get("family") in FAMILIES),
        key=lambda p: (
            p["arch"],
            FAMILIES.index(p["family"]),
            p.get("norm") or "",
            -(p.get("keep") or 0),
            p.get("sparsity_target") or 0,
            p["mode"] or "",
        ),
    )
    if not cfg.get("enabled") or not prows:
        return {"pruning": {"enabled": False}}
    plt = figs.plt
    threshold = (config.get("firmware") or {}).get("sparse_threshold")
    st = cfg.get("structured") or {}
    thr = fall_points(config)
    out = {
        "enabled": True,
        "rows": prows,
        "archs": {},
        "config": cfg,
        "sparse_threshold": threshold,
        "fall_points": f"{thr:g} point" + ("" if thr == 1 else "s"),
    }
    for arch in sorted({p["arch"] for p in prows}):
        a = {}
        refs = {r["variant"]: _prow(r) for r in rows if r["arch"] == arch and r["variant"] in ("float", "ptq_int8")}
        mine = [p for p in prows if p["arch"] == arch]
        unst = [p for p in mine if p["family"] == FAMILY_UNSTRUCTURED]
        chan = [p for p in mine if p["family"] == FAMILY_STRUCTURED and p["norm"] == st.get("norm")]
        cmp_ = [p for p in mine if p["family"] == FAMILY_STRUCTURED and p["keep"] == st.get("compare_keep")]
        has_dev = any(p.get("instructions") is not None for p in mine)
        sparsity_tag_ = lambda p: f"{100 * p['sparsity_target']:.0f}%"  # noqa: E731
        keep_tag = lambda p: f"{p['keep']}/{p['out_of']}"  # noqa: E731

        # Accuracy vs non-zero parameters: unstructured and structured side by side.
        fig, ax = plt.subplots(1, 2, figsize=(7.4, 3.2), sharey=True)
        for mode in MODES:
            _curve(ax[0], unst, "nonzero_params", mode, sparsity_tag_)
            _curve(ax[1], chan, "nonzero_params", mode, keep_tag)
        for x, t in (
            (ax[0], "Unstructured (labels: sparsity)"),
            (ax[1], f"Structured, {NORM_LABELS.get(st.get('norm'), '')} norm (labels: filters kept)"),
        ):
            _reference(x, refs, "nonzero_params")
            x.set(xlabel="non-zero parameters (count)", title=t)
            _eng(x)
            x.legend(fontsize=7)
        ax[0].set_ylabel("test accuracy (%)")
        a["fig_params"] = figs.save(fig, f"pruning_acc_vs_params_{arch}")

        # Structured: accuracy vs FLOPs, host latency (optimised and reference kernels), MCU instructions.
        if chan:
            unpruned_ref = [p["host_ref_unpruned_ms"] for p in chan if p.get("host_ref_unpruned_ms")]
            if unpruned_ref and refs.get("ptq_int8"):
                refs["ptq_int8"]["host_ref_ms"] = float(np.median(unpruned_ref))
            panels = [
                ("flops", "FLOPs per inference (count)", "FLOPs"),
                ("host_ms", "host latency per inference (ms)", "desktop CPU runtime\n(TFLite default kernels)"),
                ("host_ref_ms", "host latency per inference (ms)", "desktop CPU runtime\n(TFLite reference kernels)"),
                ("instructions", INSTR_LABEL, "MCU runtime (emulated)"),
            ]
            if not has_dev:
                panels = panels[:3]
            # Small multiples, two per row: readable at the printed width.
            rows_ = (len(panels) + 1) // 2
            fig, ax = plt.subplots(rows_, 2, figsize=(7.4, 2.9 * rows_ + 0.4), sharey=True, squeeze=False)
            for x, (key, xlabel, title) in zip(ax.flat, panels, strict=False):
                for mode in MODES:
                    _curve(x, chan, key, mode, keep_tag)
                _reference(x, refs, key)
                x.set(xlabel=xlabel, title=f"accuracy vs {title}".replace("\n", " "))
                x.title.set_fontsize(8.5)
                if key in ("flops", "instructions"):
                    _eng(x)
            for x in ax.flat[len(panels) :]:
                x.set_visible(False)
            ax.flat[0].legend(fontsize=7)
            for row in ax:
                row[0].set_ylabel("test accuracy (%)")
            fig.suptitle("Structured (channel) pruning, pruned channels removed", fontsize=9)
            a["fig_structured_cost"] = figs.save(fig, f"pruning_structured_cost_{arch}")

        # Unstructured: accuracy vs instructions, dense vs sparse kernels.
        if unst and has_dev:
            fig, ax = plt.subplots(figsize=(7.4, 3.8))
            for mode in MODES:
                _curve(
                    ax,
                    unst,
                    "instructions",
                    mode,
                    sparsity_tag_,
                    label=f"{MODE_LABELS[mode]}, as deployed (sparse kernels above the threshold)",
                )
                if any(p["instructions_dense"] is not None for p in unst):
                    _curve(
                        ax,
                        unst,
                        "instructions_dense",
                        mode,
                        sparsity_tag_,
                        label=f"{MODE_LABELS[mode]}, dense kernels",
                        alpha=0.45,
                        marker="x",
                    )
            ref = refs.get("ptq_int8")
            if ref and ref.get("instructions"):
                ax.axvline(ref["instructions"], color="gray", ls=":", lw=1)
                ax.annotate(
                    "dense int8 (ptq_int8)",
                    (ref["instructions"], ax.get_ylim()[0]),
                    fontsize=7,
                    rotation=90,
                    xytext=(3, 3),
                    textcoords="offset points",
                    color="gray",
                )
            _reference(ax, refs, "instructions")
            ax.set(
                xlabel=INSTR_LABEL,
                ylabel="test accuracy (%)",
                title="Unstructured pruning on the MCU: dense vs sparse kernels",
            )
            _eng(ax)
            ax.legend(fontsize=6.5)
            a["fig_unst_instr"] = figs.save(fig, f"pruning_unstructured_instructions_{arch}")

        # L1 / L2 / L-infinity at one ratio.
        if cmp_:
            norms = [n for n in NORMS if any(p["norm"] == n for p in cmp_)]
            fig, (ax, ax2) = plt.subplots(1, 2, figsize=(7.4, 3.0), gridspec_kw={"width_ratios": [1, 1.4]})
            width = 0.38
            for j, mode in enumerate(MODES):
                vals = [
                    next((100 * p["accuracy"] for p in cmp_ if p["norm"] == n and p["mode"] == mode), np.nan)
                    for n in norms
                ]
                bars = ax.bar(
                    np.arange(len(norms)) + (j - 0.5) * width,
                    vals,
                    width,
                    label=MODE_LABELS[mode],
                    color={"os": "tab:orange", "ft": "tab:blue"}[mode],
                )
                ax.bar_label(bars, fmt="%.1f", fontsize=7)
            ax.set_xticks(range(len(norms)), [NORM_LABELS[n] for n in norms])
            ax.set_ylim(0, 118)
            ax.set(
                xlabel="filter ranking norm",
                ylabel="test accuracy (%)",
                title=f"Accuracy, keeping {st.get('compare_keep')} of {st.get('out_of')} filters",
            )
            ax.legend(fontsize=7, loc="upper center", ncol=2)
            # Which filters each norm keeps: each filter's norm relative to the largest, kept ones solid.
            first = {}
            for p in cmp_:
                if p.get("filter_norms") and p["norm"] not in first:
                    first[p["norm"]] = p
            w2 = 0.8 / max(1, len(first))
            for j, (_n, p) in enumerate(sorted(first.items(), key=lambda kv: NORMS.index(kv[0]))):
                layer = next(iter(p["filter_norms"]))
                v = np.asarray(p["filter_norms"][layer], dtype=float)
                kept = set(p["kept_channels"][layer])
                xs = np.arange(len(v)) + (j - (len(first) - 1) / 2) * w2
                for i in range(len(v)):
                    ax2.bar(xs[i], v[i] / v.max(), w2, color=f"C{j}", alpha=1.0 if i in kept else 0.25)
            if first:
                ax2.set_xticks(range(len(v)), [str(i) for i in range(len(v))])
                ax2.set(
                    xlabel=f"filter of {layer} (faded: removed)",
                    ylabel="filter norm / largest",
                    title="Which filters each norm keeps",
                )
                from matplotlib.patches import Patch

                ax2.legend(
                    handles=[
                        Patch(color=f"C{j}", label=NORM_LABELS[n]) for j, n in enumerate(sorted(first, key=NORMS.index))
                    ],
                    fontsize=7,
                )
            else:
                ax2.set_visible(False)
            a["fig_norms"] = figs.save(fig, f"pruning_norms_{arch}")
            a["norms"] = [
                {
                    "norm": NORM_LABELS[n],
                    **{m: next((p for p in cmp_ if p["norm"] == n and p["mode"] == m), None) for m in MODES},
                }
                for n in norms
            ]
            a["norm_finding"] = norm_finding(cmp_)

        a.update(_answers(unst, chan, mine, refs, thr))
        a["sparse_finding"] = sparse_speed_finding(a["speedup"], threshold)
        out["archs"][arch] = a

    # Pareto over every deployable variant (all families), per architecture.
    out["pareto"] = {}
    for arch in out["archs"]:
        pts = [_prow(r) for r in rows if r["arch"] == arch and r.get("deployable")]
        on_dev = [p for p in pts if p.get("flash") is not None]
        fig, ax = plt.subplots(1, 2, figsize=(7.4, 3.4), sharey=True)
        if on_dev:
            f1 = _pareto_axes(
                ax[0],
                on_dev,
                "flash",
                "firmware flash (bytes: code + model)",
                "Accuracy vs flash (all deployed variants)",
                family_name,
            )
            f2 = _pareto_axes(ax[1], on_dev, "instructions", INSTR_LABEL, "Accuracy vs MCU instructions", family_name)
            note = None
        else:
            f1 = _pareto_axes(
                ax[0],
                pts,
                "tflite_bytes",
                "int8 TFLite model (bytes)",
                "Accuracy vs model bytes (no device results: flash not measured)",
                family_name,
            )
            f2 = _pareto_axes(
                ax[1],
                pts,
                "gzip_bytes",
                "gzip-compressed int8 TFLite model (bytes)",
                "Accuracy vs compressed model bytes",
                family_name,
            )
            note = "No device results (firmware disabled or not yet run): the Pareto plots use TFLite bytes."
        ax[0].set_ylabel("test accuracy (%)")
        by_label = {p["label"]: p for p in (on_dev or pts)}
        out["pareto"][arch] = {
            "fig": figs.save(fig, f"pruning_pareto_{arch}"),
            "front_a": f1,
            "front_b": f2,
            "front_rows": sorted(
                (by_label[lab] for lab in dict.fromkeys(f1 + f2)), key=lambda p: (-p["accuracy"], p["label"])
            ),
            "note": note,
            "on_device": bool(on_dev),
        }
    return {"pruning": out}


def fall_points(config):
    """Accuracy 'falls' when it is more than this many points below the reference: the report's one threshold
    (quantization.cliff_points, default 1)."""
    return float(((config or {}).get("quantization") or {}).get("cliff_points", 1.0))


def reach(rows, config, arch):
    """How far unstructured and structured (the sweep's norm) pruning go before accuracy falls, for one
    architecture: the rows of reach_rows, the reference's name and the threshold in points."""
    st = (config.get("pruning") or {}).get("structured") or {}
    mine = [_prow(r) for r in rows if r["arch"] == arch and r.get("family") in FAMILIES]
    unst = [p for p in mine if p["family"] == FAMILY_UNSTRUCTURED]
    chan = [p for p in mine if p["family"] == FAMILY_STRUCTURED and p["norm"] == st.get("norm")]
    refs = {r["variant"]: r for r in rows if r["arch"] == arch and r["variant"] in ("float", "ptq_int8")}
    ref = refs.get("ptq_int8") or refs.get("float")
    thr = fall_points(config)
    if ref is None or not (unst or chan):
        return None
    name = "dense int8 model" if ref["variant"] == "ptq_int8" else "float model"
    return {"rows": reach_rows(unst, chan, ref["accuracy"], thr), "ref": name, "thr": thr}


def two_se(points):
    """Two standard errors of a test accuracy, in points: differences smaller than this are noise."""
    se = [math.sqrt(p["accuracy"] * (1 - p["accuracy"]) / p["n"]) for p in points if p and p.get("n")]
    return 200 * max(se) if se else None


def how_far(points, ref_acc, thr):
    """Scanning points in order of increasing compression: the last one within `thr` points of `ref_acc` before
    the first that is not, and that first one (either None)."""
    last_ok = None
    for p in points:
        if 100 * (ref_acc - p["accuracy"]) > thr:
            return last_ok, p
        last_ok = p
    return last_ok, None


def reach_rows(unst, chan, ref_acc, thr):
    """How far each pruning method goes before accuracy falls, one row per (method, mode)."""
    rows = []
    methods = (
        ("unstructured", unst, lambda p: p["sparsity_target"], lambda p: f"{100 * p['sparsity_target']:.0f}% sparsity"),
        ("structured", chan, lambda p: -p["keep"], lambda p: f"{p['keep']} of {p['out_of']} filters kept"),
    )
    for method, pts, order, label in methods:
        for mode in MODES:
            mine = sorted((p for p in pts if p["mode"] == mode), key=order)
            if not mine:
                continue
            ok, bad = how_far(mine, ref_acc, thr)
            rows.append(
                {
                    "method": method,
                    "mode": mode,
                    "mode_label": MODE_LABELS[mode],
                    "within": label(ok) if ok else None,
                    "within_accuracy": ok["accuracy"] if ok else None,
                    "first_below": label(bad) if bad else None,
                    "first_below_accuracy": bad["accuracy"] if bad else None,
                    "tested": f"{label(mine[0])} to {label(mine[-1])}" if len(mine) > 1 else label(mine[0]),
                    "all_within": bad is None,
                }
            )
    return rows


def reach_sentence(row, thr, ref_name):
    """One reach row as a sentence: how far the method goes before accuracy falls."""
    unit = f"{thr:g} point" + ("" if thr == 1 else "s")
    head = f"{row['method'].capitalize()} pruning {row['mode_label']}"
    if row["all_within"]:
        return f"{head} stays within {unit} of the {ref_name} at every level tested ({row['tested']})."
    if row["within"] is None:
        return (
            f"{head} falls more than {unit} below the {ref_name} already at the mildest level tested "
            f"({row['first_below']}: {100 * row['first_below_accuracy']:.1f}%)."
        )
    return (
        f"{head} stays within {unit} of the {ref_name} up to {row['within']} "
        f"({100 * row['within_accuracy']:.1f}%) and falls at {row['first_below']} "
        f"({100 * row['first_below_accuracy']:.1f}%)."
    )


def fine_tuning_finding(os_p, ft_p, where):
    """Does fine-tuning matter at one pruning level? A finding from the two measured accuracies."""
    if not (os_p and ft_p):
        return None
    g = 100 * (ft_p["accuracy"] - os_p["accuracy"])
    se2 = two_se([os_p, ft_p])
    noise = f"two standard errors are {se2:.1f} points" if se2 is not None else "no test count"
    pair = f"{100 * os_p['accuracy']:.1f}% one-shot, {100 * ft_p['accuracy']:.1f}% fine-tuned"
    why = None
    if se2 is None or abs(g) <= se2:
        verdict, title = "noise", "Fine-tuning makes no measurable difference"
        text = f"At {where} the two differ by {g:+.1f} points ({pair}), within noise ({noise})."
    elif g > 0:
        verdict, title = "helps", "Fine-tuning matters"
        text = f"At {where} it recovers {g:.1f} points ({pair}; {noise})."
        why = (
            "One-shot pruning removes weights the network relied on and gives it no chance to redistribute their "
            "work; fine-tuning lets the remaining weights compensate."
        )
    else:
        verdict, title = "hurts", "Fine-tuning does not help here"
        text = f"At {where} the fine-tuned model is {-g:.1f} points below the one-shot one ({pair}; {noise})."
    return {"verdict": verdict, "title": title, "text": text, "why": why, "gain": g}


def norm_finding(cmp_):
    """Which norm ranks filters best, whether that is more than noise, and whether fine-tuning or the norm
    moves accuracy more."""
    if not cmp_:
        return None
    se2 = two_se(cmp_)
    out = []
    spreads, gains = [], []
    for mode in MODES:
        pts = [p for p in cmp_ if p["mode"] == mode]
        if len(pts) < 2:
            continue
        best, worst = max(pts, key=lambda p: p["accuracy"]), min(pts, key=lambda p: p["accuracy"])
        spread = 100 * (best["accuracy"] - worst["accuracy"])
        spreads.append(spread)
        when = "Without" if mode == "os" else "With"
        if se2 is not None and spread <= se2:
            out.append(
                f"{when} fine-tuning the norms are within {spread:.1f} points of each other, inside noise "
                f"(two standard errors: {se2:.1f} points): no norm is measurably best."
            )
        else:
            out.append(
                f"{when} fine-tuning {NORM_LABELS[best['norm']]} ranks best ({100 * best['accuracy']:.1f}%, "
                f"{spread:.1f} points above {NORM_LABELS[worst['norm']]})."
            )
    for n in {p["norm"] for p in cmp_}:
        by = {p["mode"]: p for p in cmp_ if p["norm"] == n}
        if "os" in by and "ft" in by:
            gains.append(100 * (by["ft"]["accuracy"] - by["os"]["accuracy"]))
    if spreads and gains:
        spread, gain = max(spreads), sum(gains) / len(gains)
        if gain > spread:
            out.append(
                f"Fine-tuning recovers {gain:.1f} points on average, more than the {spread:.1f}-point spread "
                "between norms: retraining after pruning matters more than the norm."
            )
        else:
            out.append(
                f"The choice of norm moves accuracy by up to {spread:.1f} points, at least as much as fine-tuning "
                f"recovers on average ({gain:+.1f} points): here the norm matters as much as retraining."
            )
    if len({str(p["kept_channels"]) for p in cmp_}) == 1:
        out.append("All norms keep the same filters here, so any difference between them is training noise.")
    return out


def channel_speed_finding(chan, dense):
    """Does removing channels make inference faster? Ratios of the smallest structured variant to the dense
    int8 model, and on the MCU a straight-line fit of instructions against MACs (fixed cost + cost per MAC)."""
    if not chan:
        return None
    small = min(chan, key=lambda p: (p["macs"], p["mode"] != "ft"))

    def ratio(key):
        return small[key] / dense[key] if small.get(key) and dense.get(key) else None

    r = {k: ratio(k) for k in ("macs", "params", "tflite_bytes", "host_ms", "host_ref_ms", "instructions")}
    out = {"variant": small["variant"], **r, "sentences": []}
    say = out["sentences"].append
    if r["instructions"] is not None and r["macs"] is not None:
        pts = [(p["macs"], p["instructions"]) for p in chan if p.get("instructions")]
        if dense.get("instructions") and dense.get("macs"):
            pts.append((dense["macs"], dense["instructions"]))
        fit = ""
        if len({m for m, _ in pts}) >= 3:
            slope, fixed = np.polyfit([m for m, _ in pts], [i for _, i in pts], 1)
            out.update(per_mac=float(slope), fixed=float(fixed))
            if fixed > 0:
                fit = (
                    f" A straight line through the measurements gives {slope:.2f} instructions per MAC plus "
                    f"{fixed:,.0f} per inference that no channel removal touches."
                )
        if r["instructions"] < 0.9:
            say(
                f"On the Cortex-M4 it does: {small['variant']} needs ×{r['instructions']:.2f} the dense int8 "
                f"model's instructions for ×{r['macs']:.2f} its MACs, because the MCU's time is the "
                f"arithmetic.{fit}"
            )
        else:
            say(
                f"On the Cortex-M4 it barely does: {small['variant']} needs ×{r['instructions']:.2f} the "
                f"dense int8 model's instructions for ×{r['macs']:.2f} its MACs.{fit}"
            )
    if r["host_ref_ms"] is not None:
        verb = "falls with the MACs" if r["host_ref_ms"] < 0.9 else "hardly falls"
        say(
            f"On the desktop, TFLite's reference kernels (plain loops, like a microcontroller's) take "
            f"×{r['host_ref_ms']:.2f} the time: their time {verb}."
        )
    if r["host_ms"] is not None:
        if r["host_ms"] < 0.9:
            say(f"Its default optimised kernels take ×{r['host_ms']:.2f}: faster too.")
        else:
            say(
                f"Its default optimised kernels take ×{r['host_ms']:.2f}: no faster. For a model this small, "
                "per-invoke overhead and gathering input patches for a one-channel conv do not depend on the number "
                "of filters, and SIMD kernels process output channels in vector-width tiles."
            )
    return out


def sparse_speed_finding(speed, threshold):
    """Do the zero-skipping kernels speed unstructured sparsity up? From the measured speed-up table."""
    if not speed:
        return "No device measurements are available in this run."
    fast = [s for s in speed if s["speedup"] >= 1.05]
    if not fast:
        return (
            f"No measured speed-up: at every sparsity the deployed model needs about as many instructions as the "
            f"same weights on the dense kernels (best ×{max(s['speedup'] for s in speed):.2f})."
        )
    first = min(fast, key=lambda s: s["sparsity"])
    top = max(speed, key=lambda s: s["sparsity"])
    text = (
        f"The zero-skipping kernels pay from {100 * first['sparsity']:.0f}% sparsity "
        f"(×{first['speedup']:.2f} fewer instructions than the same weights on the dense kernels)"
    )
    if top is not first and top["vs_dense_int8"]:
        text += (
            f"; at {100 * top['sparsity']:.0f}% the deployed model needs ×{top['vs_dense_int8']:.2f} fewer "
            f"instructions than the dense int8 model"
        )
    slow = [s for s in speed if s["sparsity"] < first["sparsity"]]
    if slow and threshold is not None and all(s["sparsity"] <= threshold for s in slow):
        text += (
            f". Below that the layers stay under the code generator's {100 * threshold:.0f}% threshold and run "
            f"on the dense kernels"
        )
    return text + "."


def _answers(unst, chan, mine, refs, thr):
    """Tables and findings for the template's answer boxes."""
    ans = {"speedup": [], "chan_rows": [], "fine_tuning": None, "chan_fine_tuning": None, "chan_speed": None}
    dense = refs.get("ptq_int8") or {}
    ref = dense if dense.get("accuracy") is not None else refs.get("float") or {}
    ans["reach"] = reach_rows(unst, chan, ref["accuracy"], thr) if ref else []
    ans["reach_ref"] = "dense int8 model" if ref is dense else "float model"
    ans["reach_sentences"] = [reach_sentence(r, thr, ans["reach_ref"]) for r in ans["reach"]]
    if unst:
        top = max(p["sparsity_target"] for p in unst)
        at = {p["mode"]: p for p in unst if p["sparsity_target"] == top}
        ans["unst_top"] = {"sparsity": top, "os": at.get("os"), "ft": at.get("ft")}
        ans["fine_tuning"] = fine_tuning_finding(at.get("os"), at.get("ft"), f"{100 * top:.0f}% sparsity")
        speed = []
        for p in sorted(unst, key=lambda p: (p["sparsity_target"], p["mode"])):
            dense_i = p["instructions_dense"] or dense.get("instructions")
            if p.get("instructions") and dense_i:
                speed.append(
                    {
                        "label": p["variant"],
                        "sparsity": p["sparsity_target"],
                        "mode": p["mode"],
                        "instructions": p["instructions"],
                        "dense_instructions": dense_i,
                        "vs_dense_int8": dense.get("instructions") / p["instructions"]
                        if dense.get("instructions")
                        else None,
                        "speedup": dense_i / p["instructions"],
                        "flash_model": p.get("flash_model"),
                        "dense_flash_model": dense.get("flash_model"),
                        "sparse_layers": p["sparse_layers"],
                        "sparse_ops": _short_ops(p["sparse_layers"]),
                        "gzip_bytes": p["gzip_bytes"],
                        "dense_gzip_bytes": dense.get("gzip_bytes"),
                    }
                )
        ans["speedup"] = speed
    if chan:
        ans["chan_rows"] = sorted(chan, key=lambda p: (-p["keep"], p["mode"]))
        ans["chan_speed"] = channel_speed_finding(chan, dense)
        kmin = min(p["keep"] for p in chan)
        at = {p["mode"]: p for p in chan if p["keep"] == kmin}
        ans["chan_fine_tuning"] = fine_tuning_finding(
            at.get("os"), at.get("ft"), f"{kmin} of {chan[0]['out_of']} filters kept"
        )
    ans["sp24"] = [p for p in mine if p["family"] == FAMILY_2BY4]
    ans["pqat"] = [p for p in mine if p["family"] == FAMILY_PQAT]
    ans["dense"] = dense
    return ans
