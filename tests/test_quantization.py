"""Quantization study (issue 4): the variant grid, tfmot n-bit quantizers, QAT int8 under TFLM, minifloat
rounding, the sweep fan-out in `snakemake -n`, and the bit-width plot of the tiny end-to-end run."""

import copy
import json
import re

import numpy as np
import pytest
import yaml
from conftest import REPO, TINY, snakemake
from snakemake.exceptions import WorkflowError

from tinymighty.quantization import export, methods, minifloat, report
from tinymighty.quantization import grid as Q

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
SCHEMA = REPO / "rules" / "schema" / "config.schema.yaml"


# ------------------------------------------------------------------------------------------ grid and schema


def test_default_grid_names_and_flags():
    by = {s.name: s for s in Q.specs(CONFIG)}
    sweep = {f"{m}_b{n}" for m in ("ptq", "qat") for n in range(2, 9)}
    assert sweep | {"qat_int8", "ptq_w4a8", "qat_w4a8", "mf_e4m3", "mf_e5m2"} == set(by)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in by)
    # exported + deployed: 8-bit activations with int8 weights
    for n in ("qat_int8", "ptq_b8", "qat_b8"):
        assert by[n].tflite and by[n].deployed and not by[n].int4
    # exported with INT4-packed weights, deployed like the others (codegen keeps them packed)
    for n in ("ptq_w4a8", "qat_w4a8"):
        assert by[n].tflite and by[n].int4 and by[n].deployed and not by[n].deployable_reason
    for n in ("ptq_b4", "qat_b7", "mf_e4m3"):
        assert not by[n].tflite and not by[n].deployed and by[n].deployable_reason
    assert by["mf_e5m2"].bits == 8 and by["ptq_b3"].bits == 3
    variants = Q.variants(CONFIG, "tinyconv")
    assert {v.name for v in variants} == set(by) and all(v.arch == "tinyconv" for v in variants)
    assert {v.name for v in variants if v.int8} == {"qat_int8", "ptq_b8", "qat_b8", "ptq_w4a8", "qat_w4a8"}


def test_job_params_hold_only_what_the_job_depends_on():
    ptq, qat, mf = (Q.job_params(CONFIG, n) for n in ("ptq_b4", "qat_b4", "mf_e4m3"))
    assert "fine_tune" not in ptq and ptq["calibration_samples"] == CONFIG["quantization"]["calibration_samples"]
    assert qat["fine_tune"] == CONFIG["quantization"]["fine_tune"] and qat["seed"] == CONFIG["seed"]
    assert set(mf) == {"spec"}
    changed = copy.deepcopy(CONFIG)
    changed["quantization"]["fine_tune"]["epochs"] += 1
    assert Q.job_params(changed, "ptq_b4") == ptq and Q.job_params(changed, "qat_b4") != qat


def test_disabled_or_missing_study_has_no_variants():
    off = copy.deepcopy(CONFIG)
    off["quantization"]["enabled"] = False
    assert Q.variants(off, "tinyconv") == []
    off.pop("quantization")
    assert Q.variants(off, "tinyconv") == []
    assert Q.rule_regex(off, "ptq_export") == "(?!)"


def _validate(cfg):
    from snakemake.utils import validate

    validate(copy.deepcopy(cfg), str(SCHEMA))


@pytest.mark.parametrize(
    "path,value",
    [
        (("sweep", "bits"), [4, 9]),
        (("sweep", "bits"), ["4; rm -rf /"]),
        (("sweep", "methods"), ["gptq"]),
        (("minifloat",), [{"exponent": 4, "mantissa": 0, "special": "fn"}]),
        (("minifloat",), [{"exponent": 4, "mantissa": 3, "special": "fnuz"}]),
        (("mixed",), [{"weights": 4, "activations": 8, "name": "../x"}]),
        (("unknown_key",), 1),
    ],
)
def test_schema_rejects(path, value):
    _validate(CONFIG)
    _validate(yaml.safe_load(TINY.read_text()))
    bad = copy.deepcopy(CONFIG)
    node = bad["quantization"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(WorkflowError):
        _validate(bad)


# ------------------------------------------------------------------------------------- tfmot + TFLite/TFLM


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 192
    y = rng.integers(0, 4, n)
    x = rng.uniform(0, 4, (n, 49, 40)).astype(np.float32)
    for c in range(4):  # a class-dependent band, so a short training learns something
        x[y == c, :, 10 * c : 10 * c + 10] += 12.0
    return x, y


@pytest.fixture(scope="module")
def float_model(data, tmp_path_factory):
    from tinymighty.model.architectures import tiny_conv
    from tinymighty.model.train import fit

    x, y = data
    model = tiny_conv((49, 40), 4)
    d = tmp_path_factory.mktemp("float")
    fit(model, (x[:160], y[:160]), (x[160:], y[160:]), 2, 32, 0.003, d / "w.weights.h5", d / "h.csv", seed=1)
    return model


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_nbit_quantizers_really_quantize(float_model, data, bits):
    before = [w.copy() for w in float_model.get_weights()]
    q = methods.quantize(float_model, Q.Spec(f"ptq_b{bits}", "ptq", "n_bit", bits, bits))
    ranges = methods.calibrate(q, float_model, data[0][:64])
    # calibration is not training: the weights are untouched, the ranges are the data's
    assert all(np.array_equal(a, b) for a, b in zip(before, float_model.get_weights(), strict=False))
    assert ranges["input"] == [0.0, pytest.approx(float(data[0][:64].max()))]
    fq = methods.fake_quant_weights(q)
    assert set(fq) == {"conv/kernel", "dense/kernel"}
    for name, w in fq.items():
        flat = w.reshape(-1, w.shape[-1])
        levels = [len(np.unique(flat[:, c])) for c in range(flat.shape[1])]
        assert max(levels) <= 2**bits, (name, levels)
        assert min(levels) >= min(3, 2**bits - 1), (name, levels)  # really uses the grid, not one value
        # symmetric narrow range: every value is an integer multiple of the per-channel step
        amax = np.abs(flat).max(axis=0) if name.startswith("conv") else np.abs(flat).max()  # per channel / tensor
        step = amax / (2 ** (bits - 1) - 1)
        k = flat / np.where(step > 0, step, 1)
        np.testing.assert_allclose(k, np.round(k), atol=1e-3)
    assert methods.weight_levels(q) == {
        n: max(len(np.unique(w.reshape(-1, w.shape[-1])[:, c])) for c in range(w.shape[-1])) for n, w in fq.items()
    }


def test_activation_ranges_replace_the_tfmot_init(float_model, data):
    q = methods.quantize(float_model, Q.Spec("ptq_b6", "ptq", "n_bit", 6, 6))
    before = {v.name: float(v.numpy()) for v, _, _ in methods._activation_range_vars(q)}
    assert set(before.values()) <= {-6.0, 6.0, 0.0}  # tfmot's initial ranges
    ranges = methods.calibrate(q, float_model, data[0])
    conv = [v for v in q.weights if v.name.endswith("quant_conv/post_activation_max:0")][0]
    assert float(conv.numpy()) == pytest.approx(ranges["conv"][1]) and ranges["conv"][0] == 0.0  # after ReLU


@pytest.fixture(scope="module")
def qat_int8(float_model, data, tmp_path_factory):
    x, y = data
    q = methods.quantize(float_model, Q.Spec("qat_int8", "qat", "default_8bit", 8, 8))
    methods.calibrate(q, float_model, x[:64])
    d = tmp_path_factory.mktemp("qat")
    methods._fine_tune(
        q,
        (x[:160], y[:160]),
        (x[160:], y[160:]),
        {"epochs": 1, "batch_size": 32, "learning_rate": 0.0005},
        1,
        d / "h.csv",
        "t",
        lambda *_: None,
    )
    return q, export.to_tflite(q)


def test_qat_int8_tflite_under_tflm_equals_builtin_ref(qat_int8, data):
    from tinymighty.model.evaluate import io_details, run_tflite, tflm_outputs
    from tinymighty.tfutil import ref_interpreter

    q, content = qat_int8
    inp, out = io_details(ref_interpreter(content))
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert {t["type"] for t in export.tensor_types(content)} <= {"int8", "int32"}
    ref, xq = run_tflite(content, data[0][:48])
    micro = tflm_outputs(content, xq)
    np.testing.assert_array_equal(micro, ref)
    # and the TFLite model is the fake-quant model it came from (up to integer rounding)
    keras = np.asarray(q.predict(data[0][:48], verbose=0)).argmax(1)
    assert np.mean(keras == ref.argmax(1)) >= 0.9


def test_w4a8_exports_int4_packed_weights(float_model, data):
    s = Q.spec(CONFIG, "ptq_w4a8")
    q = methods.quantize(float_model, s)
    methods.calibrate(q, float_model, data[0][:64])
    content = export.to_tflite(q)
    assert export.weight_storage(content) == "int4" and s.int4
    kernels = {t["name"]: t for t in export.tensor_types(content) if t["type"] == "int4"}
    assert sum(t["const_bytes"] for t in kernels.values()) == (10 * 8 * 8 + 4000 * 4) // 2


# --------------------------------------------------------------------------------------------- minifloat


@pytest.mark.parametrize(
    "e,m,special,dtype,maxval", [(4, 3, "fn", "float8_e4m3fn", 448.0), (5, 2, "ieee", "float8_e5m2", 57344.0)]
)
def test_minifloat_rounding_matches_ml_dtypes(e, m, special, dtype, maxval):
    import ml_dtypes

    assert minifloat.minifloat_max(e, m, special) == maxval
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(20000) * 10.0 ** rng.uniform(-6, np.log10(maxval) - 0.5, 20000)).astype(np.float32)
    # exact ties between two neighbours (tie to even) and subnormals
    grid = np.array(
        [
            v
            for v in np.arange(256, dtype=np.uint8).view(getattr(ml_dtypes, dtype)).astype(np.float32)
            if np.isfinite(v) and v > 0
        ]
    )
    grid.sort()
    ties = ((grid[:-1] + grid[1:]) / 2).astype(np.float32)
    x = np.concatenate([x, ties, -ties, grid[:8] / 3, [0.0, -0.0]]).astype(np.float32)
    want = x.astype(getattr(ml_dtypes, dtype)).astype(np.float32)
    got = np.asarray(minifloat.fake_minifloat(x, e, m, special))
    np.testing.assert_array_equal(got, want)
    # saturation (ml_dtypes gives inf/NaN here; the documented rule is +-max finite)
    big = np.array([maxval * 1.01, -1e30, 3e38], np.float32)
    np.testing.assert_array_equal(np.asarray(minifloat.fake_minifloat(big, e, m, special)), [maxval, -maxval, maxval])


def test_minifloat_in_tfmot_quantizes_weights_and_activations(float_model, data):
    s = Q.spec(CONFIG, "mf_e4m3")
    q = methods.quantize(float_model, s)
    fq = methods.fake_quant_weights(q)
    assert set(fq) == {"conv/kernel", "dense/kernel"}
    for w in fq.values():
        np.testing.assert_array_equal(np.asarray(minifloat.fake_minifloat(w, 4, 3, "fn")), w)  # on the grid
        assert len(np.unique(w)) <= 255
    assert not np.array_equal(fq["dense/kernel"], float_model.get_layer("dense").get_weights()[0])
    kinds = {l.name: type(l.quantize_config).__name__ for l in q.layers if hasattr(l, "quantize_config")}
    assert kinds["quant_conv"] == kinds["quant_reshape"] == "MinifloatQuantizeConfig"
    # the model's predictions run through the quantizers
    out = np.asarray(q.predict(data[0][:16], verbose=0))
    assert out.shape == (16, 4) and np.all(np.isfinite(out))


# ----------------------------------------------------------------------------------------------- report


def test_cliff_sentence():
    pts = [(8, 0.90), (7, 0.899), (6, 0.895), (5, 0.88), (4, 0.70), (3, 0.40), (2, 0.25)]
    text = report.cliff_sentence("PTQ", pts, 0.90, 1.0)
    assert "falls more than 1 point below float at 5 bits" in text and "from 8 down to 6 bits" in text
    assert "stays within 1 point" in report.cliff_sentence("QAT", [(8, 0.9), (4, 0.895)], 0.9, 1.0)
    assert "Not monotone: 4 bits" in report.cliff_sentence("X", [(8, 0.9), (6, 0.85), (4, 0.9)], 0.9, 1.0)


def _row(variant, family, acc, **host):
    host = {"n": 100, **host}
    return {
        "arch": "tinyconv",
        "variant": variant,
        "label": f"tinyconv/{variant}",
        "family": family,
        "accuracy": acc,
        "agreement": None if variant == "float" else 0.9,
        "tflite_bytes": None,
        "deployable": host.get("deployable"),
        "tflm": None,
        "host": host,
    }


def _render(ctx):
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(REPO / "report" / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v, d=1: "n/a" if v is None else f"{100 * v:.{d}f}%"
    env.filters["ms"] = lambda v: "n/a" if v is None else f"{v:.3f}"
    env.filters["num"] = lambda v: "n/a" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:,.3g}")
    return env.get_template("quantization.html.j2").render(**ctx)


def test_report_context_and_template(tmp_path):
    from tinymighty.plots import Figures

    rows = [
        _row("float", "float", 0.90),
        _row("ptq_int8", "ptq", 0.895, bits=8, deployable=True),
        _row("qat_int8", "qat", 0.898, bits=8, weight_bits=8, activation_bits=8, deployable=True),
    ]
    for n, (p, q) in {8: (0.9, 0.9), 4: (0.80, 0.895), 2: (0.3, 0.6)}.items():
        rows.append(_row(f"ptq_b{n}", "ptq_nbit", p, bits=n, weight_bits=n, activation_bits=n))
        rows.append(_row(f"qat_b{n}", "qat_nbit", q, bits=n, weight_bits=n, activation_bits=n))
    rows.append(
        _row(
            "mf_e4m3",
            "minifloat",
            0.9,
            bits=8,
            exponent=4,
            mantissa=3,
            special="fn",
            deployable=False,
            deployable_reason="no FP8 in TFLite",
        )
    )
    ctx = report.report_context(rows, CONFIG, Figures(tmp_path / "figs"))
    assert (tmp_path / ctx["quant_figs"]["tinyconv"]).stat().st_size > 1000
    cliffs = " ".join(ctx["quant_cliffs"]["tinyconv"])
    assert "PTQ falls more than 1 point below float at 4 bits" in cliffs
    assert "QAT falls more than 1 point below float at 2 bits" in cliffs
    findings = " ".join(ctx["quant_findings"]["tinyconv"])  # computed sentences; tests/test_report.py flips them
    assert "QAT int8 reaches 89.80%, -0.20 points against float (90.00%): within noise" in findings
    assert "QAT's largest gain over it is +30.00 points at 2 bits" in findings and "more than noise" in findings
    page = _render({**ctx, "provenance": {"versions": {}}})
    assert "accuracy vs bit-width" in page and "no FP8 in TFLite" in page and "mf_e4m3" in page
    # the study switched off: the report still renders, without the section
    off = copy.deepcopy(CONFIG)
    off["quantization"]["enabled"] = False
    assert report.report_context(rows, off, None) == {}
    assert "Quantization study" not in _render({})


# ------------------------------------------------------------------------------------------- the workflow


def _dry_run(tmp_path, configfile):
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = snakemake(tmp_path, "-n", configfile=configfile, timeout=300)
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_sweep_fans_out_in_dry_run(tmp_path):
    out = _dry_run(tmp_path, REPO / "config.yaml")
    for n in range(2, 9):
        for m in ("ptq", "qat"):
            assert f"variant={m}_b{n}" in out or f"{m}_b{n}" in out, f"{m}_b{n} missing from snakemake -n"
    # W4A8 (INT4-packed weights) is deployed like every exported variant: compiled, built and measured
    jobs = {
        (m.group(1), m.group(2))
        for m in re.finditer(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: .*variant=(\w+)", out, re.M)
    }
    for name in ("ptq_w4a8", "qat_w4a8"):
        assert {("codegen", name), ("firmware_build", name), ("device", name)} <= jobs, name
    # the grid is data: a different list gives different jobs
    cfg = yaml.safe_load(TINY.read_text())
    cfg["quantization"].update(sweep={"bits": [3, 6], "methods": ["ptq"]}, mixed=[], minifloat=[], qat_int8=False)
    cfg_path = tmp_path / "grid.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = _dry_run(tmp_path / "grid", cfg_path)
    assert "ptq_b3" in out and "ptq_b6" in out
    assert not re.search(r"\b(qat_b3|ptq_b4|ptq_b8|qat_int8|mf_e4m3)\b", out)


@pytest.mark.slow
def test_tiny_run_produces_the_bit_width_plot(tiny_run):
    res = tiny_run / "results"
    png = res / "report_files" / "quant_bits_tinyconv.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "quant_bits_tinyconv.png" in (res / "report.html").read_text()
    cfg = yaml.safe_load(TINY.read_text())
    for s in Q.specs(cfg):
        host = json.loads((res / "variants" / "tinyconv" / s.name / "host.json").read_text())
        for key in (
            "accuracy",
            "n",
            "per_class",
            "confusion",
            "agreement_with_float",
            "params",
            "macs",
            "flops",
            "tflite_bytes",
            "deployable",
            "bits",
            "family",
        ):
            assert key in host, (s.name, key)
        if s.tflite:
            assert host["deployable"] is True and host["tflm"]["inputs"] > 0 and host["tflite_bytes"] > 0
        else:
            assert host["deployable"] is False and host["deployable_reason"] and host["tflite_bytes"] is None
        if s.method == "ptq":
            assert host["weights_unchanged"] is True
    qat = json.loads((res / "variants" / "tinyconv" / "qat_int8" / "host.json").read_text())
    assert qat["tflm"]["bitexact"] is True and qat["weight_storage"] == "int8"
