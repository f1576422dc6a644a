"""The report's quantization section: accuracy against bit-width, where each curve falls off, and findings
computed from what was measured (context for report/templates/quantization.html.j2)."""

import math
import re

from ..variant import model_ids
from .grid import FAMILIES, settings


def _curve(rows, family):
    pts = sorted(
        (r["host"]["bits"], r)
        for r in rows
        if r["family"] == family and r["host"].get("weight_bits") == r["host"].get("activation_bits")
    )
    return [r for _, r in pts]


def cliff(points, float_acc, threshold_points):
    """Where a curve of (bits, accuracy) falls off: the widest bit-width more than `threshold_points` below
    float (None if none is), and the narrowest width from the top down that is still within."""
    pts = sorted(points, reverse=True)
    thr = threshold_points / 100.0
    below = [b for b, a in pts if float_acc - a > thr]
    at = max(below) if below else None
    within = [b for b, a in pts if float_acc - a <= thr and (at is None or b > at)]
    acc = dict(pts)
    return {
        "bits": at,
        "accuracy": acc.get(at),
        "within_down_to": min(within) if within else None,
        "widest": pts[0][0] if pts else None,
        "narrowest": pts[-1][0] if pts else None,
    }


def cliff_sentence(name, points, float_acc, threshold_points):
    """Where a curve (list of (bits, accuracy), any order) drops more than `threshold_points` below float."""
    pts = sorted(points, reverse=True)
    if not pts:
        return ""
    thr = threshold_points / 100.0
    below = [b for b, a in pts if float_acc - a > thr]
    within = [b for b, a in pts if float_acc - a <= thr]
    lo, hi = pts[-1][0], pts[0][0]
    unit = "point" if threshold_points == 1 else "points"
    if not below:
        return (
            f"{name} stays within {threshold_points:g} {unit} of float at every bit-width tested "
            f"({hi} down to {lo} bits)."
        )
    cliff = max(below)
    acc = dict(pts)[cliff]
    text = f"{name} falls more than {threshold_points:g} {unit} below float at {cliff} bits"
    text += f" ({100 * acc:.1f}% vs {100 * float_acc:.1f}%, {100 * (acc - float_acc):+.1f} points)"
    above = [b for b in within if b > cliff]
    if above:
        span = f"at {hi} bits" if min(above) == hi else f"from {hi} down to {min(above)} bits"
        text += f"; it is within {threshold_points:g} {unit} {span}"
    else:
        text += f"; it is already below at the widest width tested ({hi} bits)"
    back = sorted(b for b in within if b < cliff)
    if back:
        text += (
            f". Not monotone: {', '.join(map(str, back))} bits are back within {threshold_points:g} {unit}, "
            f"so single points are noisy"
        )
    return text + "."


def report_context(rows, config, figs):
    """Context for report/templates/quantization.html.j2 (empty when the study is off)."""
    q = settings(config)
    if q is None:
        return {}
    mine = [r for r in rows if r["family"] in FAMILIES]
    if not mine:
        return {}
    thr = float(q["cliff_points"])
    out = {
        "quant_rows": [],
        "quant_figs": {},
        "quant_cliffs": {},
        "quant_findings": {},
        "quant_agreement": {},
        "quant_notes": [],
        "quant_threshold": thr,
        "quant_multi_arch": len(model_ids(config)) > 1,
        "quant_settings": q,
    }

    for arch in model_ids(config):
        arows = [r for r in rows if r["arch"] == arch]
        base = next((r for r in arows if r["variant"] == "float"), None)
        if base is None:
            continue
        fa = base["accuracy"]
        qrows = [r for r in arows if r["family"] in FAMILIES or r["variant"] in ("float", "ptq_int8")]
        for r in sorted(qrows, key=_row_order):
            h = r["host"]
            out["quant_rows"].append(
                {
                    "label": r["label"],
                    "variant": r["variant"],
                    "family": r["family"],
                    "bits": h.get("bits", 32 if r["variant"] == "float" else 8),
                    "weight_bits": h.get("weight_bits"),
                    "activation_bits": h.get("activation_bits"),
                    "format": _format(r),
                    "accuracy": r["accuracy"],
                    "delta": r["accuracy"] - fa,
                    "agreement": r["agreement"],
                    "tflite_bytes": r["tflite_bytes"],
                    "packed_weight_bytes": h.get("packed_weight_bytes"),
                    "storage": h.get("weight_storage"),
                    "deployable": r.get("deployable"),
                    "reason": h.get("deployable_reason"),
                    "note": _footnote(out["quant_notes"], h.get("deployable_reason"), h.get("activation_bits")),
                    "tflm": (r.get("tflm") or {}).get("bitexact"),
                    "fake_quant_accuracy": h.get("fake_quant_accuracy"),
                    "n": h.get("n"),
                }
            )
        ptq, qat = _curve(arows, "ptq_nbit"), _curve(arows, "qat_nbit")
        cl = [
            cliff_sentence(name, [(r["host"]["bits"], r["accuracy"]) for r in curve], fa, thr)
            for name, curve in (("PTQ", ptq), ("QAT", qat))
            if curve
        ]
        out["quant_cliffs"][arch] = [c for c in cl if c]
        out["quant_findings"][arch] = findings(arows, fa, base["host"].get("n"), thr)
        agree = {}
        for r in ptq + qat:  # agreement with the float model's predictions, by bit-width and method
            agree.setdefault(r["host"]["bits"], {})[r["family"].split("_")[0]] = r["agreement"]
        out["quant_agreement"][arch] = agree
        out["quant_figs"][arch] = bits_figure(figs, arch, arows, fa, thr)
    return out


def _format(r):
    h = r["host"]
    if r["family"] == "minifloat":
        return f"E{h['exponent']}M{h['mantissa']} ({h.get('special')})"
    if r["variant"] == "float":
        return "float32"
    if r["variant"] == "ptq_int8":
        return "W8A8 (converter)"
    if h.get("weight_bits") is not None:
        return f"W{h['weight_bits']}A{h['activation_bits']}"
    return ""


def _row_order(r):
    order = {"float": 0, "ptq": 1, "qat": 2, "ptq_nbit": 3, "qat_nbit": 4, "minifloat": 5}
    h = r["host"]
    mixed = h.get("weight_bits") != h.get("activation_bits")
    return (order.get(r["family"], 9), mixed, -(h.get("bits") or 0), r["variant"])


def _footnote(notes, reason, bits=None):
    """The footnote number (1-based) of a not-deployable reason: one footnote per distinct explanation, the
    bit-width or format it names left to the row (it is in the row already)."""
    if not reason:
        return None
    text = re.sub(rf"\b{bits}-bit", "N-bit", reason) if bits and bits != 8 else reason
    text = re.sub(r" \(nor E\d+M\d+\)", "", text)
    if text not in notes:
        notes.append(text)
    return notes.index(text) + 1


def _noise(fa, n):
    """Two standard errors of a test accuracy near `fa` on `n` clips, in points (None without n)."""
    return 200 * math.sqrt(max(fa * (1 - fa), 1e-12) / n) if n else None


def _versus(d, se2):
    """How a difference of d points compares with two standard errors: "above", "below" or "noise"."""
    if se2 is None:
        return "above" if d > 0 else "below" if d < 0 else "noise"
    return "above" if d > se2 else "below" if d < -se2 else "noise"


def findings(arows, fa, n, thr):
    """Findings in sentences, each computed from the measurements: QAT int8 against float, and what QAT buys
    over PTQ where PTQ falls off. Every sentence says the opposite when the data say the opposite."""
    by = {r["variant"]: r for r in arows}
    se2 = _noise(fa, n)
    noise = f"two standard errors are {se2:.1f} points on {n} test clips" if se2 is not None else "no test count"
    out = []
    if "qat_int8" in by:
        q = by["qat_int8"]["accuracy"]
        d = 100 * (q - fa)
        lead = f"QAT int8 reaches {100 * q:.2f}%, {d:+.2f} points against float ({100 * fa:.2f}%)"
        out.append(
            {
                "noise": f"{lead}: within noise ({noise}).",
                "above": f"{lead}: above float by more than noise ({noise}); its fine-tuning epochs also train "
                "the model further.",
                "below": f"{lead}: below float by more than noise ({noise}); quantization-aware training did not "
                "recover what int8 costs.",
            }[_versus(d, se2)]
        )
    ptq = {r["host"]["bits"]: r["accuracy"] for r in _curve(arows, "ptq_nbit")}
    qat = {r["host"]["bits"]: r["accuracy"] for r in _curve(arows, "qat_nbit")}
    common = sorted(set(ptq) & set(qat), reverse=True)
    if common:
        c = cliff([(b, ptq[b]) for b in common], fa, thr)
        where = [b for b in common if c["bits"] is not None and b <= c["bits"]]
        if not where:
            d = max((100 * (qat[b] - ptq[b]) for b in common), key=abs)
            b = next(b for b in common if 100 * (qat[b] - ptq[b]) == d)
            out.append(
                f"PTQ holds within {thr:g} point{'s' if thr != 1 else ''} of float at every bit-width tested, so "
                f"QAT has nothing to recover; their largest difference is {d:+.2f} points at {b} bits ({noise})."
            )
        else:
            gains = {b: 100 * (qat[b] - ptq[b]) for b in where}
            b = max(gains, key=gains.get)
            g = gains[b]
            span = f"at {where[0]} bits" + (" and below" if len(where) > 1 else "")
            lead = f"Where PTQ falls off ({span}), QAT's largest gain over it is {g:+.2f} points at {b} bits "
            lead += f"({100 * ptq[b]:.1f}% → {100 * qat[b]:.1f}%)"
            out.append(
                {
                    "above": f"{lead}: more than noise ({noise}), so training with the quantizers in the loop "
                    "recovers what rounding loses.",
                    "noise": f"{lead}: within noise ({noise}), so QAT does not measurably beat PTQ here.",
                    "below": f"{lead}: QAT is below PTQ by more than noise ({noise}) even at its best width.",
                }[_versus(g, se2)]
            )
    return out


def bits_figure(figs, arch, arows, float_acc, thr):
    plt = figs.plt
    mf = sorted((r for r in arows if r["family"] == "minifloat"), key=lambda r: r["variant"])
    fig, axes = plt.subplots(
        1,
        2 if mf else 1,
        figsize=(7.4 if mf else 6.0, 3.4),
        squeeze=False,
        gridspec_kw={"width_ratios": [2.2, 1]} if mf else None,
    )
    ax = axes[0, 0]
    for family, label, marker in (("ptq_nbit", "PTQ (W=A=N bits)", "o"), ("qat_nbit", "QAT (W=A=N bits)", "s")):
        c = _curve(arows, family)
        if c:
            ax.plot([r["host"]["bits"] for r in c], [100 * r["accuracy"] for r in c], marker=marker, label=label)
    ax.axhline(100 * float_acc, color="k", ls="--", lw=1, label=f"float ({100 * float_acc:.1f}%)")
    ax.axhline(100 * float_acc - thr, color="grey", ls=":", lw=1, label=f"float - {thr:g} pt")
    for r in arows:
        h = r["host"]
        if r["variant"] == "qat_int8":
            ax.scatter(
                [8.1],
                [100 * r["accuracy"]],
                marker="*",
                s=90,
                color="C3",
                zorder=5,
                label="QAT int8 (tfmot default, TFLite)",
            )
        elif r["variant"] == "ptq_int8":
            ax.scatter(
                [7.9],
                [100 * r["accuracy"]],
                marker="x",
                s=50,
                color="C4",
                zorder=5,
                label="PTQ int8 (TFLite converter)",
            )
        elif r["family"] in ("ptq_nbit", "qat_nbit") and h.get("weight_bits") != h.get("activation_bits"):
            ptq = r["family"] == "ptq_nbit"
            ax.scatter(
                [h["weight_bits"] + (-0.12 if ptq else 0.12)],
                [100 * r["accuracy"]],
                marker="^" if ptq else "v",
                s=45,
                zorder=5,
                label=f"{r['family'][:3].upper()} W{h['weight_bits']}A{h['activation_bits']}",
            )
    ax.set(xlabel="bits (weights and activations)", ylabel="test accuracy (%)", title=f"{arch}: accuracy vs bit-width")
    ax.legend(fontsize=7, loc="best")
    if mf:
        bx = axes[0, 1]
        names = [f"E{r['host']['exponent']}M{r['host']['mantissa']}" for r in mf]
        bx.bar(names, [100 * r["accuracy"] for r in mf], color="C2")
        bx.axhline(100 * float_acc, color="k", ls="--", lw=1)
        bx.set(
            title="minifloat (8-bit formats)" if all(r["host"]["bits"] == 8 for r in mf) else "minifloat",
            ylabel="test accuracy (%)",
            ylim=ax.get_ylim(),
        )
    return figs.save(fig, f"quant_bits_{arch}")
