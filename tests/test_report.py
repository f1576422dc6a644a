"""The report (issue 12): built from small results tables written in tmp, no workflow run. Its images exist and
decode, every part of the original study is there, its conclusions follow the data (a doctored table flips them),
and `./tbm recommend` answers for other budgets."""

import copy
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tinymighty import budgets as board
from tinymighty.report import recommend as R

REPO = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
LABELS = ["_silence_", "_unknown_", "yes", "no"]
N = 571

# ------------------------------------------------------------------------------------------ results tables
# One row per variant: (variant, family, accuracy, host fields, device (instructions, model flash bytes) or None).
# Close to what the default run measured.
MEASURED = [
    ("float", "float", 0.958, {}, None),
    ("ptq_int8", "ptq", 0.958, {"bits": 8}, (853_920, 16_904)),
    ("qat_int8", "qat", 0.963, {"bits": 8}, (854_000, 16_904)),
    *[
        (f"{m}_b{b}", f"{m}_nbit", acc, {"bits": b, "weight_bits": b, "activation_bits": b}, dev)
        for m, b, acc, dev in (
            ("ptq", 8, 0.958, (853_920, 16_904)),
            ("ptq", 4, 0.937, None),
            ("ptq", 2, 0.093, None),
            ("qat", 8, 0.961, (854_000, 16_904)),
            ("qat", 4, 0.953, None),
            ("qat", 2, 0.840, None),
        )
    ],
    ("mf_e4m3", "minifloat", 0.954, {"bits": 8, "exponent": 4, "mantissa": 3, "special": "fn"}, None),
    *[
        (f"unst_s{int(100 * s)}_{m}", "prune_unstructured", acc, {"mode": m, "sparsity_target": s}, dev)
        for s, m, acc, dev in (
            (0.5, "os", 0.949, (854_200, 16_904)),
            (0.5, "ft", 0.956, (853_920, 16_904)),
            (0.9, "os", 0.777, (251_600, 7_832)),
            (0.9, "ft", 0.928, (257_160, 7_944)),
        )
    ],
    *[
        (f"chan_{n}_k{k}_{m}", "prune_structured", acc, {"mode": m, "norm": n, "keep": k}, (60_000 + 2 * 42_000 * k, 0))
        for n, k, m, acc in (
            ("l1", 6, "os", 0.926),
            ("l1", 6, "ft", 0.962),
            ("l1", 4, "os", 0.853),
            ("l1", 4, "ft", 0.953),
            ("l2", 4, "os", 0.893),
            ("l2", 4, "ft", 0.951),
            ("linf", 4, "os", 0.893),
            ("linf", 4, "ft", 0.951),
        )
    ],
    ("sp24_ft", "prune_2by4", 0.962, {"mode": "ft", "sparsity_target": 0.5}, (854_320, 16_904)),
    ("pqat_s75", "prune_qat", 0.944, {"mode": "ft", "sparsity_target": 0.75}, (854_240, 16_904)),
]


def doctored(table):
    """The same variants with the opposite story: int8 much worse than float, pruning collapsing at 50%,
    fine-tuning useless, sparse kernels and channel removal buying nothing, norms far apart."""
    worse = {
        "ptq_int8": 0.800,
        "qat_int8": 0.780,
        "ptq_b8": 0.800,
        "unst_s50_os": 0.400,
        "unst_s50_ft": 0.390,
        "unst_s90_os": 0.300,
        "unst_s90_ft": 0.300,
        "chan_l1_k6_os": 0.500,
        "chan_l1_k6_ft": 0.500,
        "chan_l1_k4_os": 0.600,
        "chan_l1_k4_ft": 0.600,
        "chan_l2_k4_os": 0.300,
        "chan_l2_k4_ft": 0.310,
        "chan_linf_k4_os": 0.450,
        "chan_linf_k4_ft": 0.450,
        "ptq_b4": 0.900,
        "qat_b4": 0.700,
        "qat_b8": 0.750,
        "qat_b2": 0.050,
        "sp24_ft": 0.500,
        "pqat_s75": 0.500,
    }
    out = []
    for v, fam, acc, host, dev in table:
        if dev and (fam.startswith("prune") or v.startswith("unst")):
            dev = (853_920, 16_904)  # no speed-up and no smaller flash from any pruning
        out.append((v, fam, worse.get(v, acc), host, dev))
    return out


def _metrics(variant, family, acc, host, dev):
    n_pos = round(acc * N)
    h = {
        "arch": "tinyconv",
        "variant": variant,
        "family": family,
        "accuracy": acc,
        "n": N,
        "per_class": {lab: {"precision": acc, "recall": acc, "support": N // 4} for lab in LABELS},
        "confusion": [[n_pos // 4 if i == j else 3 for j in range(4)] for i in range(4)],
        "tflite_bytes": 69_848 if variant == "float" else 20_504,
        "gzip_bytes": 63_344 if variant == "float" else 16_006,
        "agreement_with_float": None if variant == "float" else acc,
        "host_latency": {"median_ms": 0.02 if variant == "float" else 0.11, "p10_ms": 0.019, "p90_ms": 0.12},
        "params": 16_652,
        "nonzero_params": 16_652,
        "macs": 336_000,
        "flops": 676_004,
        "deployable": dev is not None,
        **host,
    }
    if host.get("keep"):
        k = host["keep"]
        h.update(
            params=16_652 * k // 8,
            nonzero_params=16_652 * k // 8,
            macs=42_000 * k,
            flops=84_000 * k,
            out_of=8,
            kept_channels={"conv": list(range(k))},
            filter_norms={"conv": [8.0 - i for i in range(8)]},
            host_latency_ref={"median_ms": 0.05 * k},
            host_latency_ref_unpruned={"median_ms": 0.4},
        )
    if host.get("sparsity_target"):
        h["nonzero_params"] = int(16_652 * (1 - host["sparsity_target"]))
        h["sparsity_overall"] = host["sparsity_target"]
    if variant.startswith("sp24"):
        h.update(methods={"conv": "own"}, pattern={"conv": {"groups": 160, "groups_ok": 160, "sparsity": 0.5}})
    if variant.startswith("pqat"):
        h["tflite_sparsity"] = [{"op": "4:CONV_2D", "sparsity": 0.75}]
    if family in ("ptq_nbit", "qat_nbit", "minifloat") and dev is None:
        bits = host.get("activation_bits")
        h["deployable_reason"] = (
            f"{bits}-bit activations: the TFLite converter rejects sub-byte activations, so only the fake-quant "
            "accuracy is measured"
            if bits
            else "TFLite and TFLM have no 8-bit floating-point tensor type (nor E4M3): only the fake-quant accuracy"
        )
    if dev is not None:
        diff = variant == "ptq_int8"  # one variant where tf.lite's reference kernels differ from TFLM
        h["tflm"] = {
            "bitexact": not diff,
            "inputs": N,
            "rows_differing": int(diff),
            "max_abs_diff": int(diff),
            "predictions_differing": 0,
            "reference_accuracy": acc,
        }
        instructions, model = dev
        model = model or 4_000 + 16_652 * host.get("keep", 8) // 8
        sparse = variant.startswith("unst") and instructions < 800_000
        h["device"] = {
            "flash": {"total": 11_136 + model, "model": model, "code": 11_136},
            "ram": {"total": 2_880, "static": 2_436, "arena": 196, "stack_peak": 444},
            # Timed on 10 test clips: the count moves by a few hundred instructions with the clip.
            "instructions": {
                "median": instructions,
                "min": instructions - 840,
                "max": instructions + 2_400,
                "inputs": 10,
            },
            "accuracy": acc,
            "inputs": 500,
            "matches_host": True,
        }
        if variant.startswith("unst"):
            h["device"]["dense_kernels"] = {"instructions_median": 854_000, "flash_model": 16_904}
            h["device"]["codegen"] = {
                "layers": [{"index": 4, "op": "CONV_2D", "encoding": "sparse" if sparse else None}]
            }
    return h


def write_results(root, table):
    """A results directory as the workflow leaves it, from a table; returns build_report's inputs."""
    from tinymighty.data.audio import write_wav

    root = Path(root)
    data = root / "data" / "dataset"
    t = np.arange(16_000) / 16_000
    for i, word in enumerate(("yes", "no")):
        (data / word).mkdir(parents=True, exist_ok=True)
        clip = 0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t) * np.exp(-(((t - 0.5) / 0.15) ** 2))
        write_wav(data / word / f"spk{i}_nohash_0.wav", clip.astype(np.float32), 16_000)
    counts = {s: {lab: c for lab in LABELS} for s, c in (("training", 400), ("validation", 50), ("testing", 50))}
    index = {
        "labels": LABELS,
        "counts": counts,
        "data_dir": str(data),
        "splits": {"testing": [{"label": w, "file": f"{w}/spk{i}_nohash_0.wav"} for i, w in enumerate(("yes", "no"))]},
    }
    (root / "index.json").write_text(json.dumps(index))
    np.savez(root / "testing.npz", x=np.random.default_rng(0).normal(size=(2, 49, 40)).astype(np.float32), y=[2, 3])
    layer = {"layer": "conv", "type": "Conv2D", "output_shape": [25, 20, 8], "params": 648, "macs": 320_000}
    layer.update(flops=644_000, weight_bytes_float32=2_592, weight_bytes_int8=672)
    total = {"params": 16_652, "macs": 336_000, "flops": 676_004, "flops_seed_convention": 672_004}
    total.update(weight_bytes_float32=66_608, weight_bytes_int8=16_688, flash_share_float32=0.0635)
    total.update(flash_share_int8=0.0159, peak_ram_float32=23_840, peak_ram_int8=5_960)
    total.update(ram_share_float32=0.0909, ram_share_int8=0.0227)
    size = {"layers": [layer], "total": total, "flop_convention": "FLOPs = 2 x MACs + bias adds"}
    (root / "size.json").write_text(json.dumps(size))
    with open(root / "history.csv", "w") as f:
        f.write("epoch,accuracy,loss,val_accuracy,val_loss\n")
        for e in range(4):
            f.write(f"{e},{0.7 + 0.05 * e},{1 - 0.2 * e},{0.72 + 0.05 * e},{0.9 - 0.2 * e}\n")
    metrics = []
    for row in table:
        path = root / "variants" / row[0] / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_metrics(*row)))
        metrics.append(str(path))
    c_file = root / "model.c"
    c_file.write_text("/* model */\nstatic const int8_t w[4] = {\n    1, 2,\n    3, 4,\n    5, 6,\n};\n")
    return {
        "index": str(root / "index.json"),
        "test_features": str(root / "testing.npz"),
        "sizes": [str(root / "size.json")],
        "histories": [str(root / "history.csv")],
        "metrics": metrics,
        "model_c": str(c_file),
    }


def _config(**budgets):
    c = copy.deepcopy(CONFIG)
    c["train"]["architectures"], c["train"]["seeds"] = ["tinyconv"], []
    c["budgets"] = {**(c.get("budgets") or {}), **budgets}
    return c


def _html_only(tmp, table, config):
    """The report's HTML (no PDF: faster) from a results table."""
    from tinymighty.plots import Figures
    from tinymighty.report.context import build_context
    from tinymighty.report.render import render

    inputs = write_results(tmp, table)
    ctx = build_context(inputs, config, Figures(Path(tmp) / "report_files"))
    render(ctx, Path(tmp) / "report.html")
    return (Path(tmp) / "report.html").read_text(), ctx


def _text(html):
    """The page's visible text, entities decoded, whitespace collapsed."""
    import html as h

    body = re.sub(r"<style>.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", h.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The full report (HTML, PDF, summary.csv, figures) from the measured-like table."""
    from tinymighty.report.render import build_report

    root = tmp_path_factory.mktemp("report")
    inputs = write_results(root, MEASURED)
    out = root / "out"
    out.mkdir()
    build_report(inputs, _config(), out / "report.html", out / "report.pdf", out / "summary.csv", out / "report_files")
    return out


# ------------------------------------------------------------------------------------------------- the page


def test_images_exist_and_decode(built):
    from PIL import Image

    html = (built / "report.html").read_text()
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(srcs) >= 12, srcs
    for src in srcs:
        with Image.open(built / src) as im:
            im.load()
            assert im.width > 200 and im.height > 150, src
    assert (built / "report.pdf").read_bytes()[:5] == b"%PDF-"


def test_every_part_of_the_original_study_is_there(built):
    """The six parts of the original study (../shared/SEED.md) with what each had to show."""
    html = (built / "report.html").read_text()
    text = _text(html)
    parts = {
        "preprocessing": [
            "1. Preprocessing",
            "waveform, spectrum, spectrogram, mel spectrogram, MFCC",
            "Why features help",
            "How they differ",
        ],
        "size": [
            "2. Size estimation",
            "Flash:",
            "RAM for one forward pass",
            "FLOPs:",
            "Hello Edge",
            "Host CPU runtime",
        ],
        "training": ["3. Training", "test accuracy (float)", "training and validation curves", "validation"],
        "deployment": [
            "4. Conversion and deployment",
            "TFLite bytes",
            "The model as C",
            "MCU vs host",
            "post-processing",
        ],
        "quantization": [
            "5. Quantization",
            "PTQ at N bits",
            "QAT at N bits",
            "accuracy against bit-width",
            "minifloat",
        ],
        "pruning": [
            "6. Pruning",
            "accuracy against parameters",
            "one-shot",
            "fine-tuned",
            "what the removed channels buy",
            "L1, L2 or L",
            "can unstructured sparsity speed up computation",
        ],
    }
    for part, needles in parts.items():
        assert f'id="{part}"' in html, part
        for needle in needles:
            assert needle in text, f"part {part}: {needle!r} missing"
    # The first page answers the question; the table of contents points at sections that exist.
    assert text.index("What to deploy") < text.index("1. Preprocessing")
    for target in re.findall(r'<a href="#([^"]+)"', html):
        assert f'id="{target}"' in html, target
    # Findings, not a checklist; the reference figures come from the repository, with their source.
    for banned in ("Target", "Expectation", "does not hold", "../shared"):
        assert banned not in text, banned
    assert "Tiny but Mighty: pruning and quantization in audio neural networks" in text


def test_summary_csv_leads_with_tflm_and_keeps_the_cross_check(built):
    rows = {r["variant"]: r for r in csv.DictReader(open(built / "summary.csv"))}
    assert rows["ptq_int8"]["tflite_ref_outputs_differing"] == "1" and rows["ptq_int8"]["deployable"] == "True"
    assert rows["float"]["flash"] == "" and float(rows["unst_s90_ft"]["mcu_ms_est"]) == pytest.approx(257_160 / 64e3)
    # the median over the timed clips is the figure, their range beside it
    ptq = rows["ptq_int8"]
    assert (ptq["instructions"], ptq["instructions_min"], ptq["instructions_max"]) == ("853920", "853080", "856320")
    assert ptq["instructions_inputs"] == "10" and rows["float"]["instructions_min"] == ""
    text = _text((built / "report.html").read_text())
    assert "853,080–856,320 (10)" in text and "853,920 ±0.28%" in text
    # ./tbm recommend reads what the report wrote
    rec = R.recommend(list(rows.values()), R.Budgets(flash=R.parse_size("24k"), ram=4096, ms=10))
    assert rec["best"]["label"] == "tinyconv/chan_l1_k4_ft"


def test_reference_figures_are_data_with_their_source():
    from tinymighty.report.context import reference

    ref = reference()
    assert "Tiny but Mighty" in ref["original_study"]["source"] and "arXiv" in ref["published_kws"]["source"]
    code = "".join(p.read_text() for p in (REPO / "tinymighty" / "report").glob("*.py"))
    assert "16_652" not in code and "SEED_REFERENCE" not in code and "PUBLISHED_KWS" not in code


def test_board_figures_have_one_home():
    """Budgets default to tinymighty/budgets.py; templates type none of its numbers."""
    b = R.budgets_from_config(CONFIG)
    assert (b.flash, b.ram, b.clock_hz) == (board.FLASH_BYTES, board.RAM_BYTES, board.CLOCK_HZ)
    assert R.budgets_from_config({}).flash == board.FLASH_BYTES
    templates = "".join(p.read_text() for p in (REPO / "report" / "templates").glob("*.j2"))
    for typed in ("1,960", "64 MHz", "1 MB", "256 KB", "nRF52840"):
        assert typed not in templates, typed


# --------------------------------------------------------------------------------- conclusions follow data


@pytest.mark.slow
def test_conclusions_follow_the_data(tmp_path):
    """Every computed sentence flips when the results table says the opposite."""
    measured, _ = _html_only(tmp_path / "measured", MEASURED, _config())
    flipped, ctx = _html_only(tmp_path / "doctored", doctored(MEASURED), _config())
    a, b = _text(measured), _text(flipped)
    pairs = [
        # what int8 costs
        ("Post-training int8 quantization makes the model 3.4× smaller", None),
        ("costs no accuracy (+0.00 points)", "costs 15.80 points (95.8% → 80.0%)"),
        # QAT int8 against float
        (
            "QAT int8 reaches 96.30%, +0.50 points against float (95.80%): within noise",
            "below float by more than noise",
        ),
        # the quantization cliff
        (
            "PTQ falls more than 1 point below float at 4 bits, after holding down to 8 bits",
            "PTQ falls more than 1 point below float at 8 bits",
        ),
        ("recovers what rounding loses", "QAT is below PTQ by more than noise"),
        # how far pruning goes
        (
            "unstructured pruning (fine-tuned) holds up to 50% sparsity and falls at 90% sparsity",
            "unstructured pruning (fine-tuned) falls already at 50% sparsity",
        ),
        ("Fine-tuning matters (unstructured).", "Fine-tuning makes no measurable difference (unstructured)."),
        # norms against fine-tuning
        ("retraining after pruning matters more than the norm", "here the norm matters as much as retraining"),
        # channel removal and sparse kernels on the MCU
        ("On the Cortex-M4 it does", "On the Cortex-M4 it barely does"),
        ("The zero-skipping kernels pay from 90% sparsity", "No measured speed-up"),
        # the recommendation (min accuracy 90%)
        ("Deploy tinyconv/", "Nothing fits these budgets."),
    ]
    for good, bad in pairs:
        assert good in a, f"measured report lacks {good!r}"
        if bad is not None:
            assert bad in b, f"doctored report lacks {bad!r}"
            assert good not in b, f"doctored report still says {good!r}"
    assert "minimum accuracy budget excludes most" in b
    # the summary is five to eight computed sentences
    assert 5 <= len(ctx["front"]["sentences"]) <= 8


def test_recommendation_names_the_binding_budget():
    from tinymighty.report.context import variant_row

    rows = [variant_row(_metrics(*r), {"params": 16_652, "macs": 336_000, "flops": 676_004}) for r in MEASURED]
    free = R.recommend(rows, R.budgets_from_config(_config()))
    assert free["best"]["label"] == "tinyconv/qat_int8" and not free["binding"]
    assert "No budget binds" in R.binding_sentence(free)
    tight = R.recommend(rows, R.Budgets(flash=R.parse_size("24k"), ram=4096, ms=8))
    assert tight["best"]["label"] == "tinyconv/chan_l1_k4_ft"  # 23,462 B flash, 6.2 ms
    assert [x["budget"] for x in tight["binding"]] == ["flash", "ms"]  # chan k6: 27,625 B and 8.8 ms
    assert "exceeds the flash and latency budgets" in R.binding_sentence(tight)
    # the cheapest within one point of the best: fewer instructions, accuracy within a point
    assert free["cheapest"]["label"] == "tinyconv/chan_l1_k4_ft"
    assert free["best"]["accuracy"] - free["cheapest"]["accuracy"] <= 0.01 + 1e-9


# ------------------------------------------------------------------------------------------- ./tbm recommend


@pytest.mark.parametrize(
    "text, size",
    [("4096", 4096), ("24k", 24_576), ("24K", 24_576), ("256KiB", 262_144), ("1M", 1_048_576), ("1.5MB", 1_572_864)],
)
def test_parse_size(text, size):
    assert R.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "12q", "-4k", "k"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="not a size"):
        R.parse_size(text)


def _summary(tmp_path):
    path = tmp_path / "summary.csv"
    keys = ["arch", "variant", "family", "accuracy", "deployable", "flash", "ram", "instructions"]
    rows = [
        ("float", "float", 0.958, False, "", "", ""),
        ("ptq_int8", "ptq", 0.958, True, 28_040, 2_880, 853_920),
        ("qat_int8", "qat", 0.963, True, 28_040, 2_880, 854_000),
        ("unst_s90_ft", "prune_unstructured", 0.928, True, 17_736, 2_808, 257_160),
        ("chan_l1_k4_ft", "prune_structured", 0.953, True, 19_684, 2_872, 520_080),
        ("chan_l1_k2_ft", "prune_structured", 0.945, True, 15_508, 2_868, 352_920),
    ]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for r in rows:
            w.writerow(["tinyconv", *r[:2], r[2], r[3], *r[4:]])
    return path


def _cli(*args, tbm=False, env=None):
    cmd = (
        [str(REPO / "tbm"), "recommend", *args] if tbm else [sys.executable, "-m", "tinymighty.report.recommend", *args]
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_recommend_fits(tmp_path):
    proc = _cli("--flash", "24k", "--ram", "4k", "--ms", "10", "--summary", str(_summary(tmp_path)), tbm=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Deploy tinyconv/chan_l1_k4_ft" in out  # the most accurate within 24 KB, 4 KB and 10 ms
    assert re.search(r"tinyconv/chan_l1_k4_ft .*<- recommended", out)
    assert "Cheapest within 1 point of it: tinyconv/chan_l1_k2_ft" in out
    assert "Binding: the flash budget" in out and "latency budget" in out  # qat_int8: 28 KB and 13.3 ms
    assert "tinyconv/qat_int8 (96.30%), exceeds the flash and latency budgets" in out
    assert out.count("tinyconv/") >= 4 and "est. ms" in out and "not cycles" in out


def test_recommend_nothing_fits(tmp_path):
    proc = _cli("--flash", "8k", "--ms", "10", "--min-accuracy", "0.9", "--summary", str(_summary(tmp_path)))
    assert proc.returncode == 1 and proc.stdout == ""
    assert "nothing fits" in proc.stderr and "The flash budget excludes most" in proc.stderr
    assert "the smallest needs 15,508 B flash" in proc.stderr


def test_recommend_without_results(tmp_path):
    proc = _cli(env={"TBM_SUMMARY": str(tmp_path / "results" / "summary.csv")})
    assert proc.returncode == 2 and "Run ./tbm report first" in proc.stderr and "Traceback" not in proc.stderr
    bad = _cli("--flash", "lots", "--summary", str(tmp_path / "x.csv"))
    assert bad.returncode == 2 and "not a size" in bad.stderr


def test_every_figure_has_a_part_and_a_caption_in_snakemakes_report(built):
    """`snakemake --report`: each figure is filed under its part of the study, with its own caption."""
    import jinja2

    from tinymighty.report.figures import figure_part

    caption = jinja2.Template((REPO / "report" / "captions" / "figures.rst").read_text())
    for png in sorted((built / "report_files").glob("*.png")):

        class Snakemake:
            wildcards = type("W", (), {"name": png.stem})
            config = CONFIG

        assert figure_part(png.stem) in {"preprocessing", "training", "deployment", "quantization", "pruning"}
        text = caption.render(snakemake=Snakemake).strip()
        assert text.startswith("Part ") or text.startswith("All variants"), (png.name, text)
    workflow = (REPO / "Snakefile").read_text()
    assert 'report: "report/workflow.rst"' in workflow and (REPO / "report" / "workflow.rst").exists()


@pytest.mark.slow
def test_a_board_measured_in_cycles_shows_cycles_and_its_name(tmp_path):
    """When the serial backend measured a cycle-counting board (the Arduino sketch), the device table gives cycles
    and ms at its clock and the board's name from ID, and the instructions-versus-cycles caveat is gone."""
    from tinymighty.plots import Figures
    from tinymighty.report.context import build_context
    from tinymighty.report.render import render

    inputs = write_results(tmp_path, MEASURED)
    for path in inputs["metrics"]:
        m = json.loads(Path(path).read_text())
        if m.get("device"):
            n = m["device"]["instructions"]["median"] * 2  # any count: cycles are not instructions
            m["device"]["cycles"] = {"median": n, "clock_hz": board.CLOCK_HZ, "ms_median": 1000 * n / board.CLOCK_HZ}
            m["device"]["cycles"]["board"] = "nano33ble_sense"
            Path(path).write_text(json.dumps(m))
    ctx = build_context(inputs, _config(), Figures(tmp_path / "report_files"))
    render(ctx, tmp_path / "report.html")
    text = _text((tmp_path / "report.html").read_text())
    assert "On the board: nano33ble_sense" in text and "cycles / inference" in text
    assert "1,707,840" in text  # PTQ int8's 853,920 instructions' stand-in, as cycles
    assert "not cycles" not in text and "est. ms = emulated" not in text
    ptq = next(r for r in ctx["rows"] if r["variant"] == "ptq_int8")
    assert ptq["time_unit"] == "cycles" and ptq["mcu_ms_est"] == pytest.approx(1000 * 1_707_840 / board.CLOCK_HZ)

    # The emulated run keeps its caveat.
    html, _ = _html_only(tmp_path / "qemu", MEASURED, _config())
    assert "not cycles" in _text(html) and "On the (emulated) microcontroller" in _text(html)
