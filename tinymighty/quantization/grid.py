"""The quantization variant grid: which variants a config asks for, and what each job depends on.

Imports no TensorFlow: the workflow imports this module to build the DAG.

Variants (names match ``[a-z][a-z0-9_]*``; the grid comes from ``config["quantization"]``):

* ``qat_int8``  ``tfmot.quantization.keras.quantize_model`` (default 8-bit scheme), fine-tuned from the float
  checkpoint, exported as a full-int8 TFLite model (int8 in and out) and deployed like ``ptq_int8``.
* ``ptq_b{N}`` / ``qat_b{N}``  weights *and* activations at N bits with tfmot's
  ``DefaultNBitQuantizeScheme`` (weights: symmetric, narrow range, per output channel for convolutions and
  per tensor for dense layers; activations and the network input: asymmetric, per tensor). PTQ only
  calibrates; QAT starts from the same calibrated model and is fine-tuned.
* ``ptq_w{W}a{A}`` / ``qat_w{W}a{A}``  optional mixed points (``mixed:`` in the config), same scheme.
* ``mf_e{E}m{M}``  minifloat fake-quant of weights and activations (see ``minifloat.fake_minifloat``),
  plugged into tfmot as a ``Quantizer`` subclass inside a ``QuantizeConfig``; evaluated for accuracy only.

What TFLite can express (measured with TF 2.21; the variant list decides this before any job runs):

* 8-bit activations: exported and deployed to the MCU. Weights at 5..8 bits are stored as int8 holding
  exactly 2^N - 1 levels; weights at 2..4 bits are packed by the converter as INT4 (two weights a byte),
  which the code generator keeps packed in flash and the kernels unpack (bit-exact to TFLM).
* activations below 8 bits: not exported (``deployable: false``). The converter rejects 2..4-bit
  activations ("operand must be QI8/QUI8/QI16 ... but got i4") and silently widens 5..7-bit ranges to 8-bit
  scales, which would be a different model.
* minifloat: TFLite/TFLM have no FP8 tensor type; fake-quant only.
"""

from dataclasses import asdict, dataclass

from ..variant import Variant, name_regex

DEFAULTS = {
    "enabled": True,
    "calibration_samples": 1000,
    "fine_tune": {"epochs": 10, "batch_size": 100, "learning_rate": 0.0005},
    "qat_int8": True,
    "sweep": {"bits": [2, 3, 4, 5, 6, 7, 8], "methods": ["ptq", "qat"]},
    "mixed": [],
    "minifloat": [{"exponent": 4, "mantissa": 3, "special": "fn"}, {"exponent": 5, "mantissa": 2, "special": "ieee"}],
    "cliff_points": 1.0,
}
FAMILIES = ("qat", "ptq_nbit", "qat_nbit", "minifloat")
QAT_INT8 = "qat_int8"


@dataclass(frozen=True)
class Spec:
    """One quantized variant, independent of the architecture."""

    name: str
    method: str  # ptq | qat | minifloat
    scheme: str  # default_8bit | n_bit | minifloat
    weight_bits: int | None = None
    activation_bits: int | None = None
    exponent: int | None = None
    mantissa: int | None = None
    special: str | None = None  # minifloat: ieee (top exponent code = inf/NaN) | fn (only all-ones = NaN)

    @property
    def family(self):
        if self.scheme == "default_8bit":
            return "qat"
        return "minifloat" if self.scheme == "minifloat" else f"{self.method}_nbit"

    @property
    def bits(self):
        """The x position in the bit-width plot: N for integer schemes, 1 + E + M for minifloat."""
        if self.scheme == "minifloat":
            return 1 + self.exponent + self.mantissa
        return self.weight_bits

    @property
    def tflite(self):
        return self.scheme != "minifloat" and self.activation_bits == 8

    @property
    def int4(self):
        return self.tflite and self.weight_bits <= 4

    @property
    def deployed(self):
        """Compiled for the device: every exported variant, int8 or INT4-packed weights alike."""
        return self.tflite

    @property
    def deployable_reason(self):
        if self.scheme == "minifloat":
            return (
                f"TFLite and TFLM have no 8-bit floating-point tensor type (nor E{self.exponent}M{self.mantissa}): "
                f"the converter cannot express it, so only the fake-quant accuracy is measured"
            )
        if self.activation_bits is not None and self.activation_bits < 8:
            if self.activation_bits <= 4:
                return (
                    f"{self.activation_bits}-bit activations: the TFLite converter rejects sub-byte activations "
                    f"(kernels take QI8/QUI8/QI16 only), so only the fake-quant accuracy is measured"
                )
            return (
                f"{self.activation_bits}-bit activations: TFLite kernels compute on 8-bit activations and the "
                f"converter silently widens {self.activation_bits}-bit ranges to 8-bit scales, which would be a "
                f"different model; only the fake-quant accuracy is measured"
            )
        return None


def settings(config):
    """The quantization block with defaults filled in, or None when the study is off."""
    q = config.get("quantization")
    if q is None or not q.get("enabled", True):
        return None
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for k, v in q.items():
        out[k] = {**DEFAULTS[k], **v} if isinstance(DEFAULTS.get(k), dict) else v
    return out


def specs(config):
    q = settings(config)
    if q is None:
        return []
    out = []
    if q["qat_int8"]:
        out.append(Spec(QAT_INT8, "qat", "default_8bit", 8, 8))
    methods = [m for m in ("ptq", "qat") if m in q["sweep"]["methods"]]
    for method in methods:
        for n in sorted(set(q["sweep"]["bits"])):
            out.append(Spec(f"{method}_b{n}", method, "n_bit", n, n))
    for method in methods:
        for mix in q["mixed"]:
            w, a = mix["weights"], mix["activations"]
            out.append(Spec(f"{method}_w{w}a{a}", method, "n_bit", w, a))
    for mf in q["minifloat"]:
        e, m = mf["exponent"], mf["mantissa"]
        out.append(
            Spec(f"mf_e{e}m{m}", "minifloat", "minifloat", exponent=e, mantissa=m, special=mf.get("special", "ieee"))
        )
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"quantization: variants {dup} are listed twice; check quantization.mixed/minifloat")
    return out


def variants(config, arch):
    return [Variant(arch, s.name, s.family, tflite=s.tflite, int8=s.deployed) for s in specs(config)]


def spec(config, name):
    for s in specs(config):
        if s.name == name:
            return s
    raise KeyError(f"{name!r} is not a quantization variant of this config")


def job_params(config, name):
    """Exactly the settings one variant's job depends on (so editing one only reruns what it affects)."""
    s = spec(config, name)
    q = settings(config)
    out = {"spec": asdict(s)}
    if s.scheme != "minifloat":
        out.update(calibration_samples=q["calibration_samples"], seed=config["seed"])
    if s.method == "qat":
        out["fine_tune"] = dict(q["fine_tune"])
    return out


def rule_regex(config, kind):
    """Wildcard constraint for one rule kind: {ptq,qat}_{export,fakequant} or minifloat."""

    def want(s):
        if kind == "minifloat":
            return s.scheme == "minifloat"
        method, out = kind.split("_")
        return s.method == method and s.scheme != "minifloat" and s.tflite == (out == "export")

    return name_regex([s for s in specs(config) if want(s)])
