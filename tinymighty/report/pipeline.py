"""Part 4 of the report, end to end: the keyword spotter on the device, raw audio in and keywords out.

From results/pipeline/summary.json (rules/pipeline.smk): instructions per second of audio by stage
(pre-processing = the feature extractor, network, post-processing = the recognizer) for each variant run end
to end, the same as estimated milliseconds at the board's clock and as a share of the core, the host's time
for the same stages, the streaming detections on host and device, the accuracy from raw audio, and the
feature extractor's flash and RAM. For the other deployed variants, the end-to-end cost is their measured
network plus the measured features and recognizer (which do not depend on the network): how pruning and
quantization change the whole pipeline's cost, not only the network's."""

from __future__ import annotations

from ..budgets import CLOCK_HZ
from ..provenance import read_json
from .figures import family_name, family_order

STAGES = (("pre", "features", "#999999"), ("net", "network", "C0"), ("post", "recognizer", "C3"))
BASELINE = "ptq_int8"


def _paths(value) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _estimated(rows, measured, inferences_per_second):
    """End-to-end cost of every deployed variant: its network (device.json, one inference) at the pipeline's
    inference rate, plus the features and recognizer measured on the pipeline's first variant of its arch."""
    by_arch = {}
    for m in measured:
        by_arch.setdefault(m["arch"], m)
    out = []
    for r in rows:
        ref = by_arch.get(r["arch"])
        if not r.get("device") or ref is None or r.get("instructions") is None:
            continue
        mine = next((m for m in measured if m["label"] == r["label"]), None)
        per_s = (
            mine["instructions_per_second"]
            if mine
            else {
                "pre": ref["instructions_per_second"]["pre"],
                "net": r["instructions"] * inferences_per_second,
                "post": ref["instructions_per_second"]["post"],
            }
        )
        out.append(
            {
                "label": r["label"],
                "arch": r["arch"],
                "variant": r["variant"],
                "family": r["family"],
                "accuracy": r["accuracy"],
                "measured": mine is not None,
                "per_second": per_s,
                "total": sum(per_s.values()),
                "network_per_inference": r["instructions"],
            }
        )
    return out


def _changes(costs):
    """Each variant's network and whole-pipeline instructions against the PTQ int8 model of its arch."""
    base = {c["arch"]: c for c in costs if c["variant"] == BASELINE}
    out = []
    for c in costs:
        b = base.get(c["arch"])
        if b is None or c is b:
            continue
        out.append(
            {
                "label": c["label"],
                "variant": c["variant"],
                "family": c["family"],
                "measured": c["measured"],
                "network_factor": b["per_second"]["net"] / c["per_second"]["net"],
                "total_factor": b["total"] / c["total"],
                "network_relative": c["per_second"]["net"] / b["per_second"]["net"],
                "total_relative": c["total"] / b["total"],
                "network_share": c["per_second"]["net"] / c["total"],
            }
        )
    return out


def stage_figure(figs, costs, clock_hz, multi_arch=False):
    """Stacked bars of instructions per second of audio by stage, one row per deployed variant, grouped by
    family; a second axis gives milliseconds of each second at the board's clock."""
    plt = figs.plt
    labels, slots, heads = [], [], []
    for fam in family_order(costs):
        heads.append(len(slots))
        labels.append(family_name(fam))
        slots.append(None)
        for c in costs:
            if (c["family"] or c["variant"]) == fam:
                labels.append((c["label"] if multi_arch else c["variant"]) + ("" if c["measured"] else " *"))
                slots.append(c["per_second"])
    ys = list(range(len(slots)))
    fig, ax = plt.subplots(figsize=(7.4, 0.14 * len(slots) + 1.5))
    left = [0.0] * len(slots)
    for key, name, colour in STAGES:
        vals = [(v or {}).get(key, 0) for v in slots]
        ax.barh(ys, vals, left=left, height=0.72, color=colour, label=name)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel("emulated instructions per second of audio (* network measured alone)")
    ax.grid(axis="y", visible=False)
    for h in heads[1:]:
        ax.axhline(h - 0.5, color="#999", lw=0.6)
    ax.set_yticks(ys, labels)
    ax.set_ylim(len(slots) - 0.5, -0.5)
    for i, tick in enumerate(ax.get_yticklabels()):
        tick.set_fontsize(7.5)
        if slots[i] is None:
            tick.set_fontweight("bold")
    mhz = clock_hz / 1e6
    top = ax.secondary_xaxis("top", functions=(lambda x: x / (mhz * 1e3), lambda ms: ms * mhz * 1e3))
    top.set_xlabel(f"estimated ms per second of audio at {mhz:g} MHz (instructions, not cycles)", fontsize=7.5)
    top.tick_params(labelsize=7)
    ax.set_xlim(0, 1.3 * max(left))  # room on the right for the legend
    ax.legend(fontsize=7.5, loc="upper right", frameon=False)
    fig.suptitle("The keyword spotter on the Cortex-M4: cost by stage", fontsize=10)
    return figs.save(fig, "device_pipeline")


def pipeline_context(inputs, rows, config, figs, roles=None) -> dict:
    """The template's `pipeline` (None when the pipeline did not run): figures, tables and sentences.

    roles: label -> role of the first page's headline variants. The end-to-end table keeps those and the
    streamed variants, since every deployed variant is already in the stage chart."""
    roles = roles or {}
    paths = _paths(inputs.get("pipeline"))
    if not paths:
        return {"pipeline": None}
    s = read_json(paths[0])
    clock = s.get("clock_hz", CLOCK_HZ)
    measured = s["rows"]
    if not measured:
        return {"pipeline": None}
    costs = _estimated(rows, measured, measured[0]["inferences_per_second"])
    multi_arch = len({c["arch"] for c in costs}) > 1
    stage_rows = []
    for m in measured:
        per_s = m["instructions_per_second"]
        stage_rows.append(
            {
                "label": m["label"],
                "variant": m["variant"],
                "stages": [
                    {
                        "key": key,
                        "name": name,
                        "instructions": per_s[key],
                        "mcu_ms": per_s[key] / clock * 1e3,
                        "host_ms": m["host_ms_per_second"][key],
                        "ratio": (per_s[key] / clock * 1e3) / m["host_ms_per_second"][key]
                        if m["host_ms_per_second"][key]
                        else None,
                    }
                    for key, name, _ in STAGES
                ],
                "total": m["instructions_total_per_second"],
                "mcu_ms": m["instructions_total_per_second"] / clock * 1e3,
                "host_ms": m["host_total_ms_per_second"],
                "share": m["core_share"],
                "worst_stride": m["pre_max"] + m["net_per_inference"] + m["post_per_inference"],
            }
        )
    rec = s["recording"]
    stride_budget = clock * config["features"]["stride_ms"] / 1000
    first = measured[0]
    fe = first["feature_extractor"]
    ctx = {
        "rows": measured,
        "stages": stage_rows,
        "costs": costs,
        "changes": _changes(costs),
        "cost_rows": [
            dict(c, role=roles.get(c["label"], "streamed")) for c in costs if c["measured"] or c["label"] in roles
        ],
        "recording": rec,
        "recognizer": s["recognizer"],
        "settings": first["settings"],
        "clock_mhz": clock / 1e6,
        "stride_ms": config["features"]["stride_ms"],
        "stride_budget": stride_budget,
        "inference_ms": first["settings"]["interval"] * config["features"]["stride_ms"],
        "tolerance_ms": (config.get("pipeline") or {}).get("tolerance_ms"),
        "fe": fe,
        "pre_per_stride": first["pre_per_stride"],
        "all_events_equal": all(m["events_equal"] and m["outputs_equal"] for m in measured),
        "all_clips_equal": all(m["clips"]["matches_host"] for m in measured),
        "clips_n": min(m["clips"]["n"] for m in measured),
        "figure": stage_figure(figs, costs, clock, multi_arch),
    }
    ctx["sentences"] = _sentences(ctx)
    return {"pipeline": ctx}


def _sentences(ctx) -> list[str]:
    out = []
    for st in ctx["stages"]:
        share = {x["key"]: 100 * x["instructions"] / st["total"] for x in st["stages"]}
        out.append(
            f"{st['label']}: {st['total'] / 1e6:.2f}M instructions per second of audio, about {st['mcu_ms']:.0f} ms "
            f"of every second at {ctx['clock_mhz']:g} MHz ({100 * st['share']:.1f}% of the core, so real time with a "
            f"{100 * (1 - st['share']):.0f}% margin); the features take {share['pre']:.0f}%, the network "
            f"{share['net']:.0f}%, the recognizer {share['post']:.2f}%."
        )
    for c in (c for c in ctx["changes"] if c["measured"]):
        out.append(
            f"{c['label']} cuts the network's instructions {c['network_factor']:.2f}x against {BASELINE} but the whole "
            f"pipeline's only {c['total_factor']:.2f}x: the features cost the same for every network" + "."
        )
    return out
