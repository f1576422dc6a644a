"""Integration test: the workflow runs unchanged on SLURM (issue 6).

A session-scoped fixture starts a private one-node SLURM (munged + slurmctld +
slurmd, see tests/slurm_cluster.py).  Each workflow under test is run twice
into separate temp directories:

* locally:   snakemake --workflow-profile profiles/local
* on SLURM:  snakemake --workflow-profile profiles/slurm  (SLURM_PARTITION set
             to the test partition, under `timeout -k`)

and the test asserts that every non-local job really was a SLURM job (SLURM
job ids in the snakemake log, `scontrol show job` says COMPLETED on the test
partition, one SLURM log per job) and that the metrics files of both runs are
identical.

The workflow is a parameter: ``toy`` is a 3-job Snakefile written into the
temp dir (its rules record $SLURM_JOB_ID); ``real`` is the project's Snakefile
with tests/configs/tiny.yaml.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import SlurmCluster, unavailable_reason  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "profiles" / "slurm"
LOCAL_PROFILE = REPO / "profiles" / "local"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

# Fast status polling for the test (the profile's own values are for real
# clusters); the rest of profiles/slurm is used unchanged.
FAST_STATUS = [
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
    "--slurm-keep-successful-logs",
]

SUBMITTED_RE = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")


# --------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running one-node SLURM cluster; daemons are always stopped afterwards."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def slurm_partition(slurm_cluster) -> str:
    return slurm_cluster.partition


# ------------------------------------------------------- workflows under test
TOY_SNAKEFILE = r"""
SAMPLES = ["3", "5"]

localrules: all

rule all:
    input: "results/metrics.json"

rule count:
    output: "data/{n}.txt"
    log: "logs/count_{n}.log"
    shell:
        'echo "SLURM_JOB_ID=${{SLURM_JOB_ID:-none}} PARTITION=${{SLURM_JOB_PARTITION:-none}}" > {log}; '
        'seq 1 {wildcards.n} > {output}'

rule metrics:
    input: expand("data/{n}.txt", n=SAMPLES)
    output: "results/metrics.json"
    log: "logs/metrics.log"
    shell:
        'echo "SLURM_JOB_ID=${{SLURM_JOB_ID:-none}} PARTITION=${{SLURM_JOB_PARTITION:-none}}" > {log}; '
        'cat {input} | awk \'{{s += $1; n += 1}} END {{printf "{{\\"n\\": %d, \\"sum\\": %d}}\\n", n, s}}\' > {output}'
"""


@dataclass
class WorkflowUnderTest:
    name: str
    snakefile: Path
    args: list[str] = field(default_factory=list)
    metrics_globs: tuple[str, ...] = ("results/**/*metrics*",)
    # files whose content must contain SLURM_JOB_ID=<id> (rules record it)
    jobid_logs: tuple[str, ...] = ()
    # number of SLURM jobs the run must submit (None: at least one)
    expected_jobs: int | None = None
    timeout: int = 240


def toy_workflow(tmp_path: Path) -> WorkflowUnderTest:
    snakefile = tmp_path / "toy" / "Snakefile"
    snakefile.parent.mkdir(parents=True, exist_ok=True)
    snakefile.write_text(TOY_SNAKEFILE)
    return WorkflowUnderTest(
        name="toy",
        snakefile=snakefile,
        metrics_globs=("results/metrics.json",),
        jobid_logs=("logs/count_3.log", "logs/count_5.log", "logs/metrics.log"),
        expected_jobs=3,  # count x2 + metrics; `all` is a local rule
        timeout=180,
    )


# The real workflow on a 2-CPU test node: tests/configs/tiny.yaml minus the
# quantization/pruning grids (~15 instead of ~70 jobs; every other stage,
# including the QEMU firmware run, is kept). TBM_SLURM_TEST_FULL=1 runs the
# whole tiny config.
REAL_OVERRIDES = {"quantization": {"enabled": False}, "pruning": {"enabled": False}}


def real_workflow(tmp_path: Path) -> WorkflowUnderTest:
    snakefile = REPO / "Snakefile"
    tiny = REPO / "tests" / "configs" / "tiny.yaml"
    if not snakefile.exists():
        pytest.skip(f"{snakefile} does not exist yet")
    if not tiny.exists():
        pytest.skip(f"{tiny} does not exist yet")
    configfiles = [str(tiny)]
    if os.environ.get("TBM_SLURM_TEST_FULL") != "1":
        overrides = tmp_path / "slurm_test_overrides.yaml"
        overrides.write_text(json.dumps(REAL_OVERRIDES))  # JSON is YAML
        configfiles.append(str(overrides))
    return WorkflowUnderTest(
        name="real",
        snakefile=snakefile,
        args=["--configfile", *configfiles],
        # host metrics of every variant, on-device metrics (qemu), model sizes,
        # the report's summary table and the raw test-set predictions
        metrics_globs=(
            "results/variants/*/*/host.json",
            "results/variants/*/*/predictions.npy",
            "results/firmware/*/*/device.json",
            "results/models/*/size.json",
            "results/summary.csv",
        ),
        timeout=1200,
    )


WORKFLOWS = {"toy": toy_workflow, "real": real_workflow}


# ----------------------------------------------------------------- helpers
def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SNAKEMAKE_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def _snakemake_cmd(wf: WorkflowUnderTest, workdir: Path, profile: Path, *extra) -> list[str]:
    return [
        *SNAKEMAKE,
        "--snakefile",
        str(wf.snakefile),
        "--directory",
        str(workdir),
        "--workflow-profile",
        str(profile),
        *wf.args,
        *extra,
    ]


def _run(cmd, *, env, timeout, log: Path) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own session; on timeout/interrupt kill that whole group."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout + 60)
    except BaseException:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)  # our own group: pgid == pid of our child
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # members that outlived the leader (e.g. snakemake under a killed `timeout`)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise
    res = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    res.elapsed = time.monotonic() - t0  # type: ignore[attr-defined]
    log.write_text(
        f"$ {' '.join(map(str, cmd))}\n# rc={res.returncode} "
        f"elapsed={res.elapsed:.1f}s\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
    )
    return res


def _metrics(workdir: Path, globs) -> dict[str, Path]:
    found = {}
    for pattern in globs:
        for p in workdir.glob(pattern):
            if p.is_file():
                found[str(p.relative_to(workdir))] = p
    return found


# Wall-clock measurements legitimately differ between two runs; everything
# else in a metrics file (accuracy, sizes, op counts, ...) must not.
TIMING_KEY = re.compile(
    r"latency|tim(e|ing)|duration|elapsed|seconds|(^|_)(ms|us|s)$|timestamp|date|host(name)?$|per_sec|throughput|cycles",
    re.IGNORECASE,
)


def _strip_timing(x):
    if isinstance(x, dict):
        return {k: _strip_timing(v) for k, v in x.items() if not TIMING_KEY.search(str(k))}
    if isinstance(x, list):
        return [_strip_timing(v) for v in x]
    return x


def _load_comparable(path: Path):
    if path.suffix == ".json":
        return _strip_timing(json.loads(path.read_text()))
    if path.suffix in (".csv", ".tsv"):
        import csv

        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ","))
        return [_strip_timing(_numbers(r)) for r in rows]
    return path.read_bytes()


def _numbers(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


def _same_content(a: Path, b: Path) -> bool:
    if a.read_bytes() == b.read_bytes():
        return True
    return _close(_load_comparable(a), _load_comparable(b))


def _close(x, y) -> bool:
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_close(a, b) for a, b in zip(x, y, strict=False))
    if isinstance(x, float) or isinstance(y, float):
        return (
            isinstance(x, (int, float))
            and isinstance(y, (int, float))
            and math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
        )
    return x == y


# -------------------------------------------------------------------- test
@pytest.mark.slow
@pytest.mark.parametrize("workflow", ["toy", "real"])
def test_workflow_on_slurm_matches_local(workflow, slurm_cluster, slurm_partition, tmp_path):
    wf = WORKFLOWS[workflow](tmp_path)
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local_dir.mkdir()
    slurm_dir.mkdir()

    # 1) reference: plain local run
    local = _run(
        _snakemake_cmd(wf, local_dir, LOCAL_PROFILE), env=_clean_env(), timeout=wf.timeout, log=tmp_path / "local.log"
    )
    assert local.returncode == 0, f"local run failed, see {tmp_path / 'local.log'}\n{local.stderr[-4000:]}"

    # 2) the same workflow through the SLURM profile; `timeout -k` because a
    #    snakemake stuck in status polling ignores SIGTERM
    cmd = ["timeout", "-k", "10", str(wf.timeout), *_snakemake_cmd(wf, slurm_dir, SLURM_PROFILE, *FAST_STATUS)]
    slurm = _run(
        slurm_cluster.wrap(cmd),
        env=_clean_env(SLURM_PARTITION=slurm_partition),
        timeout=wf.timeout,
        log=tmp_path / "slurm.log",
    )
    print(f"[{wf.name}] local run {local.elapsed:.1f}s, SLURM run {slurm.elapsed:.1f}s")
    assert slurm.returncode == 0, (
        f"SLURM run failed (rc={slurm.returncode}{', timed out' if slurm.returncode in (124, 137) else ''}),"
        f" see {tmp_path / 'slurm.log'}\n{slurm.stderr[-6000:]}\n{slurm_cluster.diagnostics()}"
    )

    # 3) every submitted job is a real, completed SLURM job on our partition
    log_text = slurm.stdout + slurm.stderr
    submitted = dict(SUBMITTED_RE.findall(log_text))  # snakemake job id -> SLURM job id
    assert submitted, f"no job was submitted to SLURM:\n{log_text[-4000:]}"
    assert len(set(submitted.values())) == len(submitted)
    if wf.expected_jobs is not None:
        assert len(submitted) == wf.expected_jobs, submitted
    assert "Falling back to 'sacct'" not in log_text
    job_names = set()
    for slurm_id in submitted.values():
        info = slurm_cluster.job_info(slurm_id)
        assert info.get("JobState") == "COMPLETED", (slurm_id, info)
        assert info.get("Partition") == slurm_partition, (slurm_id, info)
        assert info.get("NodeList") == slurm_cluster.node, (slurm_id, info)
        job_names.add(info.get("JobName"))
    assert len(job_names) == 1, f"all jobs of one run share the run-uuid job name: {job_names}"
    slurm_logs = sorted((slurm_dir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.stem for p in slurm_logs} >= set(submitted.values()), slurm_logs

    # rules that record $SLURM_JOB_ID saw one of the submitted jobs
    for rel in wf.jobid_logs:
        line = (slurm_dir / rel).read_text()
        m = re.search(r"SLURM_JOB_ID=(\S+) PARTITION=(\S+)", line)
        assert m and m.group(1) in submitted.values(), (rel, line, submitted)
        assert m.group(2) == slurm_partition, (rel, line)
        assert "SLURM_JOB_ID=none" in (local_dir / rel).read_text(), "local run must not be a SLURM job"

    # 4) same results as the local run
    local_metrics = _metrics(local_dir, wf.metrics_globs)
    slurm_metrics = _metrics(slurm_dir, wf.metrics_globs)
    assert local_metrics, f"no metrics files matching {wf.metrics_globs} in {local_dir}"
    assert sorted(local_metrics) == sorted(slurm_metrics)
    differing = [rel for rel in local_metrics if not _same_content(local_metrics[rel], slurm_metrics[rel])]
    assert not differing, f"metrics differ between local and SLURM runs: {differing}"
