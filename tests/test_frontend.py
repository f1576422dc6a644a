"""The feature extractor in C (firmware/features/) against TF's audio micro frontend op.

Real components throughout: the host builds of the C (tinymighty.data.micro_frontend), TF's op from the
venv, espeak-ng + sox speech, and, where the toolchain is installed, the Cortex-M4 build on QEMU
mps2-an386.  Bit-exact means equal arrays, not close ones.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tinymighty.data import micro_frontend as mf  # noqa: E402
from tinymighty.data.audio import fit_length  # noqa: E402
from tinymighty.npio import quantize_input  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FEATURES = REPO / "firmware" / "features"
BOARD = REPO / "firmware" / "board"
DEFAULT = mf.FrontendConfig()
FEATURES_CFG = {
    "kind": "micro",
    "sample_rate": 16000,
    "clip_ms": 1000,
    "window_ms": 30,
    "stride_ms": 20,
    "channels": 40,
}
ARCH = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
ARM_CFLAGS = (
    *ARCH,
    "-O2",
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-ffunction-sections",
    "-fdata-sections",
    "-ffp-contract=off",
)


def tf_op(pcm, cfg: mf.FrontendConfig = DEFAULT) -> np.ndarray:
    """TF's op on one int16 recording, with the arguments features.py passes (uint16 out)."""
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op as op

    from tinymighty.tfutil import tf

    return op.audio_microfrontend(
        tf.constant(np.asarray(pcm, np.int16)),
        sample_rate=cfg.sample_rate,
        window_size=cfg.window_ms,
        window_step=cfg.stride_ms,
        num_channels=cfg.channels,
        out_scale=1,
        out_type=tf.uint16,
    ).numpy()


def tf_features(batch: np.ndarray, cfg=FEATURES_CFG) -> np.ndarray:
    """features.py's `_micro` (TF op, float32 out, * 10/256), written out so this test does not
    depend on where that function lives."""
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op as op

    from tinymighty.tfutil import tf

    frames = mf.FrontendConfig.from_features(cfg).frames

    def one(audio):
        return op.audio_microfrontend(
            audio,
            sample_rate=cfg["sample_rate"],
            window_size=int(cfg["window_ms"]),
            window_step=int(cfg["stride_ms"]),
            num_channels=cfg["channels"],
            out_scale=1,
            out_type=tf.float32,
        )

    pcm = tf.constant(np.clip(np.round(batch * 32768.0), -32768, 32767).astype(np.int16))
    out = tf.map_fn(one, pcm, fn_output_signature=tf.TensorSpec((frames, cfg["channels"]), tf.float32))
    return out.numpy() * (10.0 / 256.0)


# ---- audio --------------------------------------------------------------------------------------


def _read16(path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[np.ndarray]:
    """Words said by espeak-ng voices, resampled to 16 kHz mono 16-bit by sox, at several gains."""
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("espeak-ng and sox are needed for the speech clips")
    tmp = tmp_path_factory.mktemp("speech")
    out = []
    words = ["yes", "no", "up", "down", "left", "right", "stop", "go", "seven", "marvin"]
    voices = ["en", "en-us+f3", "en+m3", "en-gb-x-rp+f2"]
    for i, word in enumerate(words):
        voice = voices[i % len(voices)]
        raw, wav = tmp / f"{i}_raw.wav", tmp / f"{i}.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(130 + 10 * i), "-p", str(30 + 5 * i), "-w", str(raw), word],
            check=True,
            capture_output=True,
        )
        gain = ["-3", "-20", "6", "0"][i % 4]  # up to clipping (sox clips at full scale)
        subprocess.run(
            ["sox", "-q", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav), "gain", gain],
            check=True,
            capture_output=True,
        )
        out.append(_read16(wav))
    return out


def _clip_at(x: np.ndarray, n=16000, at=2000) -> np.ndarray:
    y = np.zeros(n, np.int16)
    x = x[: n - at]
    y[at : at + len(x)] = x
    return y


def varied_clips(speech) -> list[np.ndarray]:
    """One-second int16 clips covering the op's paths: silence, noise from 1 LSB to clipping,
    tones and chirps, speech, full-scale extremes (the -32768 windowed value TF ignores in its
    max), DC and a lone click."""
    rng = np.random.default_rng(2024)
    n, t = 16000, np.arange(16000) / 16000
    clips = [np.zeros(n, np.int16), np.full(n, 1, np.int16), np.full(n, -1, np.int16)]
    for level in (1, 3, 30, 300, 3000, 12000, 40000):
        clips.append(np.clip(np.round(rng.normal(0, level, n)), -32768, 32767).astype(np.int16))
    for f in (60, 440, 1000, 3100, 7400, 7999):
        clips.append(np.round(np.sin(2 * np.pi * f * t) * 20000).astype(np.int16))
    chirp = np.sin(2 * np.pi * (100 + 3900 * t) * t)
    clips.append(np.round(chirp * 32767).astype(np.int16))
    clips += [
        np.where(rng.random(n) < 0.5, -32768, 32767).astype(np.int16),
        np.full(n, -32768, np.int16),
        np.full(n, 32767, np.int16),
        np.where((np.arange(n) // 40) % 2 == 0, -32768, 32767).astype(np.int16),
    ]
    click = np.zeros(n, np.int16)
    click[[239, 240, 559, 560, 5000]] = -32768  # where the window's coefficient is 4096
    clips.append(click)
    clips.append((np.round(rng.normal(0, 100, n)) + 9000).astype(np.int16))  # DC offset
    for i, s in enumerate(speech):
        word = _clip_at(s, at=1000 + 700 * i)
        noise = np.round(rng.normal(0, [0, 10, 200, 1000][i % 4], n))
        clips.append(np.clip(word + noise, -32768, 32767).astype(np.int16))
    return clips


# ---- host build against the op -------------------------------------------------------------------


def test_default_tables_are_the_generated_ones():
    header, source = mf.render_tables(DEFAULT)
    assert (FEATURES / "default" / "fe_config.h").read_text() == header
    assert (FEATURES / "default" / "fe_tables.c").read_text() == source


def test_bit_exact_against_tf_op_on_varied_audio(speech):
    fe = mf.frontend(DEFAULT)
    clips = varied_clips(speech)
    got = fe.clips(np.stack(clips))
    for i, clip in enumerate(clips):
        want = tf_op(clip)
        assert want.shape == got[i].shape == (49, 40)
        assert np.array_equal(got[i], want), f"clip {i}: {np.argwhere(got[i] != want)[:5].tolist()}"


@pytest.mark.parametrize(
    "window_ms, stride_ms, channels, compact",
    [
        (30, 20, 40, False),  # the layout without the half window and derived unweights
        (40, 20, 40, True),  # a 1024-point FFT: kissfft's radix-2 first stage
        (25, 10, 32, True),
        (30, 30, 20, True),  # stride = window
        (30, 20, 128, True),  # bands with no bins
    ],
)
def test_bit_exact_on_other_configs(window_ms, stride_ms, channels, compact):
    cfg = mf.FrontendConfig(window_ms=window_ms, stride_ms=stride_ms, channels=channels)
    fe = mf.MicroFrontend(cfg, compact=compact)
    rng = np.random.default_rng(window_ms * 1000 + channels)
    clips = [
        np.clip(np.round(rng.normal(0, 10 ** rng.uniform(0, 4.5), 16000)), -32768, 32767).astype(np.int16)
        for _ in range(4)
    ]
    clips.append(np.where(rng.random(16000) < 0.5, -32768, 32767).astype(np.int16))
    got = fe.clips(np.stack(clips))
    for i, clip in enumerate(clips):
        assert np.array_equal(got[i], tf_op(clip, cfg)), f"clip {i}"


def test_bit_exact_without_an_fpu_square_root(speech):
    """The square root's integer-only path (cores without an FPU, and sums >= 2^54)."""
    fe = mf.MicroFrontend(DEFAULT, extra_cflags=("-DFE_SQRT_BITWISE",))
    clips = varied_clips(speech)[::3]
    got = fe.clips(np.stack(clips))
    for i, clip in enumerate(clips):
        assert np.array_equal(got[i], tf_op(clip)), f"clip {i}"


def _recording(speech, seconds=64, seed=7) -> np.ndarray:
    """A long recording: background noise of varying level, words at known places, silences."""
    rng = np.random.default_rng(seed)
    n = 16000 * seconds
    level = np.repeat(rng.uniform(5, 800, seconds), 16000)
    x = rng.normal(0, 1, n) * level
    x[16000 * 10 : 16000 * 13] = 0  # digital silence: the noise estimate decays
    for k in range(3 * len(speech)):
        s = speech[k % len(speech)].astype(np.float64)
        at = int(rng.integers(0, n - len(s)))
        x[at : at + len(s)] += s
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def test_streaming_a_long_recording_equals_the_op_on_all_of_it(speech):
    """Stride by stride with the noise estimate and PCAN state carried along, as on the device;
    the reference is the op run once over the whole recording (it too carries its state)."""
    fe = mf.frontend(DEFAULT)
    rec = _recording(speech)
    want = tf_op(rec)
    got = fe.stream(rec)
    assert got.shape == want.shape == (1 + (len(rec) - 480) // 320, 40)
    assert np.array_equal(got, want)
    # Per-clip results differ from the streamed columns of the same second: the state matters.
    assert not np.array_equal(fe.clips(rec[16000:32000])[0], got[50:99])


def test_per_clip_mode_starts_every_clip_from_reset_state(speech):
    fe = mf.frontend(DEFAULT)
    clips = varied_clips(speech)[-6:]
    together = fe.clips(np.stack(clips))
    for i, clip in enumerate(clips):
        assert np.array_equal(together[i], fe.clips(clip)[0])
        assert np.array_equal(together[i], tf_op(clip))


@pytest.mark.parametrize("length", [1, 479, 480, 8000, 15999, 16000, 16001, 24000])
def test_short_and_long_clips_are_fitted_as_the_host_fits_them(speech, length):
    """The device gets the raw samples; the host pads (or cuts) the float clip with fit_length
    before the op.  The C's per-clip mode must give the same columns."""
    word = speech[0].astype(np.float32) / 32768.0
    audio = np.resize(word, length).astype(np.float32)
    host = tf_features(fit_length(audio, 16000)[None])[0]
    device = mf.frontend(DEFAULT).clips(mf.pcm16(audio))[0]
    assert np.array_equal(device.astype(np.float32) * np.float32(mf.OUT_SCALE), host)


def test_extract_equals_the_workflows_tf_features(speech):
    """micro_frontend.extract is a drop-in for features.py's TF path: same float32 bits."""
    rng = np.random.default_rng(3)
    batch = [c.astype(np.float32) / 32768.0 for c in varied_clips(speech)]
    batch.append(np.clip(rng.normal(0, 0.3, 16000), -1, 1).astype(np.float32))  # float, not from int16
    batch = np.stack(batch)
    got = mf.extract(batch, FEATURES_CFG)
    want = tf_features(batch)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    try:
        from tinymighty.data import features
    except ImportError:
        return
    if hasattr(features, "_micro"):
        assert np.array_equal(got, features._micro(batch, FEATURES_CFG))


# ---- int8 model input ------------------------------------------------------------------------------


def _scales():
    rng = np.random.default_rng(11)
    fixed = [0.1, 0.10196078568696976, 0.0390625, 0.078125, 0.2, 1 / 3, 26 / 255, 1e-3, 5.0]
    return [float(np.float32(s)) for s in fixed + list(rng.uniform(0.01, 0.5, 40))]


def test_quantize_equals_npio_on_every_uint16_value():
    """fe_quantize against npio.quantize_input(op * 10/256) for every value the op can give,
    at many input scales (ties included: 0.078125 makes exact halves) and zero points."""
    fe = mf.frontend(DEFAULT)
    v = np.arange(65536 - 65536 % 40, dtype=np.uint16).reshape(-1, 40)
    x = v.astype(np.float32) * (10.0 / 256.0)  # exactly what features.py stores
    for scale in _scales():
        for zp in (-128, -100, 0, 7):
            want = quantize_input(x, {"dtype": np.int8, "quantization": (scale, zp)})
            assert np.array_equal(fe.quantize(v, scale, zp), want), (scale, zp)


def test_int8_input_distance_from_tf_op_over_many_clips(speech):
    """How far the device's int8 input is from the workflow's (TF op -> * 10/256 -> quantize_input),
    over a few hundred clips: it should be nowhere (every value equal)."""
    rng = np.random.default_rng(99)
    clips = varied_clips(speech)
    for _ in range(300):
        word = speech[int(rng.integers(len(speech)))].astype(np.float64) * rng.uniform(0.05, 1.5)
        x = rng.normal(0, 10 ** rng.uniform(0, 3.5), 16000)
        at = int(rng.integers(0, 16000 - min(len(word), 15000)))
        x[at : at + len(word)] += word[: 16000 - at]
        clips.append(np.clip(np.round(x), -32768, 32767).astype(np.int16))
    batch = np.stack(clips).astype(np.float32) / 32768.0
    host = tf_features(batch)
    fe = mf.frontend(DEFAULT)
    cols = fe.clips(mf.pcm16(batch))
    equal, total, worst = 0, 0, 0
    for scale, zp in [(0.10196078568696976, -128), (0.0999, -128), (0.13, -100)]:
        want = quantize_input(host, {"dtype": np.int8, "quantization": (float(np.float32(scale)), zp)})
        got = fe.quantize(cols, scale, zp)
        equal += int((got == want).sum())
        total += got.size
        worst = max(worst, int(np.abs(got.astype(int) - want.astype(int)).max()))
    print(f"\nint8 input vs TF op: {len(clips)} clips, {equal}/{total} values equal, max |diff| {worst}")
    assert equal == total and worst == 0


# ---- Cortex-M4 build ------------------------------------------------------------------------------

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="qemu-system-arm / arm-none-eabi-gcc not installed",
)


def _arm_sizes(obj: Path) -> dict[str, int]:
    out = subprocess.run(
        ["arm-none-eabi-size", "-A", "-d", str(obj)], check=True, capture_output=True, text=True
    ).stdout
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            for kind in sizes:
                if parts[0] == f".{kind}" or parts[0].startswith(f".{kind}."):
                    sizes[kind] += int(parts[1])
    return sizes


@needs_arm
def test_cortex_m4_build_fits_the_budget(tmp_path):
    """Compiles for the M4 with the firmware's flags (warnings are errors) and checks the issue's
    must-have budgets: flash (code + tables) <= 10,240 B, RAM (fe_state + stack) <= 4,096 B."""
    objs = {}
    for src in (FEATURES / "fe_frontend.c", FEATURES / "default" / "fe_tables.c"):
        obj = tmp_path / (src.stem + ".o")
        subprocess.run(
            [
                "arm-none-eabi-gcc",
                *ARM_CFLAGS,
                "-fstack-usage",
                f"-I{FEATURES}",
                f"-I{FEATURES / 'default'}",
                "-c",
                str(src),
                "-o",
                str(obj),
            ],
            check=True,
        )
        objs[src.stem] = _arm_sizes(obj)
    code, tables = objs["fe_frontend"], objs["fe_tables"]
    assert code["data"] == code["bss"] == tables["data"] == tables["bss"] == 0  # all state is the caller's
    flash = code["text"] + code["rodata"] + tables["text"] + tables["rodata"]
    stack = 0
    for line in (tmp_path / "fe_frontend.su").read_text().splitlines():
        name, size = line.split("\t")[0].rsplit(":", 1)[-1], int(line.split("\t")[1])
        if name in ("fe_stride", "fe_feed"):
            stack += size
    stack += 40  # fe_radix4 (naked: nine registers pushed plus one word)
    state = mf.frontend(DEFAULT).state_bytes  # same layout on the M4 (uint32 arrays + one uint32)
    print(
        f"\nfeature extractor flash: code {code['text'] + code['rodata']} B + tables "
        f"{tables['text'] + tables['rodata']} B = {flash} B; RAM: fe_state {state} B + stack {stack} B"
    )
    assert flash <= 10240
    assert state + stack <= 4096


def _build_bench(out: Path, tables_dir: Path, profile: bool = False) -> Path:
    srcs = [
        BOARD / "mps2_an386" / "startup.c",
        BOARD / "mps2_an386" / "board.c",
        FEATURES / "fe_frontend.c",
        tables_dir / "fe_tables.c",
        FEATURES / "bench" / "fe_bench.c",
    ]
    cmd = [
        "arm-none-eabi-gcc",
        *ARM_CFLAGS,
        *(["-DFE_PROFILE"] if profile else []),
        f"-I{BOARD}",
        f"-I{BOARD / 'mps2_an386'}",
        f"-I{FEATURES}",
        f"-I{tables_dir}",
        *map(str, srcs),
        "-T",
        str(BOARD / "mps2_an386" / "link.ld"),
        # link.ld INCLUDEs board/cortex_m_sections.ld, which ld looks up on the -L path.
        f"-L{BOARD.parent}",
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-Wl,--gc-sections",
        "-Wl,--defsym=__stack_size=8192",
        "-o",
        str(out),
    ]
    subprocess.run(cmd, check=True)
    return out


def _run_bench(elf: Path, pcm: np.ndarray, mode: int, tmp: Path, scale=0.10196078568696976, zp=-128) -> dict:
    pcm = np.ascontiguousarray(pcm, np.int16)
    clips, samples = pcm.shape if pcm.ndim == 2 else (1, pcm.size)
    header = struct.pack("<IIIIfiI", 0x31424546, mode, clips, samples, scale, zp, 3)
    inputs = tmp / f"{elf.stem}_in.bin"
    inputs.write_bytes(header + pcm.tobytes())
    cmd = [
        "qemu-system-arm",
        "-M",
        "mps2-an386",
        "-icount",
        "shift=0",
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        str(elf),
        "-device",
        f"loader,file={inputs},addr=0x21000000,force-raw=on",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = {"col": [], "q": [], "stage": {}}
    for line in proc.stdout.splitlines():
        key, *vals = line.split()
        if key == "col":
            out["col"].append(np.frombuffer(bytes.fromhex(vals[0]), "<u2"))
        elif key == "q":
            out["q"].append(np.frombuffer(bytes.fromhex(vals[0]), np.int8))
        elif key == "stage":
            out["stage"][int(vals[0])] = int(vals[1])
        elif key in ("calib", "run", "quant", "state"):
            out[key] = tuple(int(v) for v in vals)
    out["col"], out["q"] = np.array(out["col"]), np.array(out["q"])
    return out


@needs_qemu
def test_cortex_m4_build_is_bit_exact_on_qemu(tmp_path, speech):
    """The M4 build (SIMD intrinsics and the assembly FFT stages) against the host C and TF's op:
    per-clip mode on varied clips, streaming on a recording; prints instructions per column."""
    scale, zp = 0.10196078568696976, -128
    fe = mf.frontend(DEFAULT)
    elf = _build_bench(tmp_path / "bench.elf", FEATURES / "default")
    clips = np.stack(varied_clips(speech)[:12] + varied_clips(speech)[-4:])
    per_clip = _run_bench(elf, clips, 0, tmp_path, scale, zp)
    want = np.concatenate([tf_op(c) for c in clips])
    assert np.array_equal(per_clip["col"], want)
    assert np.array_equal(per_clip["q"], fe.quantize(want, scale, zp))

    rec = _recording(speech, seconds=8, seed=3)
    streamed = _run_bench(elf, rec, 1, tmp_path, scale, zp)
    assert np.array_equal(streamed["col"], tf_op(rec))
    assert streamed["state"][0] == fe.state_bytes

    per_tick = streamed["calib"][1] / streamed["calib"][0]  # emulated instructions per SysTick tick
    ticks, columns = streamed["run"]
    prof = _run_bench(
        _build_bench(tmp_path / "bench_prof.elf", FEATURES / "default", profile=True), rec, 1, tmp_path, scale, zp
    )
    names = ["window", "FFT", "filterbank", "noise+PCAN", "log"]
    split = ", ".join(f"{n} {prof['stage'][i] * per_tick / columns:.0f}" for i, n in enumerate(names))
    quant = streamed["quant"][0] * per_tick / streamed["quant"][1]
    print(
        f"\nM4 instructions per stride (one column): {ticks * per_tick / columns:.0f} "
        f"+ int8 quantisation {quant:.0f}; by stage: {split}"
    )


@needs_qemu
def test_cortex_m4_radix2_config_is_bit_exact_on_qemu(tmp_path):
    cfg = mf.FrontendConfig(window_ms=40, stride_ms=20, channels=40)
    tables_dir = mf.write_tables(cfg, tmp_path / "tables")
    elf = _build_bench(tmp_path / "bench40.elf", tables_dir)
    rng = np.random.default_rng(40)
    clips = np.stack(
        [
            np.clip(np.round(rng.normal(0, 10 ** rng.uniform(1, 4), 16000)), -32768, 32767).astype(np.int16)
            for _ in range(3)
        ]
    )
    got = _run_bench(elf, clips, 0, tmp_path)
    assert np.array_equal(got["col"], np.concatenate([tf_op(c, cfg) for c in clips]))


def check_every_test_clip(results: Path, features: dict, seed: int, tmp: Path) -> int:
    """Every clip of a run's test split, from its raw audio: TF's op gives the features the workflow stored, and
    the M4 build's int8 model input equals those features quantised with the deployed PTQ model's input scale.
    Returns the number of clips checked."""
    import json

    from tinymighty.data.features import load_audio
    from tinymighty.npio import load_split

    index = json.loads((results / "data" / "index.json").read_text())
    index["data_dir"] = str(results.parent / index["data_dir"])  # the index is relative to the run's directory
    audio, _ = load_audio(index, "testing", {}, features["sample_rate"], features["clip_ms"], seed)
    stored, _ = load_split(results / "features" / "testing.npz")
    assert np.array_equal(tf_features(audio, features), stored)
    io = json.loads((results / "firmware" / "tinyconv" / "ptq_int8" / "codegen.json").read_text())
    scale, zp = io["input_scale"], io["input_zero_point"]
    want = quantize_input(stored, {"dtype": np.int8, "quantization": (scale, zp)})
    fe_cfg = mf.FrontendConfig.from_features(features)
    elf = _build_bench(tmp / "bench.elf", mf.write_tables(fe_cfg, tmp / "tables"))
    pcm = mf.pcm16(audio)
    per_run = 256  # clips per QEMU run: their PCM must fit the board's 16 MB PSRAM
    got = [_run_bench(elf, pcm[i : i + per_run], 0, tmp, scale, zp)["q"] for i in range(0, len(pcm), per_run)]
    assert np.array_equal(np.concatenate(got).reshape(want.shape), want)
    return len(audio)


@needs_qemu
def test_every_test_clip_of_the_workflow_gets_the_same_int8_input_on_the_m4(tiny_run, tmp_path):
    from tinymighty.config import load_yaml

    tiny = load_yaml(REPO / "tests" / "configs" / "tiny.yaml")
    assert check_every_test_clip(tiny_run / "results", tiny["features"], tiny["seed"], tmp_path) > 0
