"""The pruning variant grid: which variants a config asks for, each with the spec its job runs from.

Imports no TensorFlow: the workflow imports this module to build the DAG.
"""

from ..variant import Variant

FAMILY_UNSTRUCTURED = "prune_unstructured"
FAMILY_STRUCTURED = "prune_structured"
FAMILY_2BY4 = "prune_2by4"
FAMILY_PQAT = "prune_qat"
FAMILIES = (FAMILY_UNSTRUCTURED, FAMILY_STRUCTURED, FAMILY_2BY4, FAMILY_PQAT)
MODES = ("os", "ft")
NORMS = ("l1", "l2", "linf")
M_BY_N = (2, 4)


def sparsity_tag(s: float) -> str:
    """0.9 -> 's90', 0.05 -> 's05', 0.875 -> 's87p5' (names stay unique and sortable)."""
    pct = round(100 * float(s), 4)
    return f"s{int(pct):02d}" if pct == int(pct) else "s" + f"{pct:g}".replace(".", "p")


def specs(config):
    """{variant name: spec} for every pruning variant the config asks for; a spec is everything one job
    needs (and nothing else), so it doubles as the rule's params."""
    cfg = config.get("pruning") or {}
    if not cfg.get("enabled", False):
        return {}
    modes = list(cfg.get("modes", MODES))
    ft = dict(cfg["fine_tune"])
    out = {}

    def add(name, family, mode, **kw):
        spec = dict(family=family, mode=mode, **kw)
        if mode == "ft":
            spec["fine_tune"] = ft
        out[name] = spec

    unst = cfg.get("unstructured") or {}
    for s in unst.get("sparsities", []):
        for mode in modes:
            add(
                f"unst_{sparsity_tag(s)}_{mode}",
                FAMILY_UNSTRUCTURED,
                mode,
                sparsity=float(s),
                tolerance=float(unst.get("tolerance", 0.01)),
            )
    st = cfg.get("structured") or {}
    if st:
        grid = [(st["norm"], k) for k in st.get("keep", [])]
        grid += [(n, st["compare_keep"]) for n in st.get("compare_norms", []) if "compare_keep" in st]
        seen = set()
        for norm, k in grid:
            if not 0 < k < st.get("out_of", 8):
                raise ValueError(
                    f"pruning.structured: keep {k} must be between 1 and out_of - 1 "
                    f"({st.get('out_of', 8) - 1}); keeping every filter prunes nothing"
                )
            if (norm, k) in seen:
                continue
            seen.add((norm, k))
            for mode in modes:
                add(
                    f"chan_{norm}_k{k}_{mode}",
                    FAMILY_STRUCTURED,
                    mode,
                    norm=norm,
                    keep=int(k),
                    out_of=int(st.get("out_of", 8)),
                )
    if (cfg.get("two_by_four") or {}).get("enabled", False):
        for mode in modes:
            add(f"sp24_{mode}", FAMILY_2BY4, mode, m_by_n=list(M_BY_N))
    pq = cfg.get("pqat") or {}
    for s in pq.get("sparsities", []):
        add(
            f"pqat_{sparsity_tag(s)}",
            FAMILY_PQAT,
            "ft",
            sparsity=float(s),
            tolerance=float(unst.get("tolerance", 0.01)),
            qat_epochs=int(pq["epochs"]),
        )
    return out


def variants(config, arch):
    return [Variant(arch, name, spec["family"]) for name, spec in specs(config).items()]
