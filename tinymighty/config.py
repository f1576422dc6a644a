"""Loading and checking the workflow config before any job runs.

``load_yaml`` reads a config file and names the file, line and column of a YAML syntax error;
``validate`` checks the merged config against rules/schema/config.schema.yaml and names the key, the file
and line that set it, and what to do (including the classic: YAML reads a bare yes/no/on/off as a
boolean); ``check_config`` holds the rules the schema cannot express: files that must exist and options
that go together. ``main`` checks the YAML of every ``--configfile`` on a snakemake command line: Snakemake
reads them before any workflow code and reports a syntax error there without file or line, so the
workflow profiles (profiles/default, profiles/slurm) call it when Snakemake reads them, which is earlier.
``exit_on_config_error`` ends the run with the message alone wherever the workflow checks its config.
"""

import re
import sys
from contextlib import contextmanager
from pathlib import Path

from .errors import TinyMightyError


class ConfigError(TinyMightyError, ValueError):
    """A config key is wrong; the message names the key (and the file and line, when known)."""


@contextmanager
def exit_on_config_error():
    """Ends the run with a ConfigError's message alone. Raised while Snakemake reads the workflow, it would
    come with the line of the Snakefile or .smk that raised it and traceback frames, which read like a crash."""
    try:
        yield
    except ConfigError as err:
        sys.exit(f"ConfigError: {err}")


def sort_keys(config) -> None:
    """Order every mapping's keys, in place. Snakemake compares params by their text, so without this a
    config file that only lists the same keys in another order would rerun jobs."""
    if isinstance(config, dict):
        items = sorted(config.items())
        config.clear()
        config.update(items)
        for value in config.values():
            sort_keys(value)
    elif isinstance(config, list):
        for value in config:
            sort_keys(value)


def check_config(config) -> None:
    data = config["data"]
    path, url = data.get("path"), data.get("url")
    if path and url:
        raise ConfigError(
            f"data.path ({path!r}) and data.url ({url!r}) are both set; keep one: data.path for a copy on "
            "disk (directory or .tar.gz), or data.url + data.sha256 to download"
        )
    if data["source"] == "speech_commands":
        if not path and not url:
            raise ConfigError(
                "data.source is speech_commands but neither data.path nor data.url is set; "
                "set data.path to an extracted directory or .tar.gz, or data.url + data.sha256"
            )
        if path and not Path(path).exists():
            raise ConfigError(
                f"data.path: {path!r} does not exist; point it at the extracted Speech Commands "
                f"directory or its .tar.gz"
            )
        if url and not data.get("sha256"):
            raise ConfigError(
                "data.url is set but data.sha256 is missing; add the archive's sha256 so the download can be verified"
            )
    else:
        syn = data.get("synthetic") or {}
        words = set(syn.get("keywords", [])) | set(syn.get("unknown_words", []))
        missing = [w for w in data["wanted_words"] if w not in words]
        if syn and missing:
            raise ConfigError(f"data.wanted_words {missing} are not synthesised; add them to data.synthetic.keywords")
    val, test = data.get("validation_percentage", 10), data.get("testing_percentage", 10)
    if val + test >= 100:
        raise ConfigError(
            f"data.validation_percentage ({val}) + data.testing_percentage ({test}) = {val + test} leaves no "
            "training clips; keep the sum below 100 (10 and 10 are Speech Commands' split)"
        )
    feats = config["features"]
    if feats["window_ms"] > feats["clip_ms"]:
        raise ConfigError(
            f"features.window_ms ({feats['window_ms']}) is longer than features.clip_ms ({feats['clip_ms']}); "
            "shorten the window (30 ms is usual) or lengthen the clip"
        )
    if feats["stride_ms"] > feats["window_ms"]:
        raise ConfigError(
            f"features.stride_ms ({feats['stride_ms']}) is longer than features.window_ms ({feats['window_ms']}): "
            "frames would skip audio, and the micro frontend crashes on it; make the stride at most the window "
            "(the default is window 30, stride 20)"
        )
    if feats.get("kind", "micro") == "micro":
        fractional = [k for k in ("window_ms", "stride_ms") if feats[k] != int(feats[k])]
        if fractional:
            raise ConfigError(
                f"features.{fractional[0]} ({feats[fractional[0]]}) must be a whole number of milliseconds for "
                "features.kind micro (the TF micro frontend takes integers); round it"
            )
    train = config["train"]
    if train.get("final_epochs", 0) >= train["epochs"]:
        raise ConfigError(
            f"train.final_epochs ({train['final_epochs']}) must be fewer than train.epochs ({train['epochs']}): "
            "they are the last epochs of the training, at train.final_learning_rate"
        )
    if config["firmware"].get("backend") == "serial" and not config["firmware"].get("port"):
        raise ConfigError("firmware.backend is serial but firmware.port is not set (e.g. /dev/ttyACM0)")
    _check_quantization(config.get("quantization") or {})
    _check_pruning(config.get("pruning") or {})


def _check_quantization(q) -> None:
    if not q.get("enabled", True):
        return
    sweep = q.get("sweep") or {}
    bits, methods = sweep.get("bits") or [], sweep.get("methods") or []
    if bits and not methods:
        raise ConfigError(
            f"quantization.sweep.bits is {bits} but quantization.sweep.methods is empty, so no sweep variant would "
            "be built; add ptq and/or qat to quantization.sweep.methods, or empty quantization.sweep.bits"
        )
    if methods and not bits and "sweep" in q:
        raise ConfigError(
            f"quantization.sweep.methods is {methods} but quantization.sweep.bits is empty, so no sweep variant "
            "would be built; list the bit widths (2..8) in quantization.sweep.bits, or empty the methods"
        )
    for i, mix in enumerate(q.get("mixed") or []):
        if not methods:
            raise ConfigError(
                f"quantization.mixed[{i}] needs a method: quantization.sweep.methods is empty; add ptq and/or qat"
            )
        if mix["weights"] == mix["activations"] and mix["weights"] in bits:
            n = mix["weights"]
            raise ConfigError(
                f"quantization.mixed[{i}] ({n}-bit weights and activations) is the sweep point {n} of "
                f"quantization.sweep.bits (variants {'/'.join(f'{m}_b{n}' for m in methods)}); remove it from "
                "quantization.mixed"
            )
    seen = {}
    for i, mf in enumerate(q.get("minifloat") or []):
        key = (mf["exponent"], mf["mantissa"])
        if key in seen:
            raise ConfigError(
                f"quantization.minifloat[{i}] and [{seen[key]}] are both E{key[0]}M{key[1]} (variant mf_e{key[0]}m"
                f"{key[1]}); keep one"
            )
        seen[key] = i


def _check_pruning(p) -> None:
    if not p.get("enabled", False):
        return
    st = p.get("structured")
    if not st:
        return
    out_of = st.get("out_of", 8)
    for name, values in (
        ("keep", st.get("keep") or []),
        ("compare_keep", [st["compare_keep"]] if "compare_keep" in st else []),
    ):
        bad = [k for k in values if not 0 < k < out_of]
        if bad:
            raise ConfigError(
                f"pruning.structured.{name} {bad} must be between 1 and pruning.structured.out_of - 1 ({out_of - 1}): "
                "keeping every filter prunes nothing; lower it or raise out_of"
            )
    if st.get("compare_norms") and "compare_keep" not in st:
        raise ConfigError(
            "pruning.structured.compare_norms is set but pruning.structured.compare_keep is not; set how many "
            f"filters (of {out_of}) the norms are compared at, e.g. compare_keep: {out_of // 2}"
        )


# ---- YAML files and the schema, with file and line ----------------------------------------------------------

BOOLEAN_WORDS = "yes/no/on/off/true/false"


def load_yaml(path) -> dict:
    """A config file as a dict; a syntax error names the file, line and column."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror or err}); check the path") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        line = text.splitlines()[mark.line].rstrip() if mark and mark.line < len(text.splitlines()) else ""
        raise ConfigError(
            f"{path}{where}: YAML syntax error: {what}"
            + (f" ({context})" if context else "")
            + (f"\n    {line}" if line else "")
            + "\nFix the YAML there: indent with spaces (not tabs), put a space after each ':', close every [ { and "
            "quote, and quote values that contain ': ' or start with a special character."
        ) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file is a mapping of keys like config.yaml, not a {type(data).__name__}")
    return data


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the top level)"


def _node_line(path, files):
    """(file, line) where the last of `files` that sets the key path sets it, else None."""
    import yaml

    for f in reversed([Path(f) for f in files]):
        try:
            node = yaml.compose(f.read_text())
        except (OSError, yaml.YAMLError):
            continue
        for i, part in enumerate(path):
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
                node = None if pair is None else pair[0] if i == len(path) - 1 else pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
            else:
                node = None
            if node is None:
                break
        if node is not None and path:
            return f, node.start_mark.line + 1
    return None


def validate(config, schema_path, files=()) -> None:
    """Checks config against the JSON schema; every problem names the key, the file and line that set it,
    and what to do."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    lines = []
    for err in errors[:5]:
        path = list(err.absolute_path)
        message, hint = err.message, ""
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            if extra:
                path.append(extra[0])
                known = ", ".join(sorted(err.schema.get("properties", {})))
                hint = f"; remove or rename it (the keys here are: {known})"
        elif isinstance(err.instance, bool) and err.validator in ("type", "pattern", "enum"):
            message = f"is the boolean {err.instance}, not a word"
            hint = (
                f'; YAML reads an unquoted {BOOLEAN_WORDS} as the boolean {err.instance}: quote the word, e.g. - "yes"'
            )
        elif err.validator in ("type", "enum", "minimum", "maximum", "exclusiveMinimum", "pattern"):
            hint = "; fix the value (rules/schema/config.schema.yaml lists what each key takes)"
        where = _node_line(path, files)
        prefix = f"{where[0]}, line {where[1]}: " if where else ""
        lines.append(f"{prefix}{_dotted(path)}: {message}{hint}")
    more = f"\n(and {len(errors) - 5} more problems)" if len(errors) > 5 else ""
    raise ConfigError("invalid config:\n" + "\n".join(lines) + more)


def _configfiles(argv) -> list:
    """The --configfile / --configfiles values of a snakemake command line."""
    files, taking = [], False
    for arg in argv:
        if taking and not arg.startswith("-"):
            files.append(arg)
            continue
        taking = arg in ("--configfile", "--configfiles")
        m = re.match(r"--configfiles?=(.+)", arg)
        if m:
            files.append(m.group(1))
    return files


def main(argv=None) -> None:
    """Checks the YAML syntax of the config files on a snakemake command line; exits on the first wrong one."""
    with exit_on_config_error():
        for f in _configfiles(sys.argv[1:] if argv is None else argv):
            load_yaml(f)


if __name__ == "__main__":
    main()
