"""The report's own figures: preprocessing of one clip, training curves, confusion matrices, and the
per-family views over all variants (accuracy against cost; flash, RAM and instructions on the device)."""

import csv
from pathlib import Path

import numpy as np

from ..plots import accuracy_panels, grouped_barh
from ..pruning.grid import FAMILY_2BY4, FAMILY_PQAT, FAMILY_STRUCTURED, FAMILY_UNSTRUCTURED

# Variant families in reading order, with the names the report prints.
FAMILIES = {
    "float": "float",
    "ptq": "PTQ int8 (converter)",
    "qat": "QAT int8",
    "ptq_nbit": "PTQ N-bit",
    "qat_nbit": "QAT N-bit",
    "minifloat": "minifloat",
    FAMILY_UNSTRUCTURED: "unstructured pruning",
    FAMILY_STRUCTURED: "structured pruning",
    FAMILY_2BY4: "2:4 sparsity",
    FAMILY_PQAT: "prune + QAT",
}
# The part of the study each figure belongs to, by file-name prefix (Snakemake's report groups by it).
FIGURE_PARTS = {
    "preprocessing": "preprocessing",
    "curves": "training",
    "confusion": "deployment",
    "device": "deployment",
    "tradeoffs": "deployment",
    "quant": "quantization",
    "pruning": "pruning",
}


def figure_part(name):
    """The study part of a report figure, from its file name (`pruning_pareto_tinyconv` -> pruning)."""
    for prefix, part in FIGURE_PARTS.items():
        if name.startswith(prefix):
            return part
    raise ValueError(f"report figure {name!r} has no part: add its prefix to FIGURE_PARTS")


def family_name(family):
    return FAMILIES.get(family, family)


def family_order(rows):
    """The families present, known ones in reading order, then any others."""
    present = list(dict.fromkeys(r["family"] or r["variant"] for r in rows))
    known = [f for f in FAMILIES if f in present]
    return known + [f for f in present if f not in FAMILIES]


def tradeoff_figure(figs, rows, float_accuracy):
    """Accuracy against four costs, every variant, one colour per family (small multiples)."""
    points = [{**r, "group": r["family"] or r["variant"]} for r in rows]
    panels = [
        ("tflite_bytes", "TFLite model (bytes, log scale)"),
        ("flops", "FLOPs per inference"),
        ("host_ms", "host latency (ms, TFLite, 1 thread)"),
        ("instructions", "emulated MCU instructions per inference"),
    ]
    panels = [p for p in panels if any(r.get(p[0]) is not None for r in rows)]
    groups = [(f, family_name(f)) for f in family_order(rows)]
    return accuracy_panels(
        figs, "tradeoffs", points, panels, "Accuracy against cost, all variants", groups, reference=float_accuracy
    )


def device_cost_figure(figs, dev_rows, clock_hz, multi_arch=False):
    """Flash, RAM and instructions of every deployed variant, grouped by family, one readable row each."""
    groups = []
    for fam in family_order(dev_rows):
        items = []
        for r in dev_rows:
            if (r["family"] or r["variant"]) != fam:
                continue
            d = r["device"]
            items.append(
                (
                    r["label"] if multi_arch else r["variant"],
                    {
                        "code": d["flash"]["code"],
                        "model": d["flash"]["model"],
                        "ram": d["ram"]["total"],
                        "instructions": r["instructions"],
                    },
                )
            )
        groups.append((family_name(fam), items))
    mhz = clock_hz / 1e6
    panels = [
        ("flash (bytes)", [("code", "#999999", "code"), ("model", "C0", "model")], "bytes", None),
        ("RAM (bytes)", [("ram", "C2", "RAM")], "bytes", None),
        (
            "instructions per inference",
            [("instructions", "C3", "instructions")],
            "emulated instructions",
            (f"ms at {mhz:g} MHz (lower bound)", lambda x: x / (mhz * 1e3), lambda ms: ms * mhz * 1e3),
        ),
    ]
    return grouped_barh(figs, "device_costs", groups, panels, "Deployed variants on the Cortex-M4, by family")


def preprocessing_figure(figs, wav_path, feat_cfg, model_features, name="preprocessing"):
    import librosa

    from ..data.audio import read_wav

    plt = figs.plt
    sr = feat_cfg["sample_rate"]
    y = read_wav(wav_path, sr)
    n_fft = int(sr * feat_cfg["window_ms"] / 1000)
    hop = int(sr * feat_cfg["stride_ms"] / 1000)
    fig, ax = plt.subplots(3, 2, figsize=(7.4, 5.1))
    t = np.arange(len(y)) / sr
    ax[0, 0].plot(t, y, lw=0.5)
    ax[0, 0].set(title="Waveform", xlabel="time (s)", ylabel="amplitude")
    spec = np.abs(np.fft.rfft(y))
    ax[0, 1].semilogy(np.fft.rfftfreq(len(y), 1 / sr), spec + 1e-9, lw=0.5)
    ax[0, 1].set(title="Spectrum (whole clip)", xlabel="frequency (Hz)", ylabel="|X(f)|")
    stft = librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=512, hop_length=hop)), ref=np.max)
    ax[1, 0].imshow(stft, origin="lower", aspect="auto", extent=[0, len(y) / sr, 0, sr / 2])
    ax[1, 0].set(title="Spectrogram (dB)", xlabel="time (s)", ylabel="frequency (Hz)")
    mel = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=feat_cfg["channels"], center=False
        )
    )
    ax[1, 1].imshow(mel, origin="lower", aspect="auto")
    ax[1, 1].set(title=f"Mel spectrogram ({feat_cfg['channels']} bands, dB)", xlabel="frame", ylabel="mel band")
    mfcc = librosa.feature.mfcc(S=mel, n_mfcc=13)
    ax[2, 0].imshow(mfcc, origin="lower", aspect="auto")
    ax[2, 0].set(title="MFCC (13 coefficients)", xlabel="frame", ylabel="coefficient")
    ax[2, 1].imshow(model_features.T, origin="lower", aspect="auto")
    ax[2, 1].set(title=f"{feat_cfg['kind']} features (model input)", xlabel="frame", ylabel="channel")
    for a in (ax[1, 0], ax[1, 1], ax[2, 0], ax[2, 1]):
        a.grid(False)
    fig.suptitle(Path(wav_path).parent.name + "/" + Path(wav_path).name)
    return figs.save(fig, name)


def curves_figure(figs, arch, history_csv):
    rows = list(csv.DictReader(open(history_csv)))
    ep = [int(r["epoch"]) + 1 for r in rows]
    plt = figs.plt
    fig, ax = plt.subplots(1, 2, figsize=(7.4, 2.6))
    for key, a in (("accuracy", ax[0]), ("loss", ax[1])):
        a.plot(ep, [float(r[key]) for r in rows], label="training")
        a.plot(ep, [float(r["val_" + key]) for r in rows], label="validation")
        a.set(xlabel="epoch", ylabel=key, title=f"{arch}: {key}")
        a.legend()
    return figs.save(fig, f"curves_{arch}")


def confusion_figure(figs, name, cm, labels):
    plt = figs.plt
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(2.7, 2.5))
    ax.imshow(cm, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=name)
    ax.grid(False)
    return figs.save(fig, f"confusion_{name.replace('/', '_')}")
