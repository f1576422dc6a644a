"""Checks the JSON schema cannot express: files that must exist and options that go together."""

from pathlib import Path


class ConfigError(ValueError):
    pass


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
    if data["source"] == "speech_commands":
        path, url = data.get("path"), data.get("url")
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
    feats = config["features"]
    if feats["window_ms"] > feats["clip_ms"]:
        raise ConfigError("features.window_ms is longer than features.clip_ms")
    if config["firmware"].get("backend") == "serial" and not config["firmware"].get("port"):
        raise ConfigError("firmware.backend is serial but firmware.port is not set (e.g. /dev/ttyACM0)")
