# Shared by all rule files. The variant grid, path conventions, and the functions of wildcards that rules
# use for inputs, params and resources (the rule files themselves hold only rules).
#
# Resources: every rule declares mem_mb and runtime (minutes), sized from the peak RSS and wall time in
# results/benchmarks/*.tsv of the default and tiny runs with about 2x headroom; TensorFlow jobs peak near
# 1 GB, feature extraction near 2 GB. Rules are single-threaded (TF runs with 1 intra/inter-op thread for
# determinism), so threads stay at 1, except dataset synthesis, which runs espeak-ng processes in parallel.
from tinymighty import variant as V, studies
from tinymighty.data import manifest, micro_frontend
from tinymighty.pruning import grid as P
from tinymighty.quantization import grid as Q

SPLITS = ["training", "validation", "testing"]
# The micro features are computed by the firmware's C frontend: a change to that C recomputes them.
FRONTEND_CODE = micro_frontend.source_hash() if config["features"]["kind"] == "micro" else ""
RESULTS = "results"
GRID = studies.grid(config)
TFLITE_VARIANTS = V.name_regex([v for v in GRID if v.tflite])
INT8_VARIANTS = V.name_regex([v for v in GRID if v.int8])
PRUNE_SPECS = P.specs(config)
PRUNE_VARIANTS = V.name_regex([v for v in GRID if v.family in P.FAMILIES])
# Fake-quant-only variants that are not fine-tuned: n-bit PTQ the converter cannot express, and minifloat.
QUANT_FAKEQUANT = "|".join(Q.rule_regex(config, kind) for kind in ("ptq_fakequant", "minifloat"))
# The synthetic dataset's settings and the held-out voices (data.holdout.voices; none: no held-out test).
SYNTHETIC = config["data"].get("synthetic") or {}
HOLDOUT_VOICES = list((config["data"].get("holdout") or {}).get("voices") or [])


wildcard_constraints:
    split="|".join(SPLITS),
    arch="[a-z][a-z0-9_]*",
    variant="[a-z][a-z0-9_]*",


def variant_dir(arch, variant):
    return f"{RESULTS}/variants/{arch}/{variant}"


def all_metrics():
    return [f"{variant_dir(v.arch, v.name)}/metrics.json" for v in GRID]


def device_path(arch, variant):
    return f"{RESULTS}/firmware/{arch}/{variant}/device.json"


def sketch_link_path(arch, variant):
    """The nRF52840 link check of a deployed variant's Arduino sketch (rules/arduino.smk)."""
    return f"{RESULTS}/firmware/{arch}/{variant}/arduino/link.json"


def has_device(arch, variant):
    return config["firmware"]["enabled"] and any(v.int8 for v in GRID if (v.arch, v.name) == (arch, variant))


def synthetic_settings():
    """dataset: the synthesis settings, only when the dataset is synthesised (they cannot change real data)."""
    return SYNTHETIC if config["data"]["source"] == "synthetic" else {}


def holdout_unknown_words():
    """holdout_dataset: every word of the synthetic dataset that is not a wanted word is an unknown word."""
    from tinymighty.data.synth import DEFAULT_KEYWORDS, DEFAULT_UNKNOWN_WORDS

    words = SYNTHETIC.get("keywords", DEFAULT_KEYWORDS), SYNTHETIC.get("unknown_words", DEFAULT_UNKNOWN_WORDS)
    return [w for w in dict.fromkeys([*words[0], *words[1]]) if w not in config["data"]["wanted_words"]]


def has_holdout(arch, variant):
    return bool(HOLDOUT_VOICES) and any(v.tflite for v in GRID if (v.arch, v.name) == (arch, variant))


def first_model_c():
    """The generated C of the PTQ int8 model, shown in the report as 'the model as a C array'."""
    if not config["firmware"]["enabled"]:
        return []
    arch = V.model_ids(config)[0]
    return [f"{RESULTS}/firmware/{arch}/{V.PTQ_INT8}/model/model.c"]


# ---- functions of wildcards (w) -------------------------------------------------------------------------


def augment_settings(w):
    """features: only the training split is augmented, so only it depends on the augment settings."""
    return config["augment"] if w.split == "training" else {}


def train_seed(w):
    """train: `tinyconv_s7` trains with seed 7, `tinyconv` with the global seed."""
    return V.parse_model_id(w.arch, config["seed"])[1]


def float_predictions(w):
    """evaluate: every variant but float itself is compared with the float model's predictions."""
    return [] if w.variant == V.FLOAT else [f"{variant_dir(w.arch, V.FLOAT)}/predictions.npy"]


def quant_inputs(w):
    """quant_*: the float model and the test set always; training clips to calibrate on (all but minifloat);
    validation clips for QAT fine-tuning."""
    spec = Q.spec(config, w.variant)
    inputs = {
        "model": f"{RESULTS}/models/{w.arch}/float.h5",
        "test": f"{RESULTS}/features/testing.npz",
        "float_predictions": f"{variant_dir(w.arch, V.FLOAT)}/predictions.npy",
    }
    if spec.scheme != "minifloat":
        inputs["train"] = f"{RESULTS}/features/training.npz"
    if spec.method == "qat":
        inputs["val"] = f"{RESULTS}/features/validation.npz"
    return inputs


def quant_params(w):
    """quant_*: exactly the settings of this one variant, so editing one reruns only what it affects."""
    return Q.job_params(config, w.variant)


def prune_spec(w):
    return PRUNE_SPECS[w.variant]


def prune_runtime(w):
    """prune: ~1.0 GB max RSS and <= 2 min per job on a loaded 2-core machine (default config); pruning-
    preserving QAT fine-tunes twice."""
    return 20 if PRUNE_SPECS[w.variant]["family"] == P.FAMILY_PQAT else 15


def source_manifest(w):
    """dataset: for data.path, a manifest of the dataset's files (sizes, times, inodes). It is rewritten only
    when they change, so an edited, added or removed clip, an edited list or a replaced archive reruns the
    dataset and everything after it, and an unchanged dataset reruns nothing."""
    data = config["data"]
    if data["source"] != "speech_commands" or not data.get("path"):
        return []
    out = f"{RESULTS}/data/source_manifest.json"
    manifest.refresh(data["path"], out)
    return out


def holdout_metrics(w):
    """metrics: the held-out voices' evaluation, for every TFLite variant when data.holdout names voices."""
    return [f"{variant_dir(w.arch, w.variant)}/holdout.json"] if has_holdout(w.arch, w.variant) else []


def device_metrics(w):
    """metrics: the device measurement, for the variants deployed to the device."""
    return [device_path(w.arch, w.variant)] if has_device(w.arch, w.variant) else []


def device_sketch_link(w):
    """device: on a board (backend serial), flash and RAM are the link check's of the variant's sketch."""
    return [sketch_link_path(w.arch, w.variant)] if config["firmware"]["backend"] == "serial" else []
