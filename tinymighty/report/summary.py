"""The report's first page: a summary in sentences, the headline table and the recommendation under the
config's budgets. Every sentence is computed from this run's rows and says the opposite when they do."""

import math

from ..budgets import CLOCK_HZ
from ..pruning import report as preport
from ..pruning.grid import FAMILY_STRUCTURED, FAMILY_UNSTRUCTURED
from ..quantization import report as qreport
from .generalisation import class_mix_text
from .recommend import NoResultsError, NothingFitsError, binding_sentence, recommend


def _cost(r):
    """Cheaper first: fewer instructions on the device, less flash and RAM; without device results, fewer
    non-zero parameters and MACs."""
    inf = math.inf
    return (
        r.get("instructions") or inf,
        r.get("flash") or inf,
        r.get("ram") or inf,
        r.get("nonzero_params") or r.get("params") or inf,
        r.get("macs") or inf,
        {"ptq": 0, "qat": 1}.get(r.get("family"), 9),  # ties: the standard int8 pipelines first
        r["variant"],
    )


def best_of(rows, families, ref_acc, thr):
    """A family's headline variant: the cheapest deployable one within `thr` points of `ref_acc`, or, when
    none is, the most accurate deployable one."""
    cands = [r for r in rows if r.get("family") in families and r.get("deployable")]
    near = [r for r in cands if 100 * (ref_acc - r["accuracy"]) <= thr + 1e-9]
    if near:
        return min(near, key=_cost)
    return min(cands, key=lambda r: (-r["accuracy"], _cost(r))) if cands else None


def headline(rows, arch, thr):
    """The headline table: float, PTQ int8, and the best QAT, unstructured and structured variant."""
    mine = [r for r in rows if r["arch"] == arch]
    by = {r["variant"]: r for r in mine}
    fl = by.get("float")
    if fl is None:
        return []
    fa = fl["accuracy"]
    out = [("float model", fl), ("PTQ int8", by.get("ptq_int8"))]
    for role, fams in (
        ("best QAT", ("qat", "qat_nbit")),
        ("best unstructured", (FAMILY_UNSTRUCTURED,)),
        ("best structured", (FAMILY_STRUCTURED,)),
    ):
        out.append((role, best_of(mine, fams, fa, thr)))
    return [{"role": role, "row": r} for role, r in out if r is not None]


def _pts(n):
    return f"{n:g} point" + ("" if n == 1 else "s")


def _curve(rows, family):
    return [
        (r["host"]["bits"], r["accuracy"])
        for r in rows
        if r.get("family") == family and r["host"].get("weight_bits") == r["host"].get("activation_bits")
    ]


def float_sentence(fl, source):
    """The report's first accuracy: it says which class mix it is measured on, and the balanced accuracy
    that no mix can flatter."""
    host = fl["host"]
    n = host.get("n")
    notes = [class_mix_text(host["per_class"])] if host.get("per_class") else []
    notes += [f"one clip is {100 / n:.2f} points"] if n else []
    notes = f" ({'; '.join(notes)})" if notes else ""
    balanced = host.get("balanced_accuracy")
    balanced = f"; balanced accuracy (mean recall over the classes) {100 * balanced:.1f}%" if balanced else ""
    return (
        f"The float {fl['arch']} model reaches {100 * fl['accuracy']:.1f}% test accuracy on "
        f"{n if n else 'the'} test clips of the {source} dataset{notes}{balanced}."
    )


def int8_sentence(fl, ptq, qat, thr):
    if ptq is None:
        return None
    d = 100 * (ptq["accuracy"] - fl["accuracy"])
    size = ""
    if fl.get("tflite_bytes") and ptq.get("tflite_bytes"):
        size = (
            f" makes the model {fl['tflite_bytes'] / ptq['tflite_bytes']:.1f}\u00d7 smaller "
            f"({fl['tflite_bytes']:,} \u2192 {ptq['tflite_bytes']:,} bytes) and"
        )
    if d >= 0:
        cost = f"costs no accuracy ({d:+.2f} points)"
    elif -d <= thr:
        cost = f"costs {-d:.2f} points, within the {_pts(thr)} this report treats as a fall"
    else:
        cost = f"costs {-d:.2f} points ({100 * fl['accuracy']:.1f}% \u2192 {100 * ptq['accuracy']:.1f}%)"
    text = f"Post-training int8 quantization{size} {cost}"
    if qat is not None:
        dq = 100 * (qat["accuracy"] - fl["accuracy"])
        text += f"; quantization-aware training reaches {100 * qat['accuracy']:.1f}% ({dq:+.2f} points vs float)"
    return text + "."


def cliff_sentence(rows, fa, thr):
    phrases, falls = [], False
    for name, fam in (("PTQ", "ptq_nbit"), ("QAT", "qat_nbit")):
        pts = _curve(rows, fam)
        if not pts:
            continue
        c = qreport.cliff(pts, fa, thr)
        if c["bits"] is None:
            phrases.append(f"{name} holds within {_pts(thr)} of float down to {c['narrowest']} bits")
        else:
            falls = True
            held = f", after holding down to {c['within_down_to']} bits" if c["within_down_to"] is not None else ""
            phrases.append(f"{name} falls more than {_pts(thr)} below float at {c['bits']} bits{held}")
    if not phrases:
        return None
    if not falls:
        return "There is no quantization cliff in the range tested: " + " and ".join(phrases) + "."
    return "The quantization cliff: " + "; ".join(phrases) + "."


def pruning_sentence(reach):
    if not reach:
        return None
    phrases = []
    for method in ("unstructured", "structured"):
        rs = [r for r in reach["rows"] if r["method"] == method]
        r = next((r for r in rs if r["mode"] == "ft"), rs[0] if rs else None)
        if r is None:
            continue
        how = "fine-tuned" if r["mode"] == "ft" else "one-shot"
        if r["all_within"]:
            phrases.append(f"{method} pruning ({how}) holds at every level tested ({r['tested']})")
        elif r["within"] is None:
            phrases.append(
                f"{method} pruning ({how}) falls already at {r['first_below']} ({100 * r['first_below_accuracy']:.1f}%)"
            )
        else:
            phrases.append(
                f"{method} pruning ({how}) holds up to {r['within']} and falls at {r['first_below']} "
                f"({100 * r['first_below_accuracy']:.1f}%)"
            )
    if not phrases:
        return None
    return (
        f"Against the {reach['ref']} (a fall is more than {_pts(reach['thr'])} below it): " + "; ".join(phrases) + "."
    )


def device_sentence(ptq, rec, thr):
    if not ptq or not ptq.get("instructions"):
        return None
    ms = 1000.0 * ptq["instructions"] / CLOCK_HZ
    unit = ptq.get("time_unit", "instructions")
    where, time = (
        (f"On the board ({ptq['board']})", f"{ms:.1f} ms at {CLOCK_HZ / 1e6:g} MHz")
        if unit == "cycles"
        else ("On the emulated Cortex-M4", f"at least {ms:.1f} ms at {CLOCK_HZ / 1e6:g} MHz")
    )
    text = (
        f"{where} the dense int8 model needs {ptq['instructions']:,} {unit} per inference "
        f"({time}), {ptq['flash']:,} bytes of flash and {ptq['ram']:,} of RAM"
    )
    if rec:
        c = rec["cheapest"]
        if c["label"] != ptq["label"] and c["instructions"] < ptq["instructions"]:
            text += (
                f"; the cheapest variant within {_pts(thr)} of the most accurate, {c['label']}, needs "
                f"{c['instructions']:,} {unit} ({c['instructions'] / ptq['instructions']:.2f}\u00d7) and "
                f"{c['flash']:,} bytes of flash"
            )
        else:
            text += f"; no variant within {_pts(thr)} of the most accurate is cheaper"
    return text + "."


def recommendation_sentence(rec, error, budgets):
    desc = ", ".join(budgets.describe().values())
    if error:
        return f"Nothing fits the budgets ({desc}). {error}"
    b = rec["best"]
    return (
        f"Under the budgets ({desc}) deploy {b['label']}: {100 * b['accuracy']:.1f}%, {b['flash']:,} bytes of "
        f"flash, {b['ram']:,} of RAM, {b['ms']:.1f} ms. {binding_sentence(rec)}"
    )


def front_page(rows, config, budgets, arch, source):
    """Everything the first page shows, for the first architecture."""
    thr = budgets.within_points
    mine = [r for r in rows if r["arch"] == arch]
    by = {r["variant"]: r for r in mine}
    rec, error = None, None
    try:
        rec = recommend(mine, budgets)
    except (NoResultsError, NothingFitsError) as e:
        error = str(e)
    fl = by.get("float")
    sentences = []
    if fl is not None:
        sentences = [
            float_sentence(fl, source),
            int8_sentence(fl, by.get("ptq_int8"), by.get("qat_int8"), thr),
            cliff_sentence(mine, fl["accuracy"], thr),
            pruning_sentence(preport.reach(rows, config, arch)),
            device_sentence(by.get("ptq_int8"), rec, thr),
            recommendation_sentence(rec, error, budgets),
        ]
    return {
        "arch": arch,
        "sentences": [s for s in sentences if s],
        "headline": headline(rows, arch, thr),
        "recommendation": rec,
        "recommendation_error": error,
        "binding": binding_sentence(rec) if rec else None,
        "budgets": budgets,
        "budget_text": budgets.describe(),
        "within": _pts(thr),
    }
