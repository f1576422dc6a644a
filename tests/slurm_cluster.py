"""A throw-away one-node SLURM cluster for integration tests.

``SlurmCluster`` starts a private ``munged``, ``slurmctld`` and ``slurmd``
(all as root, in the foreground, as children of the test process) with every
state/spool/log/socket file inside one temporary directory, and stops exactly
the processes it started (by PID) in ``stop()``.

Why the mount namespace: the snakemake-executor-plugin-slurm job-step executor
strips all ``SLURM_*`` variables before its inner ``srun``, so a ``SLURM_CONF``
pointing to a temp config is invisible there and ``srun`` dies with
"fetch_config: DNS SRV lookup failed".  The configuration therefore has to be
at ``/etc/slurm/slurm.conf``.  To leave the host's ``/etc`` untouched every
process that talks to the cluster (the daemons, and snakemake/sbatch/squeue
started via :meth:`SlurmCluster.wrap`) runs in its own private mount
namespace (``unshare -m``) in which a temp directory is bind-mounted over
``/etc/slurm``.  Jobs inherit slurmd's namespace, so ``srun`` inside a job
sees the same file.  If ``unshare -m`` is not permitted, the cluster falls
back to writing ``/etc/slurm/slurm.conf`` and restores the original in
``stop()``.

The cluster uses its own munge socket (``AuthInfo=socket=...``) and free TCP
ports on 127.0.0.1, so it does not collide with a munged or a SLURM that
someone else runs on the same machine.

Usable on its own for debugging::

    python tests/slurm_cluster.py   # starts, prints sinfo, submits a job, stops
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REQUIRED_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "srun", "sinfo")
ETC_SLURM = Path("/etc/slurm")
PARTITION = "tbmtest"
CLUSTER_NAME = "tbmtest"
NODE = "localhost"


def unavailable_reason() -> str | None:
    """Why a local SLURM cannot be started here, or None if it can."""
    if os.name != "posix" or os.geteuid() != 0:
        return "a private SLURM cluster needs root (munged/slurmd run as root)"
    missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
    if missing:
        return (
            "SLURM/munge not installed (missing: " + ", ".join(missing) + "); "
            "run ./tbm test as root, which installs slurm-wlm and munge"
        )
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 2048


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _can_unshare_mounts() -> bool:
    if shutil.which("unshare") is None or not ETC_SLURM.is_dir():
        return False
    try:
        res = subprocess.run(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount --bind {shlex.quote(str(ETC_SLURM))} {shlex.quote(str(ETC_SLURM))}",
            ],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0


class SlurmError(RuntimeError):
    pass


class SlurmCluster:
    """One-node SLURM (partition ``tbmtest``) living in ``root``."""

    partition = PARTITION
    node = NODE

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        cpus: int | None = None,
        real_memory_mb: int | None = None,
        min_job_age: int = 300,
        use_namespace: bool | None = None,
    ):
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="tbm-slurm-")).resolve()
        self.cpus = cpus or os.cpu_count() or 1
        # never more than the machine has, or slurmctld drains the node
        self.real_memory_mb = real_memory_mb or max(512, int(_mem_total_mb() * 0.8))
        self.min_job_age = min_job_age
        self.use_namespace = _can_unshare_mounts() if use_namespace is None else use_namespace
        self.etc_dir = self.root / "etc_slurm"
        self.conf = self.etc_dir / "slurm.conf"
        self.munge_dir = self.root / "munge"
        self.munge_socket = self.munge_dir / "munge.socket"
        self.log_dir = self.root / "log"
        self._procs: dict[str, subprocess.Popen] = {}
        self._etc_backup: Path | None = None
        self._etc_written = False
        self._etc_existed = False
        self._slurmd_mnt_ns: str | None = None
        self.started = False

    # ------------------------------------------------------------------ env
    def env(self, extra: dict | None = None) -> dict:
        """Environment for client commands (no stray SLURM_* of an outer job)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not (k.startswith("SLURM_") or k.startswith("SBATCH_") or k.startswith("SRUN_"))
        }
        env.update(extra or {})
        return env

    def wrap(self, argv: list[str]) -> list[str]:
        """Prefix ``argv`` so that it sees this cluster's /etc/slurm."""
        argv = [str(a) for a in argv]
        if not self.use_namespace:
            return argv
        script = 'mount --bind "$1" /etc/slurm || exit 97; shift; exec "$@"'
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(self.etc_dir), *argv]

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("env", self.env())
        res = subprocess.run(self.wrap(argv), capture_output=True, text=True, timeout=timeout, **kw)
        if check and res.returncode != 0:
            raise SlurmError(f"{' '.join(map(str, argv))} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    # -------------------------------------------------------------- config
    def _write_config(self) -> None:
        for d in (self.etc_dir, self.munge_dir, self.log_dir, self.root / "state", self.root / "spool"):
            d.mkdir(parents=True, exist_ok=True)
        # keep whatever the package ships next to slurm.conf (plugstack.conf ...)
        if ETC_SLURM.is_dir():
            for item in ETC_SLURM.iterdir():
                if item.name == "slurm.conf":
                    continue
                dst = self.etc_dir / item.name
                if item.is_dir():
                    shutil.copytree(item, dst, dirs_exist_ok=True)
                elif item.is_file():
                    shutil.copy2(item, dst)
        r = self.root
        self.ctld_port = _free_port()
        self.slurmd_port = _free_port()
        while self.slurmd_port == self.ctld_port:
            self.slurmd_port = _free_port()
        self.conf.write_text(f"""\
# generated by tests/slurm_cluster.py -- private test cluster
ClusterName={CLUSTER_NAME}
SlurmctldHost={NODE}
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={self.log_dir}/slurmctld.log
SlurmdLogFile={self.log_dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge={self.min_job_age}
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.real_memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")
        self.conf.chmod(0o644)

    def _install_etc_fallback(self) -> None:
        """No mount namespaces: put the config at /etc/slurm, restore in stop()."""
        ETC_SLURM.mkdir(parents=True, exist_ok=True)
        target = ETC_SLURM / "slurm.conf"
        self._etc_existed = target.exists()
        if self._etc_existed:
            self._etc_backup = self.root / "slurm.conf.host-backup"
            shutil.copy2(target, self._etc_backup)
        shutil.copy2(self.conf, target)
        self._etc_written = True

    def _restore_etc(self) -> None:
        if not self._etc_written:
            return
        target = ETC_SLURM / "slurm.conf"
        if self._etc_backup is not None and self._etc_backup.exists():
            shutil.copy2(self._etc_backup, target)
        elif not self._etc_existed:
            target.unlink(missing_ok=True)
        self._etc_written = False

    # -------------------------------------------------------------- daemons
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.out", "wb")
        proc = subprocess.Popen(
            self.wrap(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env(),
            start_new_session=True,
        )
        log.close()
        self._procs[name] = proc
        return proc

    def _start_munge(self) -> None:
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.munge_dir.chmod(0o700)
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={self.munge_dir / 'munged.pid'}",
                f"--log-file={self.log_dir / 'munged.log'}",
                f"--seed-file={self.munge_dir / 'munged.seed'}",
            ],
        )
        self._wait(lambda: self.munge_socket.exists(), 20, "munged socket")

    def _wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self._procs.items():
                if p.poll() is not None:
                    raise SlurmError(
                        f"{name} exited with {p.returncode} while waiting for {what}\n{self.diagnostics()}"
                    )
            try:
                if predicate():
                    return
            except (OSError, subprocess.SubprocessError, SlurmError):
                pass
            time.sleep(0.5)
        raise SlurmError(f"timed out after {timeout}s waiting for {what}\n{self.diagnostics()}")

    def _node_state(self) -> str:
        res = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False, timeout=15)
        return res.stdout.strip().lower() if res.returncode == 0 else ""

    def start(self, timeout: float = 60) -> "SlurmCluster":
        try:
            self._write_config()
            if not self.use_namespace:
                self._install_etc_fallback()
            self._start_munge()
            self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", "/etc/slurm/slurm.conf"])
            self._wait(
                lambda: self.run(["scontrol", "ping"], check=False, timeout=10).stdout.count("UP") > 0,
                timeout,
                "slurmctld to answer 'scontrol ping'",
            )
            slurmd = self._spawn("slurmd", ["slurmd", "-D", "-N", NODE, "-f", "/etc/slurm/slurm.conf"])
            if self.use_namespace:
                # after `unshare` has exec'd into slurmd the namespace differs from ours
                own_ns = os.readlink("/proc/self/ns/mnt")
                self._wait(
                    lambda: os.readlink(f"/proc/{slurmd.pid}/ns/mnt") != own_ns, 10, "slurmd's private mount namespace"
                )
                self._slurmd_mnt_ns = os.readlink(f"/proc/{slurmd.pid}/ns/mnt")
            self._wait(
                lambda: self._node_state().startswith(("idle", "mix", "alloc")), timeout, f"node {NODE} to become idle"
            )
            self.started = True
        except BaseException:
            self.stop()
            raise
        return self

    # ------------------------------------------------------------ queries
    def job_info(self, job_id: str | int) -> dict[str, str]:
        """``scontrol show job -o`` as a dict (JobState, JobName, Partition, ...)."""
        res = self.run(["scontrol", "show", "job", "-o", str(job_id)], timeout=15)
        info: dict[str, str] = {}
        for tok in res.stdout.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                info.setdefault(k, v)
        return info

    def queued_jobs(self) -> list[str]:
        res = self.run(["squeue", "-h", "-o", "%i"], check=False, timeout=15)
        return res.stdout.split() if res.returncode == 0 else []

    def diagnostics(self, tail: int = 40) -> str:
        out = [f"SLURM test cluster in {self.root} (namespace={self.use_namespace})"]
        for f in sorted(self.log_dir.glob("*")) if self.log_dir.exists() else []:
            try:
                lines = f.read_text(errors="replace").splitlines()[-tail:]
            except OSError:
                continue
            out.append(f"--- {f.name} (last {len(lines)} lines)")
            out.extend(lines)
        return "\n".join(out)

    # ---------------------------------------------------------------- stop
    def stop(self) -> None:
        """Cancel jobs, stop the daemons we started (by PID), undo /etc changes."""
        try:
            if self._procs.get("slurmctld") and self._procs["slurmctld"].poll() is None:
                jobs = self.queued_jobs()
                if jobs:
                    self.run(["scancel", *jobs], check=False, timeout=15)
                    deadline = time.monotonic() + 15
                    while self.queued_jobs() and time.monotonic() < deadline:
                        # completing/cancelled jobs stay listed until MinJobAge;
                        # only wait for those still running
                        res = self.run(["squeue", "-h", "-t", "R,CG,PD", "-o", "%i"], check=False, timeout=15)
                        if not res.stdout.split():
                            break
                        time.sleep(0.5)
        except (OSError, subprocess.SubprocessError, SlurmError):
            pass
        finally:
            # slurmstepd daemonizes (own session, parent 1), so find it and the
            # job processes under it before slurmd is gone
            leftovers = self._leftover_pids()
            for name in ("slurmd", "slurmctld", "munged"):
                proc = self._procs.pop(name, None)
                if proc is not None:
                    self._terminate(proc)
            self._kill_pids(leftovers | self._leftover_pids())
            self._restore_etc()
            self.started = False

    def _leftover_pids(self) -> set[int]:
        """PIDs of slurmstepd/job processes that belong to *this* cluster.

        A process is ours if it lives in the private mount namespace of our
        slurmd (namespace mode), or holds our slurmd.log open (slurmstepd
        inherits that fd), or descends from such a process.
        """
        me = os.getpid()
        slurmd_log = str(self.log_dir / "slurmd.log")
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    parents[pid] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
        seeds: set[int] = set()
        for pid in parents:
            if pid == me:
                continue
            try:
                if self._slurmd_mnt_ns and os.readlink(f"/proc/{pid}/ns/mnt") == self._slurmd_mnt_ns:
                    seeds.add(pid)
                    continue
                fd_dir = f"/proc/{pid}/fd"
                if any(os.readlink(f"{fd_dir}/{fd}") == slurmd_log for fd in os.listdir(fd_dir)):
                    seeds.add(pid)
            except OSError:
                continue
        ours = set(seeds)
        changed = True
        while changed:
            changed = False
            for pid, ppid in parents.items():
                if ppid in ours and pid not in ours and pid != me:
                    ours.add(pid)
                    changed = True
        daemons = {p.pid for p in self._procs.values()}
        return ours - daemons - {me}

    @staticmethod
    def _kill_pids(pids: set[int], grace: float = 5) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = set()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                    alive.add(pid)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + grace
            while alive and time.monotonic() < deadline:
                alive = {p for p in alive if Path(f"/proc/{p}").exists() and not _is_zombie(p)}
                time.sleep(0.2)
            if not alive:
                return
            pids = alive

    @staticmethod
    def _terminate(proc: subprocess.Popen, timeout: float = 15) -> None:
        if proc.poll() is not None:
            return
        # the daemon leads its own session (start_new_session=True): signal
        # that process group, which is ours by construction (pgid == pid)
        # and also holds slurmstepd/job leftovers that stayed in it
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # leftovers in the group once the leader is gone
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def cleanup(self) -> None:
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


if __name__ == "__main__":  # manual smoke test
    reason = unavailable_reason()
    if reason:
        raise SystemExit(reason)
    with SlurmCluster() as c:
        print(c.run(["sinfo"]).stdout)
        out = c.run(
            ["sbatch", "--parsable", "-p", c.partition, "--wrap", "srun -n1 sh -c 'echo step $SLURM_JOB_ID'"]
        ).stdout.strip()
        print("submitted", out)
        for _ in range(60):
            state = c.job_info(out).get("JobState")
            if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
                break
            time.sleep(0.5)
        print("state", state)
        print(Path(f"slurm-{out}.out").read_text() if Path(f"slurm-{out}.out").exists() else "")
