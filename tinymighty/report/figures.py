"""The report's own figures: preprocessing of one clip, training curves, confusion matrices."""

import csv
from pathlib import Path

import numpy as np


def preprocessing_figure(figs, wav_path, feat_cfg, model_features, name="preprocessing"):
    import librosa

    from ..data.audio import read_wav

    plt = figs.plt
    sr = feat_cfg["sample_rate"]
    y = read_wav(wav_path, sr)
    n_fft = int(sr * feat_cfg["window_ms"] / 1000)
    hop = int(sr * feat_cfg["stride_ms"] / 1000)
    fig, ax = plt.subplots(3, 2, figsize=(10, 8))
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
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
    for key, a in (("accuracy", ax[0]), ("loss", ax[1])):
        a.plot(ep, [float(r[key]) for r in rows], label="training")
        a.plot(ep, [float(r["val_" + key]) for r in rows], label="validation")
        a.set(xlabel="epoch", ylabel=key, title=f"{arch}: {key}")
        a.legend()
    return figs.save(fig, f"curves_{arch}")


def confusion_figure(figs, name, cm, labels):
    plt = figs.plt
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(3.8, 3.3))
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
