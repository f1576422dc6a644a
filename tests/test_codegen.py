"""The ahead-of-time code generator: generated C must match TFLM bit for bit.

Real components throughout: Keras models converted to full-int8 TFLite, C
compiled with gcc, TFLM's Python interpreter as the oracle. The Cortex-M4 SIMD
path runs on the host through TM_EMULATE_DSP, and is cross-compiled once to
show it builds for the target (the on-device run belongs to the QEMU tests).
"""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import slow_except

from tinymighty import codegen
from tinymighty.codegen import UnsupportedModelError

# The converter warns that int8 input statistics were not given; they are not needed.
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")

N_INPUTS = 200
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-c"]


def _keras():
    from tinymighty.tfutil import make_deterministic, tf, tf_keras

    make_deterministic(0)
    return tf, tf_keras


def _to_int8_tflite(model, path: Path, low=-1.0, high=1.0) -> Path:
    """Full-int8 conversion (int8 input and output) calibrated on uniform noise."""
    tf, _ = _keras()
    shape = tuple(model.input_shape[1:])

    def representative():
        rng = np.random.default_rng(1)
        for _ in range(16):
            yield [rng.uniform(low, high, size=(1,) + shape).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    return path


def _inputs(size: int, n: int = N_INPUTS, zero_point: int = 0) -> np.ndarray:
    """Random int8 inputs plus the extremes, where saturation and padding matter most."""
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, size=(n, size), dtype=np.int8)
    x[0], x[1], x[2] = -128, 127, zero_point
    return x


def _compiled(tmp: Path, tflite: Path, name: str = "gen", **options) -> SimpleNamespace:
    gen, build = tmp / name, tmp / f"build_{name}"
    info = codegen.generate(tflite, gen, **options)
    return SimpleNamespace(
        tflite=tflite,
        info=info,
        gen=gen,
        exe=codegen.build_host(gen, build),
        exe_dsp=codegen.build_host(gen, build, emulate_dsp=True),
    )


@pytest.fixture(scope="module")
def tinyconv(tmp_path_factory):
    """The project's TinyConv, random init, post-training quantised (conv and FC fused)."""
    from tinymighty.model import architectures as models

    _keras()
    tmp = tmp_path_factory.mktemp("tinyconv")
    tflite = _to_int8_tflite(models.tiny_conv(), tmp / "tinyconv.tflite", -4.0, 4.0)
    return _compiled(tmp, tflite)


@pytest.fixture(scope="module")
def tinyconv_unfused(tinyconv, tmp_path_factory):
    """The same TinyConv with fusion off: separate conv and FC kernels."""
    return _compiled(tmp_path_factory.mktemp("tinyconv_unfused"), tinyconv.tflite, fuse_conv_fc=False)


@pytest.fixture(scope="module")
def dslike(tmp_path_factory):
    """Small DS-CNN-like net: depthwise (multiplier 1 and 2), 1x1 conv, residual ADD,
    max pool with odd padding, VALID strided conv, RELU6, global average pool."""
    _, tf_keras = _keras()
    L = tf_keras.layers
    inp = L.Input((21, 16))
    x = L.Reshape((21, 16, 1))(inp)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    y = L.Conv2D(8, 1)(y)
    x = L.Add()([x, y])
    x = L.MaxPooling2D(2, padding="same")(x)
    x = L.Conv2D(12, 3, strides=2, padding="valid", activation="relu6")(x)
    x = L.DepthwiseConv2D(2, depth_multiplier=2, padding="same", activation="relu")(x)
    x = L.AveragePooling2D((int(x.shape[1]), int(x.shape[2])))(x)
    x = L.Flatten()(x)
    x = L.Dense(6, kernel_initializer=tf_keras.initializers.RandomNormal(stddev=3.0))(x)
    model = tf_keras.Model(inp, L.Softmax()(x))
    tmp = tmp_path_factory.mktemp("dslike")
    # Asymmetric calibration range, so the input zero point is not 0.
    return _compiled(tmp, _to_int8_tflite(model, tmp / "dslike.tflite", -0.5, 1.5))


@pytest.fixture(scope="module")
def sparse_tinyconv(tmp_path_factory):
    """TinyConv with ~85% of its conv and dense weights zeroed, as pruning leaves it."""
    from tinymighty.model import architectures as models

    _keras()
    model = models.tiny_conv()
    rng = np.random.default_rng(5)
    for layer in (model.get_layer("conv"), model.get_layer("dense")):
        w, b = layer.get_weights()
        w[rng.random(w.shape) < 0.85] = 0
        layer.set_weights([w, b + 0.01])
    tmp = tmp_path_factory.mktemp("sparse")
    return _to_int8_tflite(model, tmp / "sparse.tflite", -4.0, 4.0)


def _odd_model(path: Path, prune: dict[str, float] | None = None) -> Path:
    """Odd shapes around a fusable pair: a SAME conv dilated (2, 3) so border taps
    skip, then a (1, 2)-strided conv over 3 channels with 55 output pixels and 5
    channels feeding Dense(5); input zero point not 0. prune zeroes that fraction
    of the named layers' weights. The converter lowers dilated SAME convolutions
    through SPACE_TO_BATCH_ND, so the dilation is set in the flatbuffer instead:
    with stride 1 and SAME padding it leaves every shape unchanged."""
    from tensorflow.lite.tools import flatbuffer_utils

    _, tf_keras = _keras()
    L = tf_keras.layers
    inp = L.Input((11, 9))
    x = L.Reshape((11, 9, 1))(inp)
    x = L.Conv2D(3, 3, padding="same", activation="relu", name="dilated")(x)
    x = L.Conv2D(5, (3, 2), strides=(1, 2), padding="same", activation="relu", name="conv")(x)
    x = L.Flatten()(x)
    x = L.Dense(5, kernel_initializer=tf_keras.initializers.RandomNormal(stddev=0.5), name="dense")(x)
    model = tf_keras.Model(inp, L.Softmax()(x))
    rng = np.random.default_rng(11)
    for name, fraction in (prune or {}).items():
        w, b = model.get_layer(name).get_weights()
        w[rng.random(w.shape) < fraction] = 0
        model.get_layer(name).set_weights([w, b])
    _to_int8_tflite(model, path, -0.5, 1.5)
    fb = flatbuffer_utils.read_model(str(path))
    for op in fb.subgraphs[0].operators:
        o = op.builtinOptions
        if hasattr(o, "dilationHFactor") and (o.strideH, o.strideW) == (1, 1):
            o.dilationHFactor, o.dilationWFactor = 2, 3
    flatbuffer_utils.write_model(fb, str(path))
    return path


@pytest.fixture(scope="module")
def oddconv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oddconv")
    return _compiled(tmp, _odd_model(tmp / "odd.tflite"))


@pytest.fixture(scope="module")
def oddconv_unfused(oddconv, tmp_path_factory):
    return _compiled(tmp_path_factory.mktemp("oddconv_unfused"), oddconv.tflite, fuse_conv_fc=False)


@pytest.fixture(params=[False, True], ids=["portable", "dsp-emulated"])
def dsp(request):
    return request.param


def _check_bit_exact(m, dsp: bool):
    x = _inputs(int(np.prod(m.info["input_shape"])), zero_point=m.info["input_zero_point"])
    expected = codegen.tflm_outputs(m.tflite, x)
    got = codegen.run_host(m.exe_dsp if dsp else m.exe, x)
    assert got.shape == expected.shape == (len(x), int(np.prod(m.info["output_shape"])))
    mismatched = np.flatnonzero((got != expected).any(axis=1))
    assert mismatched.size == 0, f"{mismatched.size} inputs differ, first {mismatched[:5]}"
    # A degenerate model (constant output) would prove little about the arithmetic.
    assert len(np.unique(expected, axis=0)) > 20


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_tinyconv_bit_exact_with_tflm(tinyconv, tinyconv_unfused, dsp, fused):
    m = tinyconv if fused else tinyconv_unfused
    assert m.info["ops"] == ["RESHAPE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert m.info["macs"] == 25 * 20 * 8 * 80 + 4000 * 4
    assert m.info["fuse_conv_fc"] is fused and len(m.info["fused"]) == int(fused)
    _check_bit_exact(m, dsp)


def test_dslike_bit_exact_with_tflm(dslike, dsp):
    ops = set(dslike.info["ops"])
    assert {"DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD", "CONV_2D"} <= ops
    assert dslike.info["input_zero_point"] != 0
    _check_bit_exact(dslike, dsp)


@pytest.mark.slow
def test_sparse_encoding_is_bit_exact_and_smaller(sparse_tinyconv, tmp_path):
    dense = codegen.generate(sparse_tinyconv, tmp_path / "dense")
    info = codegen.generate(sparse_tinyconv, tmp_path / "sparse", sparse_threshold=0.5)
    layers = {l["op"]: l for l in info["layers"]}
    assert layers["CONV_2D"]["encoding"] == layers["FULLY_CONNECTED"]["encoding"] == "sparse"
    assert layers["FULLY_CONNECTED"]["sparsity"] > 0.8
    assert {l["encoding"] for l in dense["layers"]} <= {"dense", None}
    # Fused, both sparse: by default only the conv outputs nonzero FC weights read are computed.
    assert "tm_conv2d_fc_s8_sc(" in (tmp_path / "sparse" / "model.c").read_text()
    assert info["fused"][0]["encoding"] == "sparse-taps+sparse-columns"
    assert 0 < info["fused"][0]["live_columns"] < 4000
    rows = codegen.generate(sparse_tinyconv, tmp_path / "rows", sparse_threshold=0.5, sparse_columns=False)
    assert "tm_conv2d_fc_s8_ss(" in (tmp_path / "rows" / "model.c").read_text()
    unfused = codegen.generate(sparse_tinyconv, tmp_path / "unfused", sparse_threshold=0.5, fuse_conv_fc=False)
    # Row-sparse storage is the smallest; the column form adds a few bytes per live column.
    assert unfused["weight_bytes"] == rows["weight_bytes"] < 0.6 * dense["weight_bytes"]
    assert rows["weight_bytes"] < info["weight_bytes"] < dense["weight_bytes"]
    assert {"tm_conv2d_sparse_s8(", "tm_fully_connected_sparse_s8("} <= set(
        re.findall(r"tm_\w+\(", (tmp_path / "unfused" / "model.c").read_text())
    )
    # A threshold above the layers' sparsity keeps them dense.
    strict = codegen.generate(sparse_tinyconv, tmp_path / "strict", sparse_threshold=0.95)
    assert {l["encoding"] for l in strict["layers"]} <= {"dense", None}

    x = _inputs(49 * 40, zero_point=info["input_zero_point"])
    expected = codegen.tflm_outputs(sparse_tinyconv, x)
    assert len(np.unique(expected, axis=0)) > 20
    for variant in ("sparse", "rows", "unfused"):
        for emulate_dsp in (False, True):
            exe = codegen.build_host(tmp_path / variant, tmp_path / f"build_{variant}", emulate_dsp=emulate_dsp)
            np.testing.assert_array_equal(codegen.run_host(exe, x), expected)


def _magnitude_pruned_tinyconv(path: Path, sparsity) -> Path:
    """TinyConv with its conv and dense kernels pruned by magnitude, then PTQ int8:
    sparsity a fraction (unstructured, the smallest |w| of each kernel zeroed) or
    "2:4" (the 2 smallest of every 4 consecutive weights along each output's inputs)."""
    from tinymighty.model import architectures as models

    _keras()
    model = models.tiny_conv()
    for name in ("conv", "dense"):
        layer = model.get_layer(name)
        w, b = layer.get_weights()
        by_out = w.reshape(-1, w.shape[-1]).T.copy()  # [cout][k], k ordered as the kernel's inputs
        if sparsity == "2:4":
            blocks = by_out.reshape(by_out.shape[0], -1, 4)
            np.put_along_axis(blocks, np.argsort(np.abs(blocks), axis=-1)[..., :2], 0, axis=-1)
            by_out = blocks.reshape(by_out.shape)
        else:
            flat = by_out.reshape(-1)
            flat[np.argsort(np.abs(flat), kind="stable")[: int(round(sparsity * flat.size))]] = 0
        layer.set_weights([by_out.T.reshape(w.shape), b + 0.01])
    return _to_int8_tflite(model, path, -4.0, 4.0)


@pytest.mark.parametrize("sparsity", slow_except([0.5, 0.75, 0.9, 0.95, "2:4"], fast=[0.9]))
def test_pruned_tinyconv_sparse_kernels_bit_exact(tmp_path, sparsity):
    """Magnitude-pruned TinyConv, sparse-encoded (threshold below its sparsity, so 50% and
    2:4 use the sparse kernels too): bit-exact to TFLM on 200 inputs, host portable and
    emulated-DSP builds, fused (column-sparse) and unfused; smaller than dense from 90%
    (at 75% the column form of the fused kernel is a little larger than dense)."""
    tflite = _magnitude_pruned_tinyconv(tmp_path / "pruned.tflite", sparsity)
    target = 0.5 if sparsity == "2:4" else sparsity
    dense = codegen.generate(tflite, tmp_path / "dense")
    x = _inputs(49 * 40, zero_point=dense["input_zero_point"])
    expected = codegen.tflm_outputs(tflite, x)
    assert len(np.unique(expected, axis=0)) > 20
    for fuse in (True, False):
        m = _compiled(tmp_path, tflite, f"sparse_fuse{fuse}", sparse_threshold=target - 0.1, fuse_conv_fc=fuse)
        layers = {l["op"]: l for l in m.info["layers"]}
        for op in ("CONV_2D", "FULLY_CONNECTED"):
            assert layers[op]["encoding"] == "sparse" and layers[op]["sparsity"] >= target - 0.01
        assert [f["kernel"] for f in m.info["fused"]] == (["tm_conv2d_fc_s8_sc"] if fuse else [])
        if target >= 0.9:
            assert m.info["weight_bytes"] < dense["weight_bytes"]
        for exe in (m.exe, m.exe_dsp):
            np.testing.assert_array_equal(codegen.run_host(exe, x), expected)


@pytest.mark.slow
@pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("arm-none-eabi-gcc", "qemu-system-arm", "make")),
    reason="needs arm-none-eabi-gcc, qemu-system-arm and make",
)
def test_pruned_tinyconv_on_qemu_smaller_than_dense(tmp_path):
    """90%-pruned TinyConv on the emulated Cortex-M4: the column-sparse fused kernel is
    bit-exact to TFLM and its model flash is below the dense kernels' (timing: the bench)."""
    from tinymighty import device

    tflite = _magnitude_pruned_tinyconv(tmp_path / "pruned.tflite", 0.9)
    flash = {}
    for name, threshold in (("sparse", 0.7), ("dense", None)):
        info = codegen.generate(tflite, tmp_path / name, sparse_threshold=threshold)
        x = _inputs(49 * 40, n=24, zero_point=info["input_zero_point"])
        elf = device.build_firmware(tmp_path / name, tmp_path / f"build_{name}")
        r = device.measure(elf, {"kind": "qemu", "timeout": 120}, x, n_bench=1, log_path=tmp_path / f"{name}.log")
        np.testing.assert_array_equal(r["outputs"], codegen.tflm_outputs(tflite, x))
        flash[name] = r["flash"]
    assert flash["sparse"]["model"] < flash["dense"]["model"]
    assert flash["sparse"]["total"] < flash["dense"]["total"]


PINNED_FIXTURES = Path(__file__).parent / "fixtures" / "pinned"


@pytest.mark.parametrize("fixture", slow_except(["tinyconv_ptq_w4a8", "dscnn_ptq_w4a8"], fast=["tinyconv_ptq_w4a8"]))
def test_int4_weights_stay_packed_and_bit_exact(fixture, tmp_path):
    """W4A8 (the quantization study's packed INT4 weights): TinyConv fused (its 4-bit FC re-packed for the
    SIMD kernel) and unfused, DS-CNN (4-bit pointwise and 3x3 depthwise weights unpacked per call, a QUANTIZE
    op), bit-exact to TFLM on the host, both code paths; the model's constants hold the weights at 4 bits."""
    from tinymighty.codegen.flatbuffer import read_graph

    tflite = PINNED_FIXTURES / f"{fixture}.tflite"
    int4_bytes = sum(t.data.size for op in read_graph(tflite).ops for t in op.inputs[1:2] if t and t.type == "INT4")
    x = _inputs(49 * 40, n=40 if fixture.startswith("dscnn") else N_INPUTS)
    expected = codegen.tflm_outputs(tflite, x)
    assert len(np.unique(expected, axis=0)) > 3
    for fuse in (True, False) if fixture.startswith("tinyconv") else (True,):
        m = _compiled(tmp_path, tflite, f"fuse{fuse}", sparse_threshold=0.8, fuse_conv_fc=fuse)
        weighted = [l for l in m.info["layers"] if l["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
        assert {l["encoding"] for l in weighted} == {"int4"}
        if fixture.startswith("tinyconv"):  # conv and dense are the 4-bit layers: about half a byte a weight
            assert int4_bytes == (8 * 80 + 4 * 4000) // 2
            assert m.info["weight_bytes"] < int4_bytes + 300
        else:  # each 3x3 depthwise layer of 64 channels: its 4-bit taps and its int32 biases, nothing more
            dw = [l for l in weighted if l["op"] == "DEPTHWISE_CONV_2D"]
            assert len(dw) == 4 and all(l["kernel"] == "tm_dwconv3x3_s4" for l in dw)
            assert all(l["weight_bytes"] == 9 * 64 // 2 + 4 * 64 for l in dw)
        for exe in (m.exe, m.exe_dsp):
            np.testing.assert_array_equal(codegen.run_host(exe, x), expected)


# --------------------------------------------------------------------------
# CONV_2D -> FULLY_CONNECTED fusion
# --------------------------------------------------------------------------


def test_fusion_drops_the_conv_output_from_the_arena(tinyconv, tinyconv_unfused):
    fused, unfused = tinyconv.info, tinyconv_unfused.info
    assert fused["fused"] == [
        {
            "kernel": "tm_conv2d_fc_s8_dd",
            "ops": ["CONV_2D", "FULLY_CONNECTED"],
            "indices": [4, 6],
            "intermediate_bytes": 25 * 20 * 8,
            "encoding": "dense+dense",
            "weight_bytes": fused["weight_bytes"],
        }
    ]
    assert unfused["fused"] == [] and unfused["fuse_conv_fc"] is False
    assert {l["kernel"] for l in fused["layers"] if l["op"] in ("CONV_2D", "FULLY_CONNECTED")} == {"tm_conv2d_fc_s8_dd"}
    # Nothing of the 4000-byte conv output is left: FC state, three packed receptive fields (int16
    # pairs, 480 bytes) and their accumulators.
    assert unfused["arena_size"] >= 4000 and fused["arena_size"] < 640
    assert fused["weight_bytes"] == unfused["weight_bytes"] and fused["macs"] == unfused["macs"]
    source = (tinyconv.gen / "model.c").read_text()
    assert "tm_conv2d_fc_s8_dd(" in source and "tm_conv2d_s8(" not in source
    assert "tm_fully_connected_s8(" not in source
    assert "tm_conv2d_s8(" in (tinyconv_unfused.gen / "model.c").read_text()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_odd_shapes_and_dilation_bit_exact(oddconv, oddconv_unfused, dsp, fused):
    """Odd pixel and channel counts, dilated border windows, nonzero input zero point."""
    m = oddconv if fused else oddconv_unfused
    assert len(m.info["fused"]) == int(fused)
    assert m.info["input_zero_point"] != 0
    source = (m.gen / "model.c").read_text()
    assert ".dil_h = 2, .dil_w = 3" in source
    x = _inputs(99, zero_point=m.info["input_zero_point"])
    expected = codegen.tflm_outputs(m.tflite, x)
    assert len(np.unique(expected, axis=0)) > 20
    np.testing.assert_array_equal(codegen.run_host(m.exe_dsp if dsp else m.exe, x), expected)
    if fused:
        assert oddconv.info["arena_size"] < oddconv_unfused.info["arena_size"]


@pytest.mark.parametrize(
    "prune, threshold, kernel, columns",
    [
        ({}, None, "tm_conv2d_fc_s8_dd", True),
        pytest.param({"conv": 0.5, "dense": 0.9}, 0.7, "tm_conv2d_fc_s8_ds", True, marks=pytest.mark.slow),
        pytest.param({"conv": 0.9, "dense": 0.5}, 0.7, "tm_conv2d_fc_s8_sd", True, marks=pytest.mark.slow),
        pytest.param({"conv": 0.9, "dense": 0.9}, 0.7, "tm_conv2d_fc_s8_ss", False, marks=pytest.mark.slow),
        pytest.param({"conv": 0.9, "dense": 0.9}, 0.7, "tm_conv2d_fc_s8_sc", True, marks=pytest.mark.slow),
        pytest.param({"conv": 0.75, "dense": 0.6}, 0.5, "tm_conv2d_fc_s8_sc", True, marks=pytest.mark.slow),
    ],
    ids=[
        "dense-dense",
        "dense-sparse",
        "sparse-dense",
        "sparse-sparse-rows",
        "sparse-sparse-columns",
        "sparse-sparse-columns-0.6",
    ],
)
def test_fusion_covers_every_weight_encoding_pair(tmp_path, prune, threshold, kernel, columns):
    tflite = _odd_model(tmp_path / "odd.tflite", prune)
    x = _inputs(99, zero_point=-64)
    expected = codegen.tflm_outputs(tflite, x)
    assert len(np.unique(expected, axis=0)) > 20
    arenas = {}
    for fuse in (True, False):
        m = _compiled(
            tmp_path, tflite, f"fuse{fuse}", sparse_threshold=threshold, fuse_conv_fc=fuse, sparse_columns=columns
        )
        arenas[fuse] = m.info["arena_size"]
        assert [f["kernel"] for f in m.info["fused"]] == ([kernel] if fuse else [])
        for exe in (m.exe, m.exe_dsp):
            np.testing.assert_array_equal(codegen.run_host(exe, x), expected)
    assert arenas[True] < arenas[False]


def test_fusion_falls_back_when_the_fc_input_is_shared(tmp_path):
    """Two Dense layers read the flattened conv output: no fusion, still bit-exact."""
    _, tf_keras = _keras()
    L = tf_keras.layers
    inp = L.Input((10, 8))
    x = L.Flatten()(L.Conv2D(4, 3, strides=2, padding="same", activation="relu")(L.Reshape((10, 8, 1))(inp)))
    out = L.Softmax()(L.Add()([L.Dense(4)(x), L.Dense(4)(x)]))
    m = _compiled(tmp_path, _to_int8_tflite(tf_keras.Model(inp, out), tmp_path / "shared.tflite"))
    assert m.info["fused"] == [] and m.info["fuse_conv_fc"] is True
    assert m.info["ops"].count("FULLY_CONNECTED") == 2
    assert {"tm_conv2d_s8", "tm_fully_connected_s8"} <= {l["kernel"] for l in m.info["layers"]}
    for dsp in (False, True):
        _check_bit_exact(m, dsp)


def test_fusion_needs_a_conv_feeding_an_fc(dslike):
    # DS-CNN-like: the FC reads a pooled tensor, and the convolutions feed other layers.
    assert dslike.info["fused"] == [] and "FULLY_CONNECTED" in dslike.info["ops"]


def _toy_chain(*, fc_rows=1, extra_reader=False, conv_is_output=False):
    """CONV_2D -> RESHAPE -> FULLY_CONNECTED -> SOFTMAX as lowered steps, for the pattern matcher."""

    def t(i, shape):
        return codegen.Tensor(i, f"t{i}", "INT8", shape, np.ones(1, np.float32), np.zeros(1, np.int64), None)

    def step(i, name, kernel, reads, write, **kw):
        return codegen.Step(codegen.Op(i, name, reads, [write], None), kernel, reads, write, **kw)

    dense = codegen.WeightEncoding("dense", [], {"w": "w"}, 0.0)
    x, c, r, f, y, z = (
        t(0, (1, 4, 4, 1)),
        t(1, (1, 2, 2, 8)),
        t(2, (fc_rows, 32 // fc_rows)),
        t(3, (fc_rows, 3)),
        t(4, (fc_rows, 3)),
        t(5, (1, 1, 1, 8)),
    )
    steps = [
        step(
            0,
            "CONV_2D",
            "tm_conv2d_s8",
            [x],
            c,
            encoding=dense,
            scratch=18,
            struct={"win": {}, "mm": {"w": "op0_pw", "k": 9, "kp": 8, "cout": 8, "rq": {}}},
        ),
        step(1, "RESHAPE", None, [c], r),
        step(
            2,
            "FULLY_CONNECTED",
            "tm_fully_connected_s8",
            [r],
            f,
            encoding=dense,
            struct={"rows": fc_rows, "mm": {"w": "op2_w", "k": 32 // fc_rows, "cout": 3, "rq": {}}},
        ),
        step(3, "SOFTMAX", "tm_softmax_s8", [f], y),
    ]
    if extra_reader:
        steps.append(step(4, "MAX_POOL_2D", "tm_max_pool_s8", [c], z))
    return codegen.Graph([], [x], [c] if conv_is_output else [y]), steps


def test_fusion_pattern_matcher():
    graph, steps = _toy_chain()
    fused = codegen.fuse(graph, steps)
    assert [s.kernel for s in fused] == ["tm_conv2d_fc_s8_dd", "tm_softmax_s8"]
    assert fused[0].reads == steps[0].reads and fused[0].write is steps[2].write
    # FC accumulators, three packed receptive fields of kp = 8 k-pairs, accumulators of 4 channel pairs.
    assert fused[0].scratch == 4 * 3 + 12 * 8 + 24 * 4
    assert fused[0].struct["conv"] == "&op0_mm" and fused[0].struct["fc"] == "&op2_mm"
    for kwargs in ({"fc_rows": 2}, {"extra_reader": True}, {"conv_is_output": True}):
        graph, steps = _toy_chain(**kwargs)
        kept = codegen.fuse(graph, steps)
        assert len(kept) == len(steps) and all(a is b for a, b in zip(kept, steps, strict=False)), kwargs


@pytest.mark.slow
@pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("arm-none-eabi-gcc", "qemu-system-arm", "make")),
    reason="needs arm-none-eabi-gcc, qemu-system-arm and make",
)
def test_fused_and_unfused_tinyconv_on_qemu(tinyconv, tinyconv_unfused, tmp_path):
    """Both paths cross-compiled and run on the emulated Cortex-M4, bit-exact to TFLM."""
    from tinymighty import device

    x = _inputs(49 * 40, n=24, zero_point=tinyconv.info["input_zero_point"])
    expected = codegen.tflm_outputs(tinyconv.tflite, x)
    ram = {}
    for name, m in (("fused", tinyconv), ("unfused", tinyconv_unfused)):
        elf = device.build_firmware(m.gen, tmp_path / name)
        r = device.measure(elf, {"kind": "qemu", "timeout": 120}, x, n_bench=1, log_path=tmp_path / f"{name}.log")
        np.testing.assert_array_equal(r["outputs"], expected)
        assert r["identify"]["arena"] == m.info["arena_size"]
        ram[name] = r["ram"]["static"]
    assert ram["unfused"] - ram["fused"] == tinyconv_unfused.info["arena_size"] - tinyconv.info["arena_size"]


def test_dead_shape_ops_are_pruned(tinyconv):
    # Keras' dynamic-batch Reshape computes its shape with int32 ops at run time.
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= set(tinyconv.info["pruned_ops"])


def test_header_defines_the_interface(tinyconv):
    header = (tinyconv.gen / "model.h").read_text()
    defines = dict(re.findall(r"^#define (TM_\w+) (.+)$", header, re.M))
    info = tinyconv.info
    digest = hashlib.sha256(tinyconv.tflite.read_bytes()).hexdigest()[:16]
    assert defines["TM_MODEL_HASH"] == f'"{digest}"' and info["model_hash"] == digest
    assert int(defines["TM_INPUT_SIZE"]) == 49 * 40
    assert int(defines["TM_OUTPUT_SIZE"]) == 4
    assert int(defines["TM_ARENA_SIZE"]) == info["arena_size"]
    assert int(defines["TM_WEIGHT_BYTES"]) == info["weight_bytes"] >= 8 * 80 + 4 * 4000
    assert np.float32(defines["TM_INPUT_SCALE"].rstrip("f")) == np.float32(info["input_scale"])
    assert np.float32(defines["TM_OUTPUT_SCALE"].rstrip("f")) == np.float32(1 / 256)
    assert int(defines["TM_INPUT_ZERO_POINT"].strip("()")) == info["input_zero_point"]
    assert int(defines["TM_OUTPUT_ZERO_POINT"].strip("()")) == -128
    assert "int tm_invoke(const int8_t *in, int8_t *out);" in header
    assert "static int8_t tm_arena[TM_ARENA_SIZE]" in (tinyconv.gen / "model.c").read_text()
    out = subprocess.run([str(tinyconv.exe), "--info"], capture_output=True, text=True, check=True).stdout
    assert f"hash {digest}" in out and f"arena {info['arena_size']}" in out


def test_generation_is_deterministic(tinyconv, tmp_path):
    again = codegen.generate(tinyconv.tflite, tmp_path / "again")
    for name in ("model.c", "model.h"):
        assert (tmp_path / "again" / name).read_bytes() == (tinyconv.gen / name).read_bytes()
    assert {k: v for k, v in again.items() if k != "files"} == {k: v for k, v in tinyconv.info.items() if k != "files"}


def test_memory_planner_shares_arena_bytes(dslike, tinyconv_unfused):
    # Many activations with short lifetimes: the arena must be well below their sum.
    assert dslike.info["arena_size"] < 0.75 * dslike.info["activation_bytes"]
    # Unfused TinyConv's conv output is the peak; the FC output reuses scratch bytes.
    assert tinyconv_unfused.info["arena_size"] < tinyconv_unfused.info["activation_bytes"]


def test_plan_memory_never_overlaps_live_buffers():
    rng = np.random.default_rng(3)
    bufs = [
        codegen.Buffer(f"b{i}", int(rng.integers(1, 500)), f, f + int(rng.integers(0, 4)))
        for i, f in enumerate(rng.integers(0, 20, size=60))
    ]
    arena = codegen.plan_memory(bufs)
    for i, a in enumerate(bufs):
        assert a.offset % codegen.ARENA_ALIGN == 0 and a.offset + a.size <= arena
        for b in bufs[i + 1 :]:
            if a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
    assert arena < sum(b.size for b in bufs)


def test_unsupported_op_names_op_type_and_file(tmp_path):
    _, tf_keras = _keras()
    L = tf_keras.layers
    inp = L.Input((8,))
    model = tf_keras.Model(inp, L.Activation("tanh")(L.Dense(4)(inp)))
    tflite = _to_int8_tflite(model, tmp_path / "with_tanh.tflite")
    with pytest.raises(UnsupportedModelError, match=r"with_tanh\.tflite.*TANH.*INT8"):
        codegen.generate(tflite, tmp_path / "out")
    assert not (tmp_path / "out" / "model.c").exists()


def test_float_model_is_rejected_naming_the_type(tmp_path):
    tf, tf_keras = _keras()
    L = tf_keras.layers
    inp = L.Input((8,))
    model = tf_keras.Model(inp, L.Dense(4)(inp))
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    with pytest.raises(UnsupportedModelError, match=r"float\.tflite.*FULLY_CONNECTED.*FLOAT32"):
        codegen.generate(path, tmp_path / "out")


def test_quantize_multiplier_matches_tflite():
    assert codegen.quantize_multiplier(0.5) == (1 << 30, 0)
    assert codegen.quantize_multiplier(1.0) == (1 << 30, 1)
    assert codegen.quantize_multiplier(0.0) == (0, 0)
    assert codegen.quantize_multiplier(2.0**-40) == (0, 0)  # flushed like TFLite
    # Rounding up to 2^31 renormalises instead of overflowing.
    assert codegen.quantize_multiplier(1 - 2.0**-33) == (1 << 30, 1)
    m, s = codegen.quantize_multiplier(0.0123)
    assert abs(m * 2.0 ** (s - 31) - 0.0123) < 1e-11


def test_run_host_rejects_partial_input(tinyconv):
    three_bytes_short = np.zeros((1, 2 * 49 * 40 - 3), np.int8)
    with pytest.raises(RuntimeError, match="exited"):
        codegen.run_host(tinyconv.exe, three_bytes_short)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_dsp_path_cross_compiles_for_cortex_m4(tinyconv, tmp_path):
    sources = [*sorted(codegen.KERNEL_DIR.glob("*.c")), tinyconv.gen / "model.c"]
    for src in sources:
        obj = tmp_path / (src.stem + ".o")
        subprocess.run(
            [
                "arm-none-eabi-gcc",
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                *ARM_FLAGS,
                f"-I{codegen.KERNEL_DIR}",
                f"-I{tinyconv.gen}",
                str(src),
                "-o",
                str(obj),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    kernel_objs = [str(tmp_path / (src.stem + ".o")) for src in sources[:-1]]
    asm = subprocess.run(
        ["arm-none-eabi-objdump", "-d", *kernel_objs], check=True, capture_output=True, text=True
    ).stdout
    assert "smlad" in asm and "sxtb16" in asm  # the SIMD path, not the portable one
