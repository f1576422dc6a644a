"""The report's "voices never heard" part: test split and held-out voices side by side, from the metrics files."""

from __future__ import annotations

from ..data.prepare import SILENCE, UNKNOWN, labels_for

# The variants shown side by side, with per-class recall; every other TFLite variant is summarised in one line.
SHOWN = ("float", "ptq_int8", "qat_int8")
NAMES = {SILENCE: "silence", UNKNOWN: "unknown words"}


def class_name(label: str) -> str:
    return NAMES.get(label, f'"{label}"')


def class_mix_text(per_class: dict, order=None) -> str:
    """'5% silence, 44% unknown words, 27% "yes", 24% "no"': the class mix an accuracy is measured on."""
    total = sum(c["support"] for c in per_class.values()) or 1
    labels = [lab for lab in (order or per_class) if per_class.get(lab, {}).get("support")]
    return ", ".join(f"{100 * per_class[lab]['support'] / total:.0f}% {class_name(lab)}" for lab in labels)


def _figures(m: dict, labels) -> dict:
    return {
        "accuracy": m["accuracy"],
        "balanced_accuracy": m.get("balanced_accuracy"),
        "unknown_false_accept": m.get("unknown_false_accept"),
        "recall": {lab: c["recall"] for lab, c in m["per_class"].items() if c["support"]},
        "n": m.get("n"),
        "mix": class_mix_text(m["per_class"], labels),
    }


def _sentence(r: dict) -> str:
    t, h = r["test"], r["holdout"]
    drop = 100 * (t["balanced_accuracy"] - h["balanced_accuracy"])
    worst = min(h["recall"], key=h["recall"].get)
    text = (
        f"{r['label']}: balanced accuracy {100 * t['balanced_accuracy']:.1f}% on the test split and "
        f"{100 * h['balanced_accuracy']:.1f}% on voices never heard "
        + (f"({drop:.1f} points lower)" if drop > 0 else f"({-drop:.1f} points higher)")
        + f"; the hardest class there is {class_name(worst)} ({100 * h['recall'][worst]:.1f}% recall)"
    )
    if h["unknown_false_accept"] is not None:
        text += f", and {100 * h['unknown_false_accept']:.1f}% of unknown words are taken for a keyword"
    return text + "."


def generalisation(rows: list[dict], config: dict) -> dict | None:
    """Context for report/templates/generalisation.html.j2, or None when no variant was tested on held-out voices."""
    tested = [r for r in rows if r["host"].get("holdout")]
    if not tested:
        return None
    holdout = config["data"].get("holdout") or {}
    labels = [lab for lab in labels_for(config["data"]["wanted_words"]) if lab in tested[0]["host"]["per_class"]]
    shown = []
    for name in SHOWN:
        for r in tested:
            if r["variant"] == name:
                test, held = _figures(r["host"], labels), _figures(r["host"]["holdout"], labels)
                shown.append({"label": r["label"], "test": test, "holdout": held})
    spread = sorted(tested, key=lambda r: r["host"]["holdout"]["balanced_accuracy"])
    return {
        "voices": holdout.get("voices") or tested[0]["host"]["holdout"].get("voices", []),
        "n": tested[0]["host"]["holdout"]["n"],
        "labels": labels,
        "class_names": {lab: class_name(lab) for lab in labels},
        "shown": shown,
        "sentences": [_sentence(r) for r in shown],
        "tested": len(tested),
        "worst": {"label": spread[0]["label"], "value": spread[0]["host"]["holdout"]["balanced_accuracy"]},
        "best": {"label": spread[-1]["label"], "value": spread[-1]["host"]["holdout"]["balanced_accuracy"]},
    }
