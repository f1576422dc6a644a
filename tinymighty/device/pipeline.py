"""The keyword spotter end to end: raw 16-bit audio -> features -> network -> recognizer, on the device and on
the host, with the same definition on both sides.

Device: an image built with the feature extractor (``build_firmware(..., features=feature_tables(...))``)
speaks protocol version 2 (firmware/PROTOCOL.md): ``PIPE`` says what its pipeline is, ``STREAM`` runs a
preloaded recording stride by stride (events, network outputs, instructions per stage) and ``CLIPS`` runs
one-second clips one by one (class and outputs). Host: ``host_stream`` runs the same recording through the
same C frontend (tinymighty.data.micro_frontend), a network callable (TFLM's interpreter in the workflow)
and the recognizer's Python reference, so device and host must give the same outputs and the same events.

``image_split`` reads the firmware's link map and attributes every byte of flash and static RAM to the
object directory it came from (the Makefile gives each source group its own): the feature extractor's
flash and RAM apart from the network's.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

from ..data import micro_frontend as mf
from ..errors import InputError
from .protocol import DeviceClient, DeviceError
from .recognizer import Settings, recognize

CLIPS_CHUNK = 32  # clips per CLIPS request, so a damaged line costs a short retry
# Timeouts: the slowest emulation they allow for (QEMU runs ~10x faster), with up to 60M instructions per second
# of audio streamed (5x the default pipeline) and 20M per clip.
MIN_INSTRUCTIONS_PER_SECOND = 20e6


# ---- the frontend config and its tables ------------------------------------------------------------------


def frontend_config(features: dict) -> mf.FrontendConfig:
    if features.get("kind", "micro") != "micro":
        raise InputError(
            f"features.kind is {features['kind']!r}: the device's feature extractor is TF's micro frontend, so "
            "the keyword-spotting pipeline needs features.kind: micro (or pipeline.enabled: false)"
        )
    return mf.FrontendConfig.from_features(features)


def feature_tables(features: dict, out_dir) -> Path:
    """The directory of fe_config.h + fe_tables.c for this features config: the firmware's default pair when
    the config is the default one, else a pair generated into out_dir."""
    cfg = frontend_config(features)
    if cfg == mf.FrontendConfig():
        return mf.DEFAULT_TABLES_DIR
    return mf.write_tables(cfg, out_dir)


# ---- bad input ---------------------------------------------------------------------------------------------


def check_pcm(pcm, sample_rate: int, fe_cfg: mf.FrontendConfig, *, stream: bool) -> np.ndarray:
    """The PCM as the device takes it, or an InputError naming what is wrong and what is expected.

    stream: one recording of whole strides, at least one clip long. Otherwise clips (N, samples) of any
    length from one sample: a shorter clip is zero-padded and a longer one cut, as the host fits clips."""
    x = np.asarray(pcm)
    if x.dtype != np.int16:
        raise InputError(
            f"the PCM is {x.dtype}, the device takes 16-bit samples: convert float audio with "
            "tinymighty.data.micro_frontend.pcm16"
        )
    if int(sample_rate) != fe_cfg.sample_rate:
        raise InputError(
            f"the PCM is {sample_rate} Hz but the features (features.sample_rate) take {fe_cfg.sample_rate} Hz: "
            f"resample it, e.g. `sox IN.wav -r {fe_cfg.sample_rate} -c 1 -b 16 OUT.wav`"
        )
    if stream:
        x = x.reshape(-1)
        n, s, clip = len(x), fe_cfg.stride, fe_cfg.clip_samples
        if n % s or n < clip:
            fix = f"cut it to {n // s * s} samples" if n >= clip else f"give at least {clip} samples"
            raise InputError(
                f"the PCM has {n} samples but a stream takes whole {s}-sample strides ({fe_cfg.stride_ms} ms at "
                f"{fe_cfg.sample_rate} Hz), at least {clip} samples (one {fe_cfg.clip_ms} ms clip): {fix}"
            )
    elif x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"clips must be a non-empty (clips, samples) array, got shape {x.shape}")
    return np.ascontiguousarray(x)


# ---- the device ----------------------------------------------------------------------------------------------


def pipe_info(client: DeviceClient, features: dict | None = None) -> dict:
    """The device's PIPE reply: its frontend config hash, framing and RAM. With features, checks that the
    image's feature tables are this config's."""
    info = client.info or client.identify()
    if info["proto"] < 2:
        raise DeviceError(
            f"{client.name} speaks protocol {info['proto']}, which has no pipeline: rebuild the firmware from "
            "this checkout with FEATURES=<tables dir>",
            client.transcript.path,
        )
    try:
        r = client.request("PIPE")
    except DeviceError as exc:
        raise DeviceError(
            f"{exc}; the image has no feature extractor: build it with "
            "build_firmware(..., features=feature_tables(config['features'], dir))"
        ) from exc
    pipe = {k: v if k == "fe" else int(v) for k, v in r.fields.items()}
    if features is not None:
        want = mf.config_hash(frontend_config(features))
        if pipe.get("fe") != want:
            raise DeviceError(
                f"{client.name}: the firmware's feature tables are for config {pipe.get('fe')}, the features config "
                f"is {want}: rebuild the firmware with this config's tables",
                client.transcript.path,
            )
    return pipe


def _ticks(fields: dict, *names) -> dict:
    return {n: int(fields[n]) for n in names}


def run_stream(
    client: DeviceClient, addr: int, samples: int, sample_rate: int, s: Settings, timeout: float | None = None
) -> dict:
    """STREAM on the recording preloaded at addr: the network's outputs per inference, the events and the
    ticks per stage (totals and the worst single stride or inference)."""
    out = (client.info or client.identify())["out"]
    cmd = (
        f"STREAM {addr:#x} {samples} {sample_rate} {s.interval} {s.window} {s.threshold} {s.suppression} "
        f"{s.keywords:#x}"
    )

    def parse(r):
        inf = [t for t in r.data if t and t[0] == "INF"]
        ev = [t for t in r.data if t and t[0] == "EVENT"]
        outputs = np.frombuffer(b"".join(bytes.fromhex(t[3]) for t in inf), np.int8).reshape(len(inf), out)
        return inf, ev, outputs

    def check(r):
        try:
            inf, ev, outputs = parse(r)
            if [t[1] for t in inf] != [str(i) for i in range(int(r.fields["inferences"]))]:
                return f"STREAM returned {len(inf)} inference lines of {r.fields['inferences']}"
            if len(ev) != int(r.fields["events"]):
                return f"STREAM returned {len(ev)} event lines of {r.fields['events']}"
            if zlib.crc32(outputs.tobytes()) != int(r.fields["crc32"], 16):
                return "STREAM outputs do not match the device's CRC-32 digest"
        except (KeyError, ValueError, IndexError) as exc:
            return f"malformed STREAM data ({exc})"
        return None

    if timeout is None:
        timeout = client.timeout + 30 + samples / sample_rate * 60e6 / MIN_INSTRUCTIONS_PER_SECOND
    r = client.request(cmd, timeout=timeout, check=check)
    inf, ev, outputs = parse(r)
    return {
        "samples": r.int("samples"),
        "strides": r.int("strides"),
        "columns": r.int("columns"),
        "inferences": r.int("inferences"),
        "ends": [int(t[2]) for t in inf],
        "outputs": outputs,
        "events": [(int(t[1]), int(t[2]), int(t[3]), int(t[4])) for t in ev],
        "ticks": _ticks(r.fields, "pre_ticks", "pre_max", "net_ticks", "net_max", "post_ticks", "post_max"),
        # Profiling builds (FE_PROFILE) only: ticks per frontend stage and for the quantisation.
        "stage_ticks": {k: int(v) for k, v in r.fields.items() if k.startswith("fe_")},
    }


def run_clips(client: DeviceClient, addr: int, count: int, samples: int, sample_rate: int) -> dict:
    """CLIPS over `count` preloaded clips of `samples` int16 samples each, CLIPS_CHUNK per request."""
    out = (client.info or client.identify())["out"]
    preds, outputs = [], []
    ticks = {"pre_ticks": 0, "pre_max": 0, "net_ticks": 0, "net_max": 0}
    for start in range(0, count, CLIPS_CHUNK):
        n = min(CLIPS_CHUNK, count - start)
        cmd = f"CLIPS {addr + start * samples * 2:#x} {n} {samples} {sample_rate}"

        def rows(r):
            return [t for t in r.data if t and t[0] == "CLIP"]

        def check(r, n=n):
            got = rows(r)
            if [t[1] if len(t) == 4 else None for t in got] != [str(i) for i in range(n)]:
                return f"CLIPS {n} returned rows {[t[1:2] for t in got][:10]}..."
            try:
                data = b"".join(bytes.fromhex(t[3]) for t in got)
                if len(data) != n * out or zlib.crc32(data) != int(r.fields["crc32"], 16):
                    return "CLIPS outputs do not match the device's CRC-32 digest"
            except (KeyError, ValueError) as exc:
                return f"malformed CLIPS data ({exc})"
            return None

        timeout = client.timeout + 10 + n * 20e6 / MIN_INSTRUCTIONS_PER_SECOND
        r = client.request(cmd, timeout=timeout, check=check)
        got = rows(r)
        preds += [int(t[2]) for t in got]
        outputs.append(np.frombuffer(b"".join(bytes.fromhex(t[3]) for t in got), np.int8).reshape(n, out))
        for k in ticks:
            v = int(r.fields[k])
            ticks[k] = max(ticks[k], v) if k.endswith("_max") else ticks[k] + v
    return {"predictions": np.asarray(preds, np.int64), "outputs": np.concatenate(outputs), "ticks": ticks}


# ---- the host's reference ----------------------------------------------------------------------------------


def inference_ends(columns: int, frames: int, interval: int) -> np.ndarray:
    """After how many feature columns each inference runs: the first once a whole clip's columns are there,
    then every `interval` columns (the firmware's schedule)."""
    return np.arange(frames, columns + 1, interval, dtype=np.int64)


def event_time_s(end: int, fe_cfg: mf.FrontendConfig) -> float:
    """When an inference after `end` columns happens: the end of its newest column's window."""
    return ((end - 1) * fe_cfg.stride + fe_cfg.window) / fe_cfg.sample_rate


def host_stream(pcm, fe_cfg: mf.FrontendConfig, in_scale: float, in_zp: int, network, s: Settings) -> dict:
    """The recording through the host's pipeline: the C frontend streamed with its state carried along,
    fe_quantize, `network` (int8 windows (N, frames * channels) -> int8 outputs (N, classes)) on the windows
    the device's schedule reads, and the recognizer's reference."""
    fe = mf.frontend(fe_cfg)
    q = fe.quantize(fe.stream(pcm), in_scale, in_zp)
    ends = inference_ends(len(q), fe_cfg.frames, s.interval)
    windows = np.stack([q[c - fe_cfg.frames : c].reshape(-1) for c in ends]) if len(ends) else np.zeros((0, q.size))
    outputs = np.asarray(network(windows), np.int8)
    events = [(i, int(ends[i]), c, score) for i, c, score in recognize(outputs, s)]
    return {"columns": len(q), "ends": ends.tolist(), "windows": windows, "outputs": outputs, "events": events}


def host_clips(pcm, fe_cfg: mf.FrontendConfig, in_scale: float, in_zp: int) -> np.ndarray:
    """The int8 network inputs of clips (N, samples) as the device's CLIPS computes them: (N, frames * channels)."""
    fe = mf.frontend(fe_cfg)
    x = np.asarray(pcm, np.int16)
    return fe.quantize(fe.clips(x), in_scale, in_zp).reshape(len(x), -1)


# ---- flash and RAM by source group, from the link map -------------------------------------------------------

FLASH_SECTIONS = (".text", ".model", ".ARM.exidx", ".data")
RAM_SECTIONS = (".bss", ".data")
_OUT = re.compile(r"^(\.[\w.]+)(?:\s+0x[0-9a-f]+\s+0x[0-9a-f]+)?\s*$")
_IN_ONE = re.compile(r"^ (\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)\s*$")
_IN_NAME = re.compile(r"^ (\S+)\s*$")
_IN_REST = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)\s*$")


def _group_of(obj: str) -> tuple[str, str]:
    """(source group, object) of an input file in the map: obj/<group>/<file>.o, or a library member."""
    parts = Path(obj).parts
    if len(parts) >= 3 and parts[-3] == "obj":
        return parts[-2], f"{parts[-2]}/{parts[-1]}"
    m = re.match(r".*/(lib[^/(]+)\.a\((.+)\)$", obj)
    return ("library", f"{m.group(1)}({m.group(2)})") if m else ("other", Path(obj).name)


def image_split(map_path) -> dict:
    """Flash and static RAM of a linked image, by source group (app, board, model, kernels, features,
    fetables, pipeline, library) and by object, from GNU ld's map; plus every static variable's size
    (.bss.<name>/.data.<name> input sections, as -fdata-sections makes them)."""
    text = Path(map_path).read_text()
    start = text.find("Linker script and memory map")
    if start < 0:
        raise InputError(f"{map_path} is not a GNU ld map file (no 'Linker script and memory map')")
    groups: dict[str, dict] = {}
    objects: dict[str, dict] = {}
    variables: dict[str, int] = {}
    out_section, pending = None, None
    for line in text[start:].splitlines():
        m = _OUT.match(line)
        if m and not line.startswith(" "):
            out_section, pending = m.group(1), None
            continue
        m = _IN_ONE.match(line)
        if m:
            name, size, obj = m.group(1), int(m.group(3), 16), m.group(4)
        else:
            m = _IN_NAME.match(line)
            if m and not line.strip().startswith(("*", "0x")):
                pending = m.group(1)
                continue
            m = _IN_REST.match(line)
            if not (m and pending):
                pending = None
                continue
            name, size, obj = pending, int(m.group(2), 16), m.group(3)
            pending = None
        if not size or out_section not in FLASH_SECTIONS + RAM_SECTIONS or "obj" not in obj and ".a(" not in obj:
            continue
        group, key = _group_of(obj)
        for kind, sections in (("flash", FLASH_SECTIONS), ("ram", RAM_SECTIONS)):
            if out_section in sections:
                for table, k in ((groups, group), (objects, key)):
                    table.setdefault(k, {"flash": 0, "ram": 0})[kind] += size
        for prefix in (".bss.", ".data."):
            if name.startswith(prefix):
                variables[f"{key}:{name[len(prefix) :]}"] = size
    return {"groups": groups, "objects": objects, "variables": variables}


def feature_extractor_size(split: dict, pipe: dict) -> dict:
    """The feature extractor's flash (its code and tables) and RAM (its state, the columns the feature window
    keeps beyond the network's clip, and its measured stack), apart from the network's and the rest."""
    g = split["groups"]
    window = pipe["frames"] * pipe["channels"]
    extra = pipe["window_buf"] - window
    ram = pipe["fe_state"] + extra + pipe.get("fe_stack", 0)
    objects = split["objects"]
    return {
        "flash_code": g.get("features", {}).get("flash", 0),
        "flash_tables": g.get("fetables", {}).get("flash", 0),
        "flash": g.get("features", {}).get("flash", 0) + g.get("fetables", {}).get("flash", 0),
        "ram_state": pipe["fe_state"],
        "ram_window_extra": extra,
        "ram_stack": pipe.get("fe_stack", 0),
        "ram": ram,
        "feature_window": window,
        "recognizer_flash": objects.get("pipeline/recognizer.o", {}).get("flash", 0),
        "recognizer_ram": pipe["rc_state"],
        "pipeline_flash": objects.get("pipeline/pipeline.o", {}).get("flash", 0),
        "network_flash": g.get("model", {}).get("flash", 0) + g.get("kernels", {}).get("flash", 0),
        "network_ram": g.get("model", {}).get("ram", 0) + g.get("kernels", {}).get("ram", 0),
    }


def stage_costs(ticks: dict, strides: int, inferences: int, insns_per_tick: float, fe_cfg, interval: int) -> dict:
    """Instructions per stride (pre-processing) and per inference (network, post-processing), and per second
    of audio at one inference every `interval` strides, from STREAM's tick totals."""
    per_stride = ticks["pre_ticks"] * insns_per_tick / max(strides, 1)
    per_inf = {k: ticks[f"{k}_ticks"] * insns_per_tick / max(inferences, 1) for k in ("net", "post")}
    strides_per_s = fe_cfg.sample_rate / fe_cfg.stride
    per_second = {
        "pre": per_stride * strides_per_s,
        "net": per_inf["net"] * strides_per_s / interval,
        "post": per_inf["post"] * strides_per_s / interval,
    }
    return {
        "pre_per_stride": per_stride,
        "pre_max": ticks["pre_max"] * insns_per_tick,
        "net_per_inference": per_inf["net"],
        "net_max": ticks["net_max"] * insns_per_tick,
        "post_per_inference": per_inf["post"],
        "post_max": ticks["post_max"] * insns_per_tick,
        "per_second": per_second,
        "total_per_second": sum(per_second.values()),
        "strides_per_second": strides_per_s,
        "inferences_per_second": strides_per_s / interval,
    }
