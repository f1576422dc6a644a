"""Pinned behaviour of the code generator and the firmware kernels.

For fixed models, the generated model.c/model.h are pinned bytes, the firmware's outputs are pinned, and on
QEMU's mps2-an386 (Cortex-M4, -icount shift=0, deterministic) one inference takes a pinned number of emulated
instructions. A refactoring must leave all three unchanged; a change that means to change them (a faster
kernel, another layout) updates PINNED deliberately and says so below. The outputs' digests must never change:
they are TFLM's outputs (every case is bit-exact to TFLM's Python interpreter, see tests/test_codegen.py).

How the figures in PINNED were obtained:
  * Fixtures, tests/fixtures/pinned/:
      tinyconv_ptq_int8.tflite, tinyconv_unst_s90_ft.tflite, tinyconv_ptq_w4a8.tflite: copies of
        results/variants/tinyconv/{ptq_int8,unst_s90_ft,ptq_w4a8}/model.tflite of a default-config workflow run
        (the trained TinyConv, post-training int8; 90 % unstructured magnitude pruning, fine-tuned; and
        post-training 4-bit weights, 8-bit activations, the weights packed as INT4 by the converter);
      dscnn_ptq_int8.tflite, dscnn_ptq_w4a8.tflite: the DS-CNN of tinymighty/model/architectures.py, untrained
        with He-normal random weights (the dense layer's 3 times larger, biases N(0, 0.1), seed 1: Keras'
        own initialisation, without batch norm, shrinks its activations to nothing by the last block and
        every output comes out the same), then PTQ int8, or PTQ W4A8 with tfmot's n-bit scheme as the
        quantization study makes it (4-bit weights packed as INT4; a QUANTIZE op, int8 to int8, before the
        dense layer), both calibrated on 200 N(0, 1) inputs with a per-input N(0, 1) offset, seed 0;
      dslike.tflite, odd_conv50_dense90.tflite, odd_conv90_dense50.tflite: the small models of
        tests/test_codegen.py (fixture dslike; _odd_model with those pruning fractions), random init,
        converted once and stored, so the converter's version does not matter.
    Together the cases below call every kernel entry point of tm_kernels.h and name every helper generated
    code refers to (HELPERS).
  * Figures: `.venv/bin/python tests/test_pinned.py` runs _measure() with the tinymighty on sys.path
    (codegen.generate, device.build_firmware, device.measure and its firmware/ sources) and prints PINNED.
    Toolchain: arm-none-eabi-gcc 12.2.1 (Debian 15:12.2.rel1-1), gcc 12.2.0, QEMU 7.2.22
    (Debian 1:7.2+dfsg-7+deb12u18+b3). Another compiler may legitimately give other instruction counts:
    regenerate the figures from the last commit that had them right, never from the code under test.
  * The sparse threshold 0.8 is config.yaml's firmware.sparse_threshold, what the workflow deploys with;
    threshold None is the dense baseline the workflow measures for sparse-encoded variants
    (device["dense_kernels"]).

History of the instruction counts (old -> new, emulated instructions per inference):
  issue 9 (the package split, commit 35b0ae3): the figures the split had to keep.
  issue 11 (kernels at the dual-MAC rate, in-place memory plan, 4-bit weights): dense convolutions take packed
    int16-pair weights (three pixels by two channels per SMLAD block, in assembly), a fast exact
    requantisation (SMMULR), border windows packed without a padded copy; the 3x3 depthwise convolution and
    1x1 convolutions run in place; the sparse fused kernel walks one column stream. model.c/model.h changed
    for every case (new layouts, the arena plan comment, TM_STOP). Outputs unchanged.
      tinyconv_dense               853,480 -> 488,440     tinyconv_dense_unfused       824,320 -> 477,480
      tinyconv_s90_sparse          256,680 -> 155,200     tinyconv_s90_dense           853,520 -> 488,440
      tinyconv_s90_sparse_rows     513,920 -> 514,360     tinyconv_s90_sparse_unfused  465,040 -> 465,240
      dslike                     1,023,840 -> 807,160     odd_dense_sparse              98,600 ->  97,440
      odd_dense_sparse_unfused      92,400 ->  93,160     odd_sparse_dense              91,360 ->  90,320
      odd_sparse_dense_unfused      86,800 ->  83,880
      new: tinyconv_w4a8 522,680, tinyconv_w4a8_unfused 720,360, dscnn 14,235,680, dscnn_w4a8 14,800,040 (the
      issue's DS-CNN figures: 32,816,001 with the kernels before, 30,814,651 for an interpreter with
      vendor-optimised kernels).
  issue 11 (4-bit depthwise weights kept packed): DS-CNN W4A8's 3x3 depthwise layers keep TFLite's INT4
    bytes in flash and tm_dwconv3x3_s4 unpacks them into its scratch once per call, where the code generator
    used to widen them to the 8-bit stream; only dscnn_w4a8's model.c/model.h change. Its constants
    fall from 21,732 to 18,276 bytes (each depthwise layer 1,408 -> 544), its arena stays 41,600 bytes (the
    pointwise layers' scratch is larger), outputs unchanged.
      dscnn_w4a8                14,800,040 -> 14,815,520
  * At 90 % sparsity the deployed sparse kernels take 155,200 emulated instructions against the dense
    baseline's 488,440: 3.15x fewer (the issue asks for at least 3x; it was 3.33x against the old dense
    kernels, 256,680 vs 853,520).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import slow_except

FIXTURES = Path(__file__).parent / "fixtures" / "pinned"
SPARSE_THRESHOLD = 0.8  # config.yaml firmware.sparse_threshold
N_INPUTS = 8
N_BENCH = 3

# name: (fixture, codegen.generate options, kernels model.c must call)
CASES = {
    "tinyconv_dense": (
        "tinyconv_ptq_int8",
        {"sparse_threshold": SPARSE_THRESHOLD},
        {"tm_conv2d_fc_s8_dd", "tm_softmax_s8"},
    ),
    "tinyconv_dense_unfused": (
        "tinyconv_ptq_int8",
        {"sparse_threshold": SPARSE_THRESHOLD, "fuse_conv_fc": False},
        {"tm_conv2d_s8", "tm_fully_connected_s8", "tm_softmax_s8"},
    ),
    "tinyconv_s90_sparse": (
        "tinyconv_unst_s90_ft",
        {"sparse_threshold": SPARSE_THRESHOLD},
        {"tm_conv2d_fc_s8_sc", "tm_softmax_s8"},
    ),
    "tinyconv_s90_dense": ("tinyconv_unst_s90_ft", {"sparse_threshold": None}, {"tm_conv2d_fc_s8_dd", "tm_softmax_s8"}),
    "tinyconv_s90_sparse_rows": (
        "tinyconv_unst_s90_ft",
        {"sparse_threshold": SPARSE_THRESHOLD, "sparse_columns": False},
        {"tm_conv2d_fc_s8_ss", "tm_softmax_s8"},
    ),
    "tinyconv_s90_sparse_unfused": (
        "tinyconv_unst_s90_ft",
        {"sparse_threshold": SPARSE_THRESHOLD, "fuse_conv_fc": False},
        {"tm_conv2d_sparse_s8", "tm_fully_connected_sparse_s8", "tm_softmax_s8"},
    ),
    "dslike": (
        "dslike",
        {"sparse_threshold": SPARSE_THRESHOLD},
        {
            "tm_conv2d_s8",
            "tm_dwconv2d_s8",
            "tm_dwconv3x3_s8",
            "tm_add_s8",
            "tm_max_pool_s8",
            "tm_avg_pool_s8",
            "tm_fully_connected_s8",
            "tm_softmax_s8",
        },
    ),
    "odd_dense_sparse": (
        "odd_conv50_dense90",
        {"sparse_threshold": 0.7},
        {"tm_conv2d_s8", "tm_conv2d_fc_s8_ds", "tm_softmax_s8"},
    ),
    "odd_dense_sparse_unfused": (
        "odd_conv50_dense90",
        {"sparse_threshold": 0.7, "fuse_conv_fc": False},
        {"tm_conv2d_s8", "tm_fully_connected_sparse_s8", "tm_softmax_s8"},
    ),
    "odd_sparse_dense": (
        "odd_conv90_dense50",
        {"sparse_threshold": 0.7},
        {"tm_conv2d_s8", "tm_conv2d_fc_s8_sd", "tm_softmax_s8"},
    ),
    "odd_sparse_dense_unfused": (
        "odd_conv90_dense50",
        {"sparse_threshold": 0.7, "fuse_conv_fc": False},
        {"tm_conv2d_s8", "tm_conv2d_sparse_s8", "tm_fully_connected_s8", "tm_softmax_s8"},
    ),
    "tinyconv_w4a8": (
        "tinyconv_ptq_w4a8",
        {"sparse_threshold": SPARSE_THRESHOLD},
        {"tm_conv2d_fc_s8_d4", "tm_softmax_s8"},
    ),
    "tinyconv_w4a8_unfused": (
        "tinyconv_ptq_w4a8",
        {"sparse_threshold": SPARSE_THRESHOLD, "fuse_conv_fc": False},
        {"tm_conv2d_s8", "tm_fully_connected_s4", "tm_softmax_s8"},
    ),
    "dscnn": (
        "dscnn_ptq_int8",
        {"sparse_threshold": SPARSE_THRESHOLD},
        {"tm_conv2d_s8", "tm_dwconv3x3_s8", "tm_avg_pool_s8", "tm_fully_connected_s8", "tm_softmax_s8"},
    ),
    "dscnn_w4a8": (
        "dscnn_ptq_w4a8",
        {"sparse_threshold": SPARSE_THRESHOLD},
        {
            "tm_conv2d_s8",
            "tm_dwconv3x3_s4",
            "tm_avg_pool_s8",
            "tm_requantize_s8",
            "tm_fully_connected_s4",
            "tm_softmax_s8",
        },
    ),
}
# The helpers generated code names without calling (window packers, the 4-bit unpacker), and a case that
# links each.
HELPERS = {"tm_pack_border": "tinyconv_dense", "tm_pack_gathered": "odd_dense_sparse", "tm_unpack_w4": "tinyconv_w4a8"}

# Printed by this file run as a script (see the module docstring). Instructions are QEMU -icount counts at
# the firmware's timer resolution, 40 emulated instructions per SysTick tick.
PINNED = {
    "tinyconv_dense": {
        "model.c": "1ffaea3e03f9f4f819df436eac75868f303901e001df19857ca3c52dfd671f8b",
        "model.h": "af7ef554d1c7df7ef418ad6b7013ed6bf7206ba582d67382dce04e9b81445cec",
        "outputs": "25e5a63230ddce21939d175035b7f9b83c8c47291099a051ebb57aceec230e68",
        "instructions": 488440,
    },
    "tinyconv_dense_unfused": {
        "model.c": "77e5a2bc961ace558b30602f2ced5342aefceda71bd827138b217a6aca738282",
        "model.h": "317336b576fc3bcb0cb28a640175ed6368238d82c4bfe06b95b21f76b6b6e399",
        "outputs": "25e5a63230ddce21939d175035b7f9b83c8c47291099a051ebb57aceec230e68",
        "instructions": 477480,
    },
    "tinyconv_s90_sparse": {
        "model.c": "eb941824efeaae1f8eadf26c811dd4b133cf71b4e5f663fa955097210d1fe210",
        "model.h": "59147e4c0ca5e4bb326e966110aaf497df6c88859e9922949692c4b37f4a7e5b",
        "outputs": "3480ba41edab98e382c11cc7fc8ecb41a69d52a03ba39851c8a0f89879b009e0",
        "instructions": 155200,
    },
    "tinyconv_s90_dense": {
        "model.c": "6029c7736839ec33352cc0805e22b9c38068d37ec986c3a185f7b48bbc2355f9",
        "model.h": "b8b2d305ca2cc2c4033ef4f21ab53028fb2b91c7fb67e20a09fcf6d4c70c24ce",
        "outputs": "3480ba41edab98e382c11cc7fc8ecb41a69d52a03ba39851c8a0f89879b009e0",
        "instructions": 488440,
    },
    "tinyconv_s90_sparse_rows": {
        "model.c": "f4c12e3e50ad77a0fe9c92cb33797fe1e3ea8ecfec0d80d63e09539a64804b4b",
        "model.h": "d1292f2f9b9d5221d1915e67a1ad39b6eeb7e396f4cb33c2dd48d65df4f40ddc",
        "outputs": "3480ba41edab98e382c11cc7fc8ecb41a69d52a03ba39851c8a0f89879b009e0",
        "instructions": 514360,
    },
    "tinyconv_s90_sparse_unfused": {
        "model.c": "40811576e242bcbccbc198b0f397285c47a84a5947e3ed512ba54b259a9e0985",
        "model.h": "beadb430460bb83f90c47440cbaa9a4cb4d7ab8eedf2f6ea464dd411c0e0a45a",
        "outputs": "3480ba41edab98e382c11cc7fc8ecb41a69d52a03ba39851c8a0f89879b009e0",
        "instructions": 465240,
    },
    "dslike": {
        "model.c": "fc72cf7be9352cafa639adc291ad08e31e3391eb3c0292759fcb98aac3328519",
        "model.h": "9ffc2be26bc5d077e66edb0d513b227143849040f16ac597722050801c6a4768",
        "outputs": "ca25044ef2a3bc07556c09cd6816f68df8d9b03aa26140254073cab971815c8d",
        "instructions": 807160,
    },
    "odd_dense_sparse": {
        "model.c": "a4f40898c8f749b84c41696a18899457206527b4bdda463f2e617964aa31c5ea",
        "model.h": "bf665d06c81b47da3afad1835abe0ab832e8308a5a9eecc597071cf1fdb4522e",
        "outputs": "7ef1902f2832ece099b1152c0c74dbe01804420164d35ae754a80e799f7025c2",
        "instructions": 97440,
    },
    "odd_dense_sparse_unfused": {
        "model.c": "58d26fce33d2b3fa329ba708b741002849e21dc0ce9c23998768e931a821a439",
        "model.h": "e2a55ca40b971d0de2422524bd604c5b018c378525f0085055a439dfe1138947",
        "outputs": "7ef1902f2832ece099b1152c0c74dbe01804420164d35ae754a80e799f7025c2",
        "instructions": 93160,
    },
    "odd_sparse_dense": {
        "model.c": "05ed331e4a73bbb92033224c3d61ec49a9c6b4a8b7491ddf0b4c608d775cd858",
        "model.h": "18e413082628d0bc7dd6c15921f8e665c047371edd2eb5fda73c3a086a412627",
        "outputs": "40226642df8dadcf19c5602fcd9a7eb06aa23a31a8cc49d9eb1a47685ccae9e9",
        "instructions": 90320,
    },
    "odd_sparse_dense_unfused": {
        "model.c": "298ea9161c4de15562cadcccec09c90430d0119332987e62d0bbf992a9101b80",
        "model.h": "e886e798805d8df069fc98a87ba153c2fccd5e37f4dc7339a36afcfc6d462a64",
        "outputs": "40226642df8dadcf19c5602fcd9a7eb06aa23a31a8cc49d9eb1a47685ccae9e9",
        "instructions": 83880,
    },
    "tinyconv_w4a8": {
        "model.c": "75f697ab853532f1cdb566fb2b4ed723432d674c93e1e8633d17e72264d3083d",
        "model.h": "a7bbfbc92aafc3855039cef073b94e0f300b237ca81179e6f9d2085ac081dc0f",
        "outputs": "835df76e3e9bb4cec12a27aba561867b2584e17dd04e3468034f1f1bd25d8741",
        "instructions": 522680,
    },
    "tinyconv_w4a8_unfused": {
        "model.c": "ce4a6f708568c94788508a5ca79a0f96132a54d6769e67bc6fe1642d1039665f",
        "model.h": "d8cafc37158c7eb0226e4e044743f0f73951574e9239793d2dfd5e9a0f65bd5a",
        "outputs": "835df76e3e9bb4cec12a27aba561867b2584e17dd04e3468034f1f1bd25d8741",
        "instructions": 720360,
    },
    "dscnn": {
        "model.c": "232ffcb14e2428c3f7710334f0e6da6671a7001e1668f246e5aac26977629ae5",
        "model.h": "59a2c14b8650870104fec4bf0203994f72e17435ae60c1cbe0c62216b3280bfd",
        "outputs": "1be89868739853d36c2eef320a67b162a26cbafc5113532dc90d21659457898f",
        "instructions": 14235680,
    },
    "dscnn_w4a8": {
        "model.c": "d5e809723bfb35e925c507086f3b8526bb83a60a354996065799bcfde36cfe6c",
        "model.h": "e7e4ed22a387e3dffdd1983e26b6b806725dc8f8254b0bdc5518f7324d773c9d",
        "outputs": "dff129aee4b768e3bf4c02977d803bd29cca7c209d3bb7b3ab24b6097adc37ed",
        "instructions": 14815520,
    },
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _inputs(size: int, zero_point: int) -> np.ndarray:
    """Fixed inputs: seeded noise plus the extremes and the zero point."""
    x = np.random.default_rng(2024).integers(-128, 128, size=(N_INPUTS, size), dtype=np.int8)
    x[1], x[2], x[3] = -128, 127, zero_point
    return x


def _generate(name: str, out: Path) -> dict:
    from tinymighty.codegen import generate

    fixture, options, _ = CASES[name]
    return generate(FIXTURES / f"{fixture}.tflite", out, **options)


def _files(gen: Path) -> dict:
    return {f: _sha((gen / f).read_bytes()) for f in ("model.c", "model.h")}


def _measure(name: str, tmp: Path) -> dict:
    """Generated files' sha256, QEMU outputs' sha256 and instructions per inference for one case."""
    from tinymighty.device import build_firmware, measure

    gen = tmp / name / "model"
    info = _generate(name, gen)
    x = _inputs(int(np.prod(info["input_shape"])), info["input_zero_point"])
    elf = build_firmware(gen, tmp / name / "build")
    r = measure(elf, {"kind": "qemu", "timeout": 120}, x, n_bench=N_BENCH, log_path=tmp / name / "qemu.log")
    t = r["timing"]
    assert t["n"] == N_BENCH and t["instructions_spread"] == 0, t
    return {
        **_files(gen),
        "outputs": _sha(np.ascontiguousarray(r["outputs"], np.int8).tobytes()),
        "instructions": int(t["instructions_median"]),
        "_gen": gen,
        "_x": x,
    }


# --------------------------------------------------------------------------


def test_every_kernel_entry_point_is_pinned():
    header = (Path(__file__).parents[1] / "firmware" / "kernels" / "tm_kernels.h").read_text()
    declared = set(re.findall(r"^void (tm_\w+)\(const tm_\w+_t \*p,", header, re.M))
    assert declared == set().union(*(kernels for _, _, kernels in CASES.values()))
    helpers = set(re.findall(r"^void (tm_\w+)\(const tm_\w+_t \*[gm],", header, re.M))
    assert helpers == set(HELPERS)
    assert set(PINNED) == set(CASES)


@pytest.mark.parametrize("helper", sorted(HELPERS))
def test_every_helper_is_linked_by_a_case(helper, tmp_path):
    _generate(HELPERS[helper], tmp_path / "model")
    assert f"= {helper}" in (tmp_path / "model" / "model.c").read_text()


@pytest.mark.parametrize("name", list(CASES))
def test_generated_c_is_pinned(name, tmp_path):
    _generate(name, tmp_path / "model")
    source = (tmp_path / "model" / "model.c").read_text()
    called = {k for k in CASES[name][2] if f"{k}(" in source}
    assert called == CASES[name][2]
    assert _files(tmp_path / "model") == {f: PINNED[name][f] for f in ("model.c", "model.h")}


TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-objdump", "qemu-system-arm", "make", "gcc")
needs_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS), reason=f"needs {', '.join(TOOLS)} (./tbm install)"
)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Each case measured once per module, on demand."""
    tmp = tmp_path_factory.mktemp("pinned")
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = _measure(name, tmp)
        return cache[name]

    return get


@needs_tools
@pytest.mark.parametrize("name", slow_except(CASES, fast=["tinyconv_dense", "tinyconv_s90_sparse"]))
def test_qemu_instructions_and_outputs_are_pinned(name, measured):
    m = measured(name)
    assert {k: m[k] for k in ("model.c", "model.h", "outputs")} == {
        k: PINNED[name][k] for k in ("model.c", "model.h", "outputs")
    }
    assert m["instructions"] == PINNED[name]["instructions"]


@needs_tools
@pytest.mark.parametrize(
    "name",
    slow_except(
        ["tinyconv_dense", "tinyconv_s90_sparse", "dslike", "odd_sparse_dense", "tinyconv_w4a8", "dscnn_w4a8"],
        fast=["tinyconv_dense", "tinyconv_s90_sparse"],
    ),
)
def test_host_build_computes_the_pinned_outputs(name, measured, tmp_path):
    """The host build of the same kernels, portable and with the emulated DSP path, agrees with QEMU."""
    from tinymighty.codegen import build_host, run_host

    m = measured(name)
    for dsp in (False, True):
        exe = build_host(m["_gen"], tmp_path, emulate_dsp=dsp)
        assert _sha(np.ascontiguousarray(run_host(exe, m["_x"]), np.int8).tobytes()) == PINNED[name]["outputs"]


@needs_tools
def test_sparse_kernels_beat_dense_at_90_percent(measured):
    """Issue: at 90 % unstructured sparsity, at least 3x fewer emulated instructions than dense
    (the same weights, sparse-encoded as deployed vs the workflow's dense baseline)."""
    dense, sparse = measured("tinyconv_s90_dense")["instructions"], measured("tinyconv_s90_sparse")["instructions"]
    assert dense / sparse >= 3, f"dense {dense} / sparse {sparse} = {dense / sparse:.2f}"


if __name__ == "__main__":  # prints PINNED for the tinymighty on sys.path (see the module docstring)
    with tempfile.TemporaryDirectory() as d:
        figures = {}
        for case in CASES:
            m = _measure(case, Path(d))
            figures[case] = {k: v for k, v in m.items() if not k.startswith("_")}
            print(case, figures[case], file=sys.stderr)
    print("PINNED = {")
    for case, f in figures.items():
        print(f'    "{case}": {{')
        for k, v in f.items():
            print(f'        "{k}": {v!r},')
        print("    },")
    print("}")
