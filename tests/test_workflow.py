"""The workflow as a user runs it: config validation, the tiny end-to-end run, and incremental reruns."""

import json
import re

import pytest
import yaml
from conftest import TINY, snakemake


def _config_with(tmp_path, edit):
    cfg = yaml.safe_load(TINY.read_text())
    edit(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda c: c["train"].__setitem__("epochs", "many"), "epochs"),
        (lambda c: c["train"].__setitem__("epoch", 3), "epoch"),
        (lambda c: c["data"].update(source="speech_commands", path="/nonexistent/sc"), "data.path"),
        (lambda c: c["data"].update(source="speech_commands", url="https://example.invalid/sc.tgz"), "sha256"),
        (lambda c: c["train"].__setitem__("architectures", ["tinyconv; rm -rf /"]), "architectures"),
        (lambda c: c["data"].__setitem__("wanted_words", ["Yes"]), "wanted_words"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, edit, expected):
    proc = snakemake(tmp_path, "-n", configfile=_config_with(tmp_path, edit), check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert expected in out, out[-3000:]
    assert not (tmp_path / "results").exists()


def test_yaml_boolean_words_are_caught(tmp_path):
    """Bare `yes`/`no` in YAML are booleans; the schema must stop that with a message, not train on 'True'."""
    path = tmp_path / "config.yaml"
    path.write_text(TINY.read_text().replace('wanted_words: ["yes", "no"]', "wanted_words: [yes, no]"))
    proc = snakemake(tmp_path, "-n", configfile=path, check=False)
    assert proc.returncode != 0 and "wanted_words" in proc.stderr + proc.stdout


def test_tiny_run_produces_report_and_metrics(tiny_run):
    res = tiny_run / "results"
    assert (res / "report.pdf").read_bytes()[:5] == b"%PDF-"
    html = (res / "report.html").read_text()
    for section in ("1. Preprocessing", "2. Size estimation", "3. Training", "4. Conversion and deployment"):
        assert section in html
    for img in re.findall(r'src="([^"]+\.png)"', html):
        assert (res / img).stat().st_size > 1000, img
    ptq = json.loads((res / "variants/tinyconv/ptq_int8/host.json").read_text())
    assert ptq["tflm"]["inputs"] == ptq["n"] and ptq["tflm"]["predictions_differing"] == 0
    assert ptq["params"] == 16652 and ptq["macs"] == 336000
    assert 0.0 <= ptq["accuracy"] <= 1.0 and ptq["agreement_with_float"] is not None
    prov = ptq["provenance"]
    assert prov["versions"]["tensorflow"] == "2.21.0" and len(prov["config_hash"]) == 16 and prov["git_commit"]
    index = json.loads((res / "data/index.json").read_text())
    assert set(index["counts"]) == {"training", "validation", "testing"}
    assert index["labels"] == ["_silence_", "_unknown_", "yes", "no"]


def _planned_rules(workdir, configfile=TINY):
    """Rules a dry run would execute, from Snakemake's job-stats table."""
    out = snakemake(workdir, "-n", "--quiet", "rules", configfile=configfile).stdout
    rules = set()
    for line in out.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            rules.add(m.group(1))
    return rules


def test_second_run_does_nothing_and_param_change_reruns_only_dependents(tiny_run, tmp_path):
    assert _planned_rules(tiny_run) == set()
    changed = _config_with(tmp_path, lambda c: c["train"].__setitem__("learning_rate", 0.001))
    planned = _planned_rules(tiny_run, configfile=changed)
    assert "train" in planned and "report" in planned
    assert not planned & {"dataset", "prepare", "features"}


def test_every_int8_variant_is_bit_exact_on_tflm_and_on_the_device(tiny_run):
    """Each deployed variant: TFLM ran on every test input, and the device equals TFLM byte for byte."""
    metrics = [json.loads(p.read_text()) for p in (tiny_run / "results" / "variants").glob("*/*/metrics.json")]
    deployed = [m for m in metrics if m.get("device")]
    assert len(deployed) >= 3
    # W4A8 too: its 4-bit weights stay packed, about halving the model's flash against PTQ int8
    by = {m["variant"]: m["device"] for m in deployed}
    assert {"ptq_w4a8", "qat_w4a8"} <= set(by)
    assert by["ptq_w4a8"]["flash"]["model"] < 0.6 * by["ptq_int8"]["flash"]["model"]
    for m in deployed:
        label = f"{m['arch']}/{m['variant']}"
        assert m["tflm"]["inputs"] == m["n"], label
        dev = m["device"]
        assert dev["matches_host"] and dev["outputs_mismatched"] == 0, label
        assert dev["accuracy"] == dev["host_accuracy_same_inputs"], label
        assert dev["instructions"]["median"] > 0 and dev["instructions"]["runs"] >= 10, label
        # the median and range over the first test clips, each clip's count kept
        ins = dev["instructions"]
        assert ins["inputs"] == len(ins["per_input"]) == 10 and ins["clips"]["indices"] == list(range(10)), label
        assert ins["min"] == min(ins["per_input"]) <= ins["median"] <= ins["max"] == max(ins["per_input"]), label
        assert dev["flash"]["total"] == dev["flash"]["model"] + dev["flash"]["code"], label
        assert (tiny_run / "results" / "firmware" / m["arch"] / m["variant"] / "device.log").stat().st_size > 0


def test_every_deployed_variant_is_an_arduino_sketch_that_links_for_the_nrf52840(tiny_run):
    """Each deployed variant's sketch holds its generated model, and its C sources link with the nRF52840's memory
    map as a sketch gets it (rules arduino_sketch and arduino_link)."""
    metrics = [json.loads(p.read_text()) for p in (tiny_run / "results" / "variants").glob("*/*/metrics.json")]
    deployed = [m for m in metrics if m.get("device")]
    assert len(deployed) >= 3
    for m in deployed:
        fw = tiny_run / "results" / "firmware" / m["arch"] / m["variant"]
        sketch = fw / "arduino" / "kws"
        assert (sketch / "kws.ino").is_file() and "TM_LIVE_INTERVAL" in (sketch / "tm_sketch.h").read_text()
        assert (sketch / "model.c").read_bytes() == (fw / "model" / "model.c").read_bytes()
        link = json.loads((fw / "arduino" / "link.json").read_text())
        assert link["flash_origin"] == 0x10000 and 0 < link["flash_image"] <= link["flash_budget"]
        assert 0 < link["ram_reserved"] <= link["ram_budget"] and link["flash_model"] > 0


def test_real_speech_commands_source_by_url(tiny_run, tmp_path):
    """data.source speech_commands with url + sha256: the workflow downloads over (loopback) HTTP, verifies,
    extracts and splits it by the dataset's own lists."""
    import hashlib
    import http.server
    import tarfile
    import threading
    from functools import partial

    dataset = tiny_run / "results" / "data" / "dataset"
    archive = tmp_path / "www" / "speech_commands_v0.02.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted(dataset.rglob("*")):
            if p.is_file() and p.suffix in (".wav", ".txt"):
                tar.add(p, arcname=str(p.relative_to(dataset)))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
        cfg = _config_with(tmp_path, lambda c: c["data"].update(source="speech_commands", url=url, sha256=digest))
        snakemake(tmp_path / "run", "--cores", "1", "results/data/index.json", configfile=cfg)
        bad = _config_with(tmp_path, lambda c: c["data"].update(source="speech_commands", url=url, sha256="0" * 64))
        proc = snakemake(tmp_path / "bad", "--cores", "1", "results/data/index.json", configfile=bad, check=False)
    finally:
        server.shutdown()
    fetched = json.loads((tmp_path / "run" / "results" / "data" / "index.json").read_text())
    original = json.loads((tiny_run / "results" / "data" / "index.json").read_text())
    assert fetched["counts"] == original["counts"]
    assert proc.returncode != 0 and "sha256" in (proc.stdout + proc.stderr).lower()
    assert not (tmp_path / "bad" / "results" / "data" / "index.json").exists()
