"""One pruning variant's workflow job."""

import tempfile
from pathlib import Path

from .grid import FAMILY_2BY4, FAMILY_PQAT, FAMILY_STRUCTURED, FAMILY_UNSTRUCTURED
from .m_by_n import m_by_n_pattern, prune_2by4, tflite_m_by_n
from .pqat import prune_preserving_qat
from .sparsity import PRUNABLE, check_sparsity, kernel_sparsity, tflite_sparsity
from .structured import prune_structured
from .unstructured import prune_unstructured_gradual, prune_unstructured_one_shot
from .wrappers import _history_rows


def prune_step(
    model_path,
    train_npz,
    val_npz,
    out_tflite,
    out_info,
    spec,
    seed,
    samples,
    latency_runs=100,
    variant=None,
    log_path=None,
    config=None,
):
    """One pruning variant: load the float model, prune as `spec` says, fine-tune or not, int8, write."""
    from ..model.convert import to_int8
    from ..model.evaluate import host_latency
    from ..model.size import estimate
    from ..model.steps import write_variant
    from ..model.train import load_model
    from ..npio import load_split
    from ..runlog import make_log
    from ..tfutil import make_deterministic

    log = make_log(log_path)
    make_deterministic(seed)
    family, mode = spec["family"], spec["mode"]
    ft = spec.get("fine_tune")
    train, val = load_split(train_npz), load_split(val_npz)
    model = load_model(model_path)
    before = estimate(model)["total"]
    extra = {"mode": mode, "fine_tuned": mode == "ft", "fine_tune": ft}
    qat_model = None
    with tempfile.TemporaryDirectory(dir=Path(out_info).parent, prefix=".prune_") as work:
        if family == FAMILY_UNSTRUCTURED:
            target = spec["sparsity"]
            if ft:
                pruned, schedule, history = prune_unstructured_gradual(
                    model, target, train, val, ft, seed, work, log=log, tag=variant or "prune"
                )
                extra.update(schedule=schedule, history=history)
            else:
                pruned = prune_unstructured_one_shot(model, target)
            achieved = kernel_sparsity(pruned)
            log(f"{variant}: target {target:.2%}, achieved " + ", ".join(f"{k} {v:.2%}" for k, v in achieved.items()))
            check_sparsity(achieved, target, spec["tolerance"])
            extra.update(sparsity_target=target, sparsity_achieved=achieved)
        elif family == FAMILY_STRUCTURED:
            # The unpruned model's reference-kernel latency, measured in the same job for a fair ratio.
            extra["host_latency_ref_unpruned"] = host_latency(
                to_int8(model, train[0], samples), train[0][0], latency_runs, reference=True
            )
            pruned, kept, norms = prune_structured(model, spec["norm"], spec["keep"], spec["out_of"])
            if ft:
                hist = Path(work) / "history.csv"
                from ..model.train import fit

                fit(
                    pruned,
                    train,
                    val,
                    ft["epochs"],
                    ft["batch_size"],
                    ft["learning_rate"],
                    Path(work) / "ft.weights.h5",
                    hist,
                    seed,
                    tag=variant or "chan",
                    log=log,
                )
                extra["history"] = _history_rows(hist)
            extra.update(
                norm=spec["norm"],
                keep=spec["keep"],
                out_of=spec["out_of"],
                kept_channels={k: v.tolist() for k, v in kept.items()},
                filter_norms=norms,
            )
            after = estimate(pruned)["total"]
            log(
                f"{variant}: kept {extra['kept_channels']} by {spec['norm']}; params {before['params']} -> "
                f"{after['params']}, MACs {before['macs']} -> {after['macs']}"
            )
            if not (after["params"] < before["params"] and after["macs"] < before["macs"]):
                raise RuntimeError(f"structured pruning did not shrink the model: {before} -> {after}")
        elif family == FAMILY_2BY4:
            pruned, methods, history = prune_2by4(model, train, val, ft, seed, work, log=log, tag=variant or "sp24")
            pattern = {
                l.name: m_by_n_pattern(l.get_weights()[0]) for l in pruned.layers if type(l).__name__ in PRUNABLE
            }
            for name, p in pattern.items():
                log(
                    f"{variant}: {name} 2:4 groups ok {p['groups_ok']}/{p['groups']} along {p['grouped_along']} "
                    f"({methods[name]}), sparsity {p['sparsity']:.2%}"
                )
                if p["groups_ok"] != p["groups"]:
                    raise RuntimeError(f"{name}: only {p['groups_ok']} of {p['groups']} groups are 2:4 sparse")
            extra.update(
                m_by_n=spec["m_by_n"],
                pattern=pattern,
                methods=methods,
                sparsity_target=0.5,
                sparsity_achieved={k: v["sparsity"] for k, v in pattern.items()},
            )
            if history:
                extra["history"] = history
        elif family == FAMILY_PQAT:
            target = spec["sparsity"]
            pruned, schedule, history = prune_unstructured_gradual(
                model, target, train, val, ft, seed, work, log=log, tag="prune"
            )
            check_sparsity(kernel_sparsity(pruned), target, spec["tolerance"], "sparsity before QAT")
            qat_model, pruned, qat_history = prune_preserving_qat(
                pruned, train, val, ft, spec["qat_epochs"], seed, work, log=log
            )
            achieved = kernel_sparsity(pruned)
            check_sparsity(achieved, target, spec["tolerance"], "sparsity after QAT")
            extra.update(
                sparsity_target=target,
                sparsity_achieved=achieved,
                schedule=schedule,
                history=history,
                qat_history=qat_history,
                qat_epochs=spec["qat_epochs"],
                scheme="Default8BitPrunePreserveQuantizeScheme",
            )
        else:
            raise ValueError(f"unknown pruning family {family!r}")
    content = to_int8(qat_model if qat_model is not None else pruned, train[0], samples)
    in_tflite = tflite_sparsity(content)
    log(
        f"{variant}: int8 TFLite {len(content)} bytes; weight sparsity "
        + ", ".join(f"{t['op']} {t['sparsity']:.2%}" for t in in_tflite)
    )
    if "sparsity_target" in extra and family != FAMILY_2BY4:
        # Zero float weights quantize to zero; fewer zeros in the file means the export lost the sparsity.
        low = [t for t in in_tflite if t["sparsity"] < extra["sparsity_target"] - spec["tolerance"]]
        if low:
            raise RuntimeError(f"sparsity did not survive into the TFLite weights: {low}")
    extra["tflite_sparsity"] = in_tflite
    if family == FAMILY_2BY4:
        extra["tflite_pattern"] = tflite_m_by_n(content)
        bad = [t for t in extra["tflite_pattern"] if t["groups_ok"] != t["groups"]]
        if bad:
            raise RuntimeError(f"the 2:4 pattern did not survive into the TFLite weights: {bad}")
    extra["host_latency_ref"] = host_latency(content, train[0][0], latency_runs, reference=True)
    total = estimate(pruned)["total"]
    extra["sparsity_overall"] = 1.0 - total["nonzero_params"] / total["params"]
    write_variant(pruned, content, out_tflite, out_info, family, config, **extra)
