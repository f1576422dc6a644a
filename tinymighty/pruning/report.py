"""The report's pruning section: accuracy against parameters, FLOPs, latency and MCU instructions, the norm
comparison, the Pareto fronts, and the numbers the answers quote (report/templates/pruning.html.j2)."""

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


def _pareto_axes(ax, points, xkey, xlabel, title):
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
            label=fam,
        )
    fx = [pts[i][xkey] for i in front]
    fy = [100 * pts[i]["accuracy"] for i in front]
    ax.step(fx, fy, where="post", color="black", lw=1.2, label="Pareto frontier")
    ax.scatter(fx, fy, s=60, facecolors="none", edgecolors="black", zorder=5)
    for i in front:
        ax.annotate(
            pts[i]["variant"],
            (pts[i][xkey], 100 * pts[i]["accuracy"]),
            fontsize=6.5,
            xytext=(3, -9),
            textcoords="offset points",
        )
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=6.5, loc="lower right")
    _eng(ax)
    return [pts[i]["label"] for i in front]


def report_context(rows, config, figs):
    """Figures, tables and the answers for the report's pruning section (report/templates/pruning.html.j2)."""
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
    out = {"enabled": True, "rows": prows, "archs": {}, "config": cfg, "sparse_threshold": threshold}
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
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
        for mode in MODES:
            _curve(ax[0], unst, "nonzero_params", mode, sparsity_tag_)
            _curve(ax[1], chan, "nonzero_params", mode, keep_tag)
        for x, t in (
            (ax[0], "Unstructured magnitude pruning (labels: sparsity)"),
            (ax[1], f"Structured channel pruning, {NORM_LABELS.get(st.get('norm'), '')} (labels: filters kept)"),
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
            fig, ax = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.7), sharey=True)
            for x, (key, xlabel, title) in zip(ax, panels, strict=False):
                for mode in MODES:
                    _curve(x, chan, key, mode, keep_tag)
                _reference(x, refs, key)
                x.set(xlabel=xlabel, title=f"accuracy vs {title}")
                x.title.set_fontsize(8)
                if key in ("flops", "instructions"):
                    _eng(x)
                x.legend(fontsize=6)
            ax[0].set_ylabel("test accuracy (%)")
            fig.suptitle("Structured (channel) pruning, pruned channels removed", fontsize=9)
            a["fig_structured_cost"] = figs.save(fig, f"pruning_structured_cost_{arch}")

        # Unstructured: accuracy vs instructions, dense vs sparse kernels.
        if unst and has_dev:
            fig, ax = plt.subplots(figsize=(6.5, 3.8))
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
            fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.5), gridspec_kw={"width_ratios": [1, 1.4]})
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
            best = {
                m: max((p for p in cmp_ if p["mode"] == m), key=lambda p: p["accuracy"], default=None) for m in MODES
            }
            a["best_norm"] = {m: (NORM_LABELS[b["norm"]], b["accuracy"]) for m, b in best.items() if b}
            # One standard error of a test accuracy: differences within ~2 of these are noise.
            a["norm_se"] = max(
                (math.sqrt(p["accuracy"] * (1 - p["accuracy"]) / p["n"]) for p in cmp_ if p.get("n")), default=None
            )
            a["norms_same_channels"] = len({str(p["kept_channels"]) for p in cmp_}) == 1

        a.update(_answers(unst, chan, mine, refs, threshold))
        out["archs"][arch] = a

    # Pareto over every deployable variant (all families), per architecture.
    out["pareto"] = {}
    for arch in out["archs"]:
        pts = [_prow(r) for r in rows if r["arch"] == arch and r.get("deployable")]
        on_dev = [p for p in pts if p.get("flash") is not None]
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        if on_dev:
            f1 = _pareto_axes(
                ax[0],
                on_dev,
                "flash",
                "firmware flash (bytes: code + model)",
                "Accuracy vs flash (all deployed variants)",
            )
            f2 = _pareto_axes(ax[1], on_dev, "instructions", INSTR_LABEL, "Accuracy vs MCU instructions")
            note = None
        else:
            f1 = _pareto_axes(
                ax[0],
                pts,
                "tflite_bytes",
                "int8 TFLite model (bytes)",
                "Accuracy vs model bytes (no device results: flash not measured)",
            )
            f2 = _pareto_axes(
                ax[1],
                pts,
                "gzip_bytes",
                "gzip-compressed int8 TFLite model (bytes)",
                "Accuracy vs compressed model bytes",
            )
            note = "No device results (firmware disabled or not yet run): the Pareto plots use TFLite bytes."
        ax[0].set_ylabel("test accuracy (%)")
        out["pareto"][arch] = {
            "fig": figs.save(fig, f"pruning_pareto_{arch}"),
            "front_a": f1,
            "front_b": f2,
            "note": note,
            "on_device": bool(on_dev),
        }
    return {"pruning": out}


def _answers(unst, chan, mine, refs, threshold):
    """Numbers the template's answer boxes quote."""
    ans = {"speedup": [], "chan_rows": []}
    dense = refs.get("ptq_int8") or {}
    if unst:
        top = max(p["sparsity_target"] for p in unst)
        at = {p["mode"]: p for p in unst if p["sparsity_target"] == top}
        ans["unst_top"] = {"sparsity": top, "os": at.get("os"), "ft": at.get("ft")}
        # Sparse-kernel speed-up and flash at the highest sparsity that was deployed.
        speed = []
        for p in sorted(unst, key=lambda p: (p["sparsity_target"], p["mode"])):
            dense_i = p["instructions_dense"] or dense.get("instructions")
            if p.get("instructions") and dense_i:
                speed.append(
                    {
                        "label": p["variant"],
                        "sparsity": p["sparsity_target"],
                        "instructions": p["instructions"],
                        "dense_instructions": dense_i,
                        "vs_dense_int8": dense.get("instructions") / p["instructions"]
                        if dense.get("instructions")
                        else None,
                        "speedup": dense_i / p["instructions"],
                        "flash_model": p.get("flash_model"),
                        "dense_flash_model": dense.get("flash_model"),
                        "sparse_layers": p["sparse_layers"],
                        "gzip_bytes": p["gzip_bytes"],
                        "dense_gzip_bytes": dense.get("gzip_bytes"),
                    }
                )
        ans["speedup"] = speed
        s90 = [s for s in speed if abs(s["sparsity"] - 0.9) < 1e-6 and s["vs_dense_int8"]]
        if s90:
            # The target: at 90% sparsity, >= 3x fewer instructions than the dense int8 model, less flash.
            s = max(s90, key=lambda s: s["vs_dense_int8"])
            ans["target_90"] = {
                **s,
                "met": s["vs_dense_int8"] >= 3
                and s["flash_model"] is not None
                and s["dense_flash_model"] is not None
                and s["flash_model"] < s["dense_flash_model"],
            }
    if chan:
        ans["chan_rows"] = sorted(chan, key=lambda p: (-p["keep"], p["mode"]))
        small = min(chan, key=lambda p: (p["macs"], p["mode"] != "ft"))

        def ratio(key):
            return small[key] / dense[key] if small.get(key) and dense.get(key) else None

        ans["chan_speed"] = {
            "variant": small["variant"],
            "macs": ratio("macs"),
            "params": ratio("params"),
            "tflite_bytes": ratio("tflite_bytes"),
            "host_ms": ratio("host_ms"),
            "host_ref_ms": ratio("host_ref_ms"),
            "instructions": ratio("instructions"),
        }
    ans["sp24"] = [p for p in mine if p["family"] == FAMILY_2BY4]
    ans["pqat"] = [p for p in mine if p["family"] == FAMILY_PQAT]
    ans["dense"] = dense
    return ans
