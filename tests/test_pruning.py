"""Pruning study (issue 5): structured surgery, achieved sparsity, 2:4 masks, prune+QAT, fan-out, report."""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from tinymighty.pruning import grid as P
from tinymighty.pruning import m_by_n, pqat, report, sparsity, structured, unstructured

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SHAPE = (49, 40)


@pytest.fixture(scope="module")
def tfm():
    from tinymighty.tfutil import make_deterministic, tf_keras

    make_deterministic(11)
    return tf_keras


@pytest.fixture(scope="module")
def data():
    """Small learnable synthetic features: the class sets the mean of one band of the 'spectrogram'."""
    rng = np.random.default_rng(5)

    def split(n):
        y = rng.integers(0, 4, n)
        x = rng.normal(0, 1, (n,) + SHAPE).astype(np.float32)
        for c in range(4):
            x[y == c, :, 10 * c : 10 * c + 10] += 2.0
        return x, y

    return split(96), split(32)


@pytest.fixture(scope="module")
def trained(tfm, data):
    """A TinyConv trained briefly (bit-reproducible), reloaded fresh by each test via `fresh`."""
    from tinymighty.model import architectures as models
    from tinymighty.model.train import compile_model

    model = models.tiny_conv(SHAPE, 4)
    compile_model(model, 0.005)
    model.fit(*data[0], epochs=2, batch_size=32, verbose=0)
    return model


def fresh(tfm, model):
    m = tfm.models.clone_model(model)
    m.set_weights(model.get_weights())
    return m


FT = {"epochs": 2, "batch_size": 16, "learning_rate": 0.002, "prune_fraction": 0.5}


# --- the grid ------------------------------------------------------------------------------------------------


def test_variant_grid_from_configs():
    tiny = yaml.safe_load(TINY.read_text())
    names = [v.name for v in P.variants(tiny, "tinyconv")]
    # The keep sweep and the norm comparison share chan_l1_k4, which is built once.
    assert names == [
        "unst_s90_os",
        "unst_s90_ft",
        "chan_l1_k4_os",
        "chan_l1_k4_ft",
        "chan_linf_k4_os",
        "chan_linf_k4_ft",
        "sp24_os",
        "sp24_ft",
        "pqat_s75",
    ]
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    vs = P.variants(default, "tinyconv")
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", v.name) for v in vs)
    assert len({v.name for v in vs}) == len(vs) == 6 * 2 + (6 + 2) * 2 + 2 + 1
    assert all(v.tflite and v.int8 for v in vs)
    assert P.variants({"pruning": {"enabled": False}}, "tinyconv") == []
    assert P.variants({}, "tinyconv") == []
    bad = {"pruning": {**tiny["pruning"], "structured": {**tiny["pruning"]["structured"], "keep": [8]}}}
    with pytest.raises(ValueError, match="keep 8"):
        P.variants(bad, "tinyconv")
    assert [P.sparsity_tag(s) for s in (0.05, 0.5, 0.875, 0.95)] == ["s05", "s50", "s87p5", "s95"]


# --- structured ----------------------------------------------------------------------------------------------


def test_filter_ranking_norms_differ():
    # Filter 0: many small weights (big L1, small Linf); filter 1: one spike (big Linf); filter 2: in between.
    k = np.zeros((2, 2, 1, 3), np.float32)
    k[..., 0] = 0.3
    k[0, 0, 0, 1] = 1.0
    k[..., 2] = [[[0.5], [0.1]], [[0.1], [0.1]]]
    assert structured.top_filters(k, "l1", 1).tolist() == [0]
    assert structured.top_filters(k, "linf", 1).tolist() == [1]
    assert structured.filter_norms(k, "l2") == pytest.approx([0.6, 1.0, np.sqrt(0.28)])


@pytest.mark.parametrize("arch", ["tinyconv", "dscnn"])
def test_structured_model_equals_masked_original(tfm, arch):
    from tinymighty.model import architectures as models
    from tinymighty.model.size import estimate

    kwargs = {"filters": 12, "blocks": 2} if arch == "dscnn" else {}
    model = models.build(arch, SHAPE, 4, **kwargs)
    # Biases too, so a removed channel would leak relu(bias) if its downstream weights were not removed.
    model.set_weights(
        [w + 0.05 * np.random.default_rng(1).normal(size=w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    kept = structured.plan_channels(model, "l2", 5, 8)
    small = structured.remove_channels(model, kept)
    masked = structured.mask_channels(model, kept)
    x = np.random.default_rng(2).normal(size=(6,) + SHAPE).astype(np.float32)
    np.testing.assert_allclose(small(x, training=False), masked(x, training=False), rtol=1e-5, atol=1e-6)
    # The kept channels of every pruned conv compute exactly what the original's did on those channels.
    first = next(iter(kept))
    sub = lambda m: tfm.Model(m.inputs, m.get_layer(first).output)  # noqa: E731
    np.testing.assert_allclose(sub(small)(x), sub(model)(x).numpy()[..., kept[first]], rtol=1e-5, atol=1e-6)
    # Genuinely smaller.
    before, after = estimate(model)["total"], estimate(small)["total"]
    assert after["params"] < before["params"] and after["macs"] < before["macs"]
    for name, idx in kept.items():
        assert small.get_layer(name).filters == len(idx) == round(model.get_layer(name).filters * 5 / 8)
    if arch == "tinyconv":
        assert small.get_layer("dense").kernel.shape == (25 * 20 * 5, 4)


def test_structured_tflite_bytes_fall(tfm, trained, data):
    from tinymighty.model.convert import to_int8

    dense = len(to_int8(trained, data[0][0], 16))
    sizes = [len(to_int8(structured.prune_structured(trained, "l1", k, 8)[0], data[0][0], 16)) for k in (6, 3)]
    assert dense > sizes[0] > sizes[1]


# --- unstructured --------------------------------------------------------------------------------------------


def test_one_shot_sparsity_is_tfmot_magnitude(tfm, trained):
    model = fresh(tfm, trained)
    orig = {l.name: l.get_weights()[0].copy() for l in model.layers if type(l).__name__ in sparsity.PRUNABLE}
    pruned = unstructured.prune_unstructured_one_shot(model, 0.8)
    achieved = sparsity.kernel_sparsity(pruned)
    assert set(achieved) == {"conv", "dense"}
    sparsity.check_sparsity(achieved, 0.8, 0.01)
    for name, w in orig.items():  # the survivors are the largest magnitudes, unchanged
        k = pruned.get_layer(name).get_weights()[0]
        assert np.abs(w[k == 0]).max() <= np.abs(w[k != 0]).min()
        np.testing.assert_array_equal(k[k != 0], w[k != 0])
    with pytest.raises(RuntimeError, match="misses the target"):
        sparsity.check_sparsity(achieved, 0.9, 0.01)


def test_schedule_fires_in_short_runs():
    end, freq, first = unstructured.pruning_schedule_steps(n_train=93, batch_size=32, epochs=1, prune_fraction=1.0)
    assert (end, freq, first) == (3, 1, 0)
    end, freq, first = unstructured.pruning_schedule_steps(n_train=2600, batch_size=100, epochs=10, prune_fraction=0.5)
    assert end % freq == 0 and end <= 5 * 26 and first == 4 and freq < 100


def test_gradual_pruning_reaches_target_and_survives_int8(tfm, trained, data, tmp_path):
    from tinymighty.model.convert import to_int8

    pruned, schedule, history = unstructured.prune_unstructured_gradual(
        fresh(tfm, trained), 0.9, data[0], data[1], FT, 3, tmp_path, log=lambda m: None
    )
    sparsity.check_sparsity(sparsity.kernel_sparsity(pruned), 0.9, 0.01)
    assert len(history) == FT["epochs"] and schedule["checkpoint_from_epoch"] == 0
    in_file = sparsity.tflite_sparsity(to_int8(pruned, data[0][0], 16))
    assert [t["op"].split(":")[1] for t in in_file] == ["CONV_2D", "FULLY_CONNECTED"]
    assert all(t["sparsity"] >= 0.89 for t in in_file)


# --- 2:4 -----------------------------------------------------------------------------------------------------


def test_m_by_n_mask_matches_tfmot_where_tfmot_applies():
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_utils as pu

    from tinymighty.tfutil import tf

    rng = np.random.default_rng(3)
    for shape in [(16, 6), (3, 3, 8, 5)]:
        k = rng.normal(size=shape).astype(np.float32)
        theirs = pu.m_by_n_sparsity_mask_prepare(
            pu.generate_m_by_n_mask(pu.weights_rearrange(tf.constant(k))), tf.TensorShape(shape)
        ).numpy()
        np.testing.assert_array_equal(m_by_n.m_by_n_mask(k), theirs)
    # TinyConv's conv has one input channel: tfmot's grouping leaves it dense, ours groups along the width.
    k = rng.normal(size=(10, 8, 1, 8)).astype(np.float32)
    theirs = pu.m_by_n_sparsity_mask_prepare(
        pu.generate_m_by_n_mask(pu.weights_rearrange(tf.constant(k))), tf.TensorShape(k.shape)
    ).numpy()
    assert theirs.all()
    ours = m_by_n.m_by_n_mask(k)
    assert ours.reshape(10, 2, 4, 8).sum(axis=2).max() == ours.reshape(10, 2, 4, 8).sum(axis=2).min() == 2


def test_2by4_variant_pattern(tfm, trained, data, tmp_path):
    from tinymighty.model.convert import to_int8

    for ft in (None, {**FT, "epochs": 1}):
        pruned, methods, _ = m_by_n.prune_2by4(
            fresh(tfm, trained), *data, ft=ft, seed=1, workdir=tmp_path, log=lambda m: None
        )
        assert "tfmot" in methods["dense"] and "kernel width" in methods["conv"]
        for layer in ("conv", "dense"):
            pat = m_by_n.m_by_n_pattern(pruned.get_layer(layer).get_weights()[0])
            assert pat["groups_ok"] == pat["groups"] > 0 and pat["sparsity"] == pytest.approx(0.5)
    # In the TFLite file too (zero weights quantize to zero), group by group in TFLite's layout.
    content = to_int8(pruned, data[0][0], 16)
    for _, _, w in sparsity.tflite_weights(content):
        groups = w.reshape(w.shape[0], -1, 4)
        assert ((groups == 0).sum(axis=-1) >= 2).all()
    assert [(t["groups"], t["groups_ok"]) for t in m_by_n.tflite_m_by_n(content)] == [(160, 160), (4000, 4000)]


# --- prune + QAT ---------------------------------------------------------------------------------------------


def test_prune_preserving_qat_keeps_sparsity_in_tflite(tfm, trained, data, tmp_path):
    from tinymighty.model.convert import to_int8

    pruned = unstructured.prune_unstructured_one_shot(fresh(tfm, trained), 0.75)
    qat, plain, history = pqat.prune_preserving_qat(pruned, *data, FT, 1, 3, tmp_path, log=lambda m: None)
    assert len(history) == 1
    sparsity.check_sparsity(sparsity.kernel_sparsity(plain), 0.75, 0.01)
    in_file = sparsity.tflite_sparsity(to_int8(qat, data[0][0], 16))
    assert len(in_file) == 2 and all(t["sparsity"] >= 0.74 for t in in_file)


# --- report --------------------------------------------------------------------------------------------------


def _fake_rows():
    rows = []

    def row(variant, family, acc, host, dev=None, **kw):
        h = {"mode": host.pop("mode", None), **host}
        r = {
            "arch": "tinyconv",
            "variant": variant,
            "label": f"tinyconv/{variant}",
            "family": family,
            "accuracy": acc,
            "params": kw.get("params", 16652),
            "nonzero_params": kw.get("nz", 16652),
            "macs": kw.get("macs", 336000),
            "flops": kw.get("macs", 336000) * 2,
            "tflite_bytes": 20000,
            "gzip_bytes": kw.get("gz", 18000),
            "host_ms": 0.1,
            "deployable": True,
            "host": {"n": 500, **h},
            "device": dev,
        }
        if dev:
            r.update(instructions=dev["instructions"]["median"], flash=dev["flash"]["total"])
        rows.append(r)

    def dev(i, f, d=None):
        return {
            "instructions": {"median": i},
            "flash": {"total": f, "model": f - 9000},
            **({"dense_kernels": {"instructions_median": d, "flash_model": 21000}} if d else {}),
        }

    row("float", "float", 0.9, {}, None)
    row("ptq_int8", "ptq", 0.89, {}, dev(3_000_000, 30000))
    for s, acc in ((0.5, 0.88), (0.9, 0.85)):
        for mode, pen in (("os", 0.3), ("ft", 0.0)):
            nz = int(16652 * (1 - s))
            row(
                f"unst_{P.sparsity_tag(s)}_{mode}",
                P.FAMILY_UNSTRUCTURED,
                acc - pen,
                {"mode": mode, "sparsity_target": s, "sparsity_overall": s, "fine_tuned": mode == "ft"},
                dev(int(3e6 * (1 - s)) + 50000, 30000 - int(9000 * s), 3_000_000),
                nz=nz,
            )
    for norm in ("l1", "l2", "linf"):
        for k in (6, 4) if norm == "l1" else (4,):
            for mode, pen in (("os", 0.2), ("ft", 0.0)):
                row(
                    f"chan_{norm}_k{k}_{mode}",
                    P.FAMILY_STRUCTURED,
                    0.8 - pen + k / 100,
                    {
                        "mode": mode,
                        "norm": norm,
                        "keep": k,
                        "out_of": 8,
                        "kept_channels": {"conv": list(range(k))},
                        "filter_norms": {"conv": [8.0 - i for i in range(8)]},
                        "host_latency_ref": {"median_ms": 0.05 * k},
                        "host_latency_ref_unpruned": {"median_ms": 0.4},
                    },
                    dev(int(3e6 * k / 8), 20000),
                    params=16652 * k // 8,
                    nz=16652 * k // 8,
                    macs=42000 * k,
                )
    row(
        "sp24_ft",
        P.FAMILY_2BY4,
        0.86,
        {
            "mode": "ft",
            "sparsity_target": 0.5,
            "methods": {"conv": "own"},
            "pattern": {"conv": {"groups": 160, "groups_ok": 160, "sparsity": 0.5}},
        },
        dev(2_000_000, 26000),
        nz=8332,
    )
    row(
        "pqat_s75",
        P.FAMILY_PQAT,
        0.87,
        {"mode": "ft", "sparsity_target": 0.75, "tflite_sparsity": [{"op": "4:CONV_2D", "sparsity": 0.75}]},
        dev(1_000_000, 24000),
        nz=4172,
    )
    return rows


def _render_section(ctx, config):
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(REPO / "report" / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = lambda v, d=1: "n/a" if v is None else f"{100 * v:.{d}f}%"
    env.filters["ms"] = lambda v: "n/a" if v is None else f"{v:.3f}"
    env.filters["num"] = lambda v: "n/a" if v is None else f"{v:,}"
    return env.get_template("pruning.html.j2").render(config=config, **ctx)


@pytest.mark.parametrize("with_device", [True, False])
def test_report_context_and_template(tmp_path, with_device):
    from tinymighty.plots import Figures

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    rows = _fake_rows()
    if not with_device:
        for r in rows:
            r["device"] = None
            r.pop("instructions", None), r.pop("flash", None)
    figs = Figures(tmp_path / "report_files")
    ctx = report.report_context(rows, config, figs)
    a = ctx["pruning"]["archs"]["tinyconv"]
    expected = {"fig_params", "fig_structured_cost", "fig_norms"} | ({"fig_unst_instr"} if with_device else set())
    assert expected <= set(a) and (tmp_path / a["fig_params"]).exists()
    assert ("fig_unst_instr" in a) == with_device
    page = _render_section(ctx, config)
    assert "6. Pruning</h2>" in page and "Pareto" in page and "Target" not in page
    assert a["fine_tuning"]["verdict"] == "helps" and "Fine-tuning matters" in page
    if with_device:
        assert "The zero-skipping kernels pay from 50% sparsity" in page
        assert ctx["pruning"]["pareto"]["tinyconv"]["on_device"]
    off = report.report_context(rows, {**config, "pruning": {"enabled": False}}, figs)
    assert off == {"pruning": {"enabled": False}} and "<h2>" not in _render_section(off, config)
    assert "<h2>" not in _render_section({}, config)  # a report built without the pruning hook


def test_pareto_front():
    pts = [{"x": 1, "accuracy": 0.5}, {"x": 2, "accuracy": 0.4}, {"x": 3, "accuracy": 0.8}, {"x": 3, "accuracy": 0.7}]
    assert report.pareto_front(pts, "x") == [0, 2]


# --- workflow ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dry_run_shows_fan_out(tmp_path):
    from conftest import snakemake

    out = snakemake(tmp_path, "-n", "--cores", "2").stdout
    assert re.search(r"^prune\s+9$", out, flags=re.M), out
    jobs = re.findall(r"^rule prune:\n(?:    .*\n)*?    wildcards: arch=\w+, variant=(\w+)", out, flags=re.M)
    assert Counter(v.split("_")[0] for v in jobs) == {"unst": 2, "chan": 4, "sp24": 2, "pqat": 1}


@pytest.mark.slow
def test_tiny_workflow_pruning_results(tiny_run):
    res = tiny_run / "results"
    hosts = {p.parent.name: json.loads(p.read_text()) for p in (res / "variants" / "tinyconv").glob("*/host.json")}
    dense = hosts["ptq_int8"]
    for _name, h in hosts.items():
        if h.get("family") == P.FAMILY_UNSTRUCTURED:
            assert all(abs(v - h["sparsity_target"]) <= 0.01 for v in h["sparsity_achieved"].values())
            assert h["nonzero_params"] < dense["nonzero_params"] and h["gzip_bytes"] < dense["gzip_bytes"]
        if h.get("family") == P.FAMILY_STRUCTURED:
            assert h["params"] < dense["params"] and h["macs"] < dense["macs"]
            assert h["tflite_bytes"] < dense["tflite_bytes"]
        if h.get("family") == P.FAMILY_PQAT:
            assert all(t["sparsity"] >= 0.74 for t in h["tflite_sparsity"])
    assert {"unst_s90_ft", "chan_l1_k4_os", "sp24_ft", "pqat_s75"} <= set(hosts)
    html = (res / "report.html").read_text()
    assert "6. Pruning</h2>" in html
    for fig in (
        "pruning_acc_vs_params_tinyconv",
        "pruning_structured_cost_tinyconv",
        "pruning_norms_tinyconv",
        "pruning_pareto_tinyconv",
    ):
        assert (res / "report_files" / f"{fig}.png").exists() and f"{fig}.png" in html


def test_schema_is_strict():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(REPO / "rules" / "schema" / "config.schema.yaml")
    config = yaml.safe_load(TINY.read_text())
    validate(config, schema)
    for bad in (
        {"structured": {**config["pruning"]["structured"], "norm": "l3"}},
        {"unstructured": {"sparsities": [1.5]}},
        {"modes": ["os", "x/../y"]},
        {"typo": 1},
    ):
        with pytest.raises(WorkflowError):
            validate({**config, "pruning": {**config["pruning"], **bad}}, schema)
