"""Units of the spine on real components: size estimate, splits, features, deterministic training, TFLite."""

import numpy as np
import pytest

from tinymighty.data.prepare import prepare_index
from tinymighty.data.splits import which_set
from tinymighty.model import architectures as models
from tinymighty.model import size


def test_tinyconv_size_matches_the_seed():
    est = size.estimate(models.tiny_conv())
    t = est["total"]
    assert t["params"] == 16652
    assert t["macs"] == 336000
    assert [r["macs"] for r in est["layers"] if r["macs"]] == [320000, 16000]
    assert t["flops_seed_convention"] == 672004
    assert t["flops"] == 2 * 336000 + 25 * 20 * 8 + 4
    # Peak int8 activations: the 49x40 input and the 25x20x8 conv output are alive together.
    assert t["peak_ram_int8"] == 1960 + 4000


def _fake_dataset(root, speakers=40, words=("yes", "no", "up", "down")):
    from tinymighty.data.audio import write_wav

    rng = np.random.default_rng(0)
    for w in words:
        for s in range(speakers):
            write_wav(root / w / f"{s:08x}_nohash_0.wav", 0.1 * rng.standard_normal(16000))
    write_wav(root / "_background_noise_" / "white.wav", 0.1 * rng.standard_normal(16000 * 3))


def test_prepare_follows_hash_rule_and_percentages(tmp_path):
    _fake_dataset(tmp_path)
    idx = prepare_index(tmp_path, ["yes", "no"], 20, 20, silence_percentage=10, unknown_percentage=50, seed=1)
    for split, entries in idx["splits"].items():
        files = [e["file"] for e in entries if e["file"]]
        assert all(which_set(f, 20, 20) == split for f in files)
        wanted = sum(e["label"] in ("yes", "no") for e in entries)
        assert idx["counts"][split]["_silence_"] == int(np.ceil(wanted * 0.10))
        assert idx["counts"][split]["_unknown_"] <= int(np.ceil(wanted * 0.50))
    # A speaker never spans two splits.
    seen = {}
    for split, entries in idx["splits"].items():
        for e in entries:
            if e["file"]:
                spk = e["file"].split("/")[1].split("_nohash_")[0]
                assert seen.setdefault(spk, split) == split
    # The same seed gives the same index.
    assert idx == prepare_index(tmp_path, ["yes", "no"], 20, 20, 10, 50, seed=1)


def test_prepare_uses_list_files_when_present(tmp_path):
    _fake_dataset(tmp_path, speakers=4)
    (tmp_path / "validation_list.txt").write_text("yes/00000000_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("no/00000001_nohash_0.wav\n")
    idx = prepare_index(tmp_path, ["yes", "no"], 10, 10, 0, 0, seed=0)
    assert [e["file"] for e in idx["splits"]["validation"]] == ["yes/00000000_nohash_0.wav"]
    assert [e["file"] for e in idx["splits"]["testing"]] == ["no/00000001_nohash_0.wav"]


@pytest.mark.parametrize("kind", ["micro", "logmel", "mfcc"])
def test_features_shape(kind):
    from tinymighty.data.features import extract

    cfg = dict(kind=kind, sample_rate=16000, clip_ms=1000, window_ms=30, stride_ms=20, channels=40)
    t = np.arange(16000) / 16000
    audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), np.zeros(16000)]).astype(np.float32)
    feats = extract(audio, cfg)
    assert feats.shape == (2, 49, 40)
    assert np.isfinite(feats).all()
    assert not np.allclose(feats[0], feats[1])  # a tone differs from silence


def _train_once(tmp_path, tag):
    from tinymighty.model.train import fit

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 20, (64, 49, 40)).astype(np.float32)
    y = rng.integers(0, 4, 64).astype(np.int32)
    from tinymighty.tfutil import make_deterministic

    make_deterministic(3)
    model = models.tiny_conv()
    fit(
        model,
        (x, y),
        (x[:16], y[:16]),
        epochs=2,
        batch_size=16,
        learning_rate=0.01,
        checkpoint=tmp_path / f"{tag}.weights.h5",
        history_csv=tmp_path / f"{tag}.csv",
        seed=3,
        log=lambda m: None,
    )
    return model.get_weights(), x


def test_training_is_bit_identical_for_a_seed(tmp_path):
    w1, _ = _train_once(tmp_path, "a")
    w2, _ = _train_once(tmp_path, "b")
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2, strict=False))
    assert (tmp_path / "a.csv").read_text().count("\n") == 3  # header + 2 epochs


def test_training_ends_with_its_final_epochs_at_the_final_learning_rate(tmp_path):
    from tinymighty.model.train import train_float

    rng = np.random.default_rng(0)
    for split in ("training", "validation"):
        np.savez(tmp_path / f"{split}.npz", x=rng.uniform(0, 20, (32, 49, 40)).astype(np.float32), y=np.arange(32) % 4)
    cfg = {"epochs": 3, "final_epochs": 1, "batch_size": 16, "learning_rate": 0.01, "final_learning_rate": 0.001}
    lines = []
    splits = [tmp_path / f"{split}.npz" for split in ("training", "validation")]
    train_float("tinyconv", *splits, tmp_path / "m.h5", tmp_path / "history.csv", cfg, 3, log=lines.append)
    rates = [float(line.rsplit(" lr ", 1)[1]) for line in lines if " epoch " in line]
    assert rates == pytest.approx([0.01, 0.01, 0.001])


def test_int8_conversion_matches_tflm_bit_for_bit(tmp_path):
    from tinymighty.model.convert import to_int8
    from tinymighty.model.evaluate import run_tflite, tflm_outputs

    w, x = _train_once(tmp_path, "c")
    model = models.tiny_conv()
    model.set_weights(w)
    content = to_int8(model, x, 32)
    outputs, xq = run_tflite(content, x)
    assert outputs.dtype == np.int8 and xq.dtype == np.int8
    assert np.array_equal(tflm_outputs(content, xq), outputs)
