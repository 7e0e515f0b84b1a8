"""Start, stop and inspect a real one-node SLURM cluster on this machine (root, no systemd).

The sweep engine's slurm executor (submitit) calls plain ``sbatch``/``squeue``/``sacct``, so
CI and developers need a working Slurm on the very machine they run on. This module brings
one up on Debian 12 (Slurm 22.05) -- about 10 s from an empty state directory, plus the
``apt-get install`` when the packages are missing, about 2 s when already up -- and is
idempotent::

    python -m tools.slurm_cluster up       # install if missing, start, wait for an idle node
    python -m tools.slurm_cluster status   # daemons and sinfo; exit 0 iff the cluster is up
    python -m tools.slurm_cluster down     # stop the daemons this module started
    python -m tools.slurm_cluster down --purge   # ... and delete the state and the configs

(``tools/slurm_cluster.sh`` and ``make slurm-up|slurm-down|slurm-status`` wrap these.)

Daemons, in start order: ``munged`` (as user munge), MariaDB (``--skip-networking``, socket
only, datadir in the state directory), ``slurmdbd`` (then the cluster is registered with
``sacctmgr``), ``slurmctld``, ``slurmd``. Accounting is not optional: submitit reads job states
through ``sacct``; without slurmdbd every state is UNKNOWN and waiting on a cancelled job
never ends.

Each daemon runs in the foreground of its own session (``start_new_session``) with every
inherited file descriptor above 2 closed and its output in a log file, so it never holds the
caller's output pipe open (which would hang CI). Its pid goes to ``<state>/pids/<name>.pid``;
``down`` signals only a pid from there whose ``/proc/<pid>/comm`` still names that daemon
(SIGTERM, then SIGKILL after a timeout); zombies count as dead.

Configuration paths: Slurm's clients read ``/etc/slurm/slurm.conf`` by default and submitit
sets no ``SLURM_CONF``, so the two configs are written to Debian's default paths
(``/etc/slurm/slurm.conf``, ``/etc/slurm/slurmdbd.conf`` mode 600), each marked with a header
line; a config without that header (someone else's) is never overwritten. Everything else --
pid files, logs, spool and state-save folders, the MariaDB datadir and socket -- lives under
one state directory, ``$MOCA_SLURM_STATE_DIR`` (default ``/var/tmp/moca-slurm``).

``$MOCA_SLURM_MAX_ARRAY_SIZE`` (default 1001, Slurm's own default: array indices 0..1000) sets
``MaxArraySize``; tests set it small to exercise the sweep engine's chunking of large arrays.
Calling ``up`` with a configuration different from the running one rewrites slurm.conf and
restarts slurmctld and slurmd (queued jobs survive: their state is saved in the state dir).
Run ``down`` before changing the state directory: daemons of the old one keep the ports.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import fcntl
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, require

STATE_DIR_ENV = "MOCA_SLURM_STATE_DIR"
MAX_ARRAY_SIZE_ENV = "MOCA_SLURM_MAX_ARRAY_SIZE"
TIMEOUT_ENV = "MOCA_SLURM_TIMEOUT"
DEFAULT_STATE_DIR = "/var/tmp/moca-slurm"
DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default; slurm.conf(5) allows 0..4000001 (0: no arrays)
CLUSTER_NAME = "moca"
PARTITION = "debug"
SLURM_CONF = Path("/etc/slurm/slurm.conf")
SLURMDBD_CONF = Path("/etc/slurm/slurmdbd.conf")
CONF_MARKER = "# Written by tools.slurm_cluster"
OLD_MARKERS = ("# Written by harness.slurm_cluster",)  # its name before it moved to tools/ (still ours)
PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client", "slurmdbd", "mariadb-server")
# One executable of each package: a missing one means the package must be installed.
REQUIRED_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "sacct", "sacctmgr",
                     "slurmdbd", "mariadbd", "mariadb-install-db", "mariadb-admin")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
READY_NODE_STATES = ("idle", "mixed", "allocated", "completing")
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


class ClusterError(RuntimeError):
    """The cluster could not be brought up or down; the message says why (with log tails)."""


def _echo(x: int) -> int:
    """Smoke-test job payload: submitit pickles functions by reference, so a job function
    must live in an importable module -- this one (see tests/test_slurm_cluster.py)."""
    return 2 * x


def _sleep(seconds: float) -> float:
    """Smoke-test payload that runs long enough to be cancelled or requeued."""
    time.sleep(seconds)
    return seconds


# ---------------------------------------------------------------------------- config


@dataclass
class ClusterConfig:
    """Where the cluster keeps its state and the knobs tests may change (see module doc)."""

    state_dir: str = DEFAULT_STATE_DIR
    max_array_size: int = DEFAULT_MAX_ARRAY_SIZE
    timeout_s: float = 60.0  # per daemon: how long to wait until it answers

    def check(self, p: str = "slurm") -> None:
        require(os.path.isabs(self.state_dir), f"{p}.state_dir", self.state_dir,
                "an absolute path")
        require(1 <= self.max_array_size <= 4_000_001, f"{p}.max_array_size",
                self.max_array_size, "an integer in 1..4000001 (slurm.conf MaxArraySize)")
        require(self.timeout_s > 0, f"{p}.timeout_s", self.timeout_s, "a number > 0")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "ClusterConfig":
        """Read ``$MOCA_SLURM_STATE_DIR``, ``$MOCA_SLURM_MAX_ARRAY_SIZE``, ``$MOCA_SLURM_TIMEOUT``."""
        env = os.environ if env is None else env
        cfg = cls()
        if env.get(STATE_DIR_ENV):
            cfg.state_dir = env[STATE_DIR_ENV]
        for key, attr, conv in ((MAX_ARRAY_SIZE_ENV, "max_array_size", int),
                                (TIMEOUT_ENV, "timeout_s", float)):
            if env.get(key):
                try:
                    setattr(cfg, attr, conv(env[key]))
                except ValueError:
                    raise ConfigError(key, f"got {env[key]!r}; allowed: a number") from None
        return cfg


class Paths:
    """Every file and folder of one state directory."""

    def __init__(self, state_dir: str | os.PathLike):
        s = self.root = Path(state_dir)
        self.pids, self.log, self.run = s / "pids", s / "log", s / "run"
        self.ctld_state, self.slurmd_spool = s / "slurmctld", s / "slurmd"
        self.munge = s / "munge"  # owned by munge: munged's log and pid file
        self.mysql = s / "mysql"  # owned by mysql: MariaDB's datadir, socket, error log
        self.mysql_data, self.mysql_socket = self.mysql / "data", self.mysql / "mysqld.sock"
        self.lock = s / "lock"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def out_file(self, name: str) -> Path:
        return self.log / f"{name}.out"


# ---------------------------------------------------------------------------- processes


def _log(msg: str) -> None:
    print(f"slurm_cluster: {msg}", flush=True)


def pid_alive(pid: int, comm: str) -> bool:
    """True if ``pid`` is a live (not zombie) process whose comm is ``comm``."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own dead child
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return name == comm[:15] and state not in ("Z", "X")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _run(argv: list[str], timeout: float = 30, check: bool = True,
         env: dict[str, str] = BASE_ENV) -> subprocess.CompletedProcess:
    """Run a short command, capturing its output (never a daemon). The clean environment
    keeps a caller's SLURM_CONF or SLURM_* job variables from pointing it elsewhere."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{' '.join(argv)} did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()}")
    return proc


def _ok(argv: list[str], timeout: float = 10) -> bool:
    try:
        return _run(argv, timeout=timeout, check=False).returncode == 0
    except ClusterError:
        return False


# Harmless start-up noise of Debian's build (its PMIx MPI plugin lacks libpmix).
_LOG_NOISE = re.compile(r"pmix|MPI: Cannot create context")


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = [line for line in path.read_text(errors="replace").splitlines()
                if not _LOG_NOISE.search(line)][-lines:]
    except OSError:
        return ""
    return f"--- last lines of {path}:\n" + "\n".join(text) + "\n"


# ---------------------------------------------------------------------------- daemons


@dataclass
class Daemon:
    """One daemon: how to start it in the foreground, how to tell that it answers."""

    name: str  # also its /proc/<pid>/comm
    argv: list[str]
    ready: Callable[[float], bool]  # ready(started_at): does it answer (since then)?
    logs: tuple[Path, ...]  # the daemon's own log files (shown when it fails)
    user: str | None = None  # run as this user (munged: munge); None = root
    env: dict[str, str] | None = None

    def pid(self, paths: Paths) -> int | None:
        pid = read_pid(paths.pid_file(self.name))
        return pid if pid is not None and pid_alive(pid, self.name) else None

    def start(self, paths: Paths) -> int:
        out = paths.out_file(self.name)
        with open(out, "ab") as log:
            log.write(f"\n=== {time.strftime('%F %T')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                close_fds=True, start_new_session=True, cwd="/",
                env={**BASE_ENV, **(self.env or {})},
                user=self.user, group=self.user, extra_groups=[] if self.user else None,
            )
        paths.pid_file(self.name).write_text(f"{proc.pid}\n")
        return proc.pid

    def failure(self, paths: Paths, what: str) -> ClusterError:
        tails = "".join(_tail(p) for p in (*self.logs, paths.out_file(self.name)))
        return ClusterError(f"{self.name} {what}\n{tails}".rstrip())

    def wait_ready(self, paths: Paths, pid: int, timeout: float, since: float = 0.0) -> None:
        """Wait until it answers; ``since``: its start (wall clock), 0 if started earlier."""
        deadline = time.monotonic() + timeout
        while not self.ready(since):
            if not pid_alive(pid, self.name):
                raise self.failure(paths, f"(pid {pid}) exited during start-up")
            if time.monotonic() > deadline:
                raise self.failure(paths, f"(pid {pid}) did not answer within {timeout:.0f} s")
            time.sleep(0.2)

    def stop(self, paths: Paths, timeout: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; only a pid of ours naming this daemon."""
        pid_file = paths.pid_file(self.name)
        pid = self.pid(paths)
        if pid is None:
            pid_file.unlink(missing_ok=True)
            return False
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while pid_alive(pid, self.name) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not pid_alive(pid, self.name):
                pid_file.unlink(missing_ok=True)
                return True
            if sig == signal.SIGTERM:
                _log(f"{self.name} (pid {pid}) ignored SIGTERM for {timeout:.0f} s; "
                     "sending SIGKILL")
        raise ClusterError(f"{self.name} (pid {pid}) survived SIGKILL")


def _node_state() -> str | None:
    """This node's state as sinfo prints it (idle, mixed, down*, ...); None if unknown."""
    try:
        proc = _run(["sinfo", "-h", "-N", "-n", short_hostname(), "-o", "%T"], timeout=15,
                    check=False)
    except ClusterError:
        return None
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def _slurmd_registered(since: float) -> bool:
    """True once the node is usable and its slurmd registered at or after ``since``: right
    after a restart slurmctld reports the node's saved state before slurmd has answered."""
    if _node_state() not in READY_NODE_STATES:
        return False
    out = _run(["scontrol", "-o", "show", "node", short_hostname()], check=False,
               env={**BASE_ENV, "TZ": "UTC"}).stdout  # times in UTC, whatever our TZ
    match = re.search(r"\bSlurmdStartTime=(\S+)", out)
    try:
        registered = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    except (AttributeError, ValueError):  # no match, or "None" before the first registration
        return False
    return registered >= int(since) - 1


def daemons(paths: Paths) -> list[Daemon]:
    """The five daemons in start order (``down`` stops them in reverse)."""
    mysql_env = {"MYSQL_UNIX_PORT": str(paths.mysql_socket)}  # read by libmariadb (slurmdbd)
    return [
        Daemon("munged", ["munged", "--foreground", f"--log-file={paths.munge}/munged.log",
                          f"--pid-file={paths.munge}/munged.pid"],
               ready=lambda since: _ok(["munge", "-n"]), logs=(paths.munge / "munged.log",),
               user="munge"),
        Daemon("mariadbd", ["mariadbd", "--no-defaults", "--user=mysql", "--skip-networking",
                            f"--datadir={paths.mysql_data}", f"--socket={paths.mysql_socket}",
                            f"--pid-file={paths.mysql}/mariadbd.pid",
                            f"--log-error={paths.mysql}/error.log",
                            # slurmdbd warns below these values (Slurm's accounting docs)
                            "--innodb-buffer-pool-size=128M",
                            "--innodb-lock-wait-timeout=900", "--performance-schema=OFF"],
               ready=lambda since: _ok(["mariadb-admin", "--no-defaults",
                                  f"--socket={paths.mysql_socket}", "-uroot", "ping"]),
               logs=(paths.mysql / "error.log",)),
        Daemon("slurmdbd", ["slurmdbd", "-D"],
               ready=lambda since: _ok(["sacctmgr", "-n", "-P", "show", "cluster"]),
               logs=(paths.log / "slurmdbd.log",), env=mysql_env),
        Daemon("slurmctld", ["slurmctld", "-D"],
               ready=lambda since: "UP" in _run(["scontrol", "ping"], check=False).stdout,
               logs=(paths.log / "slurmctld.log",)),
        Daemon("slurmd", ["slurmd", "-D"],
               ready=_slurmd_registered,
               logs=(paths.log / "slurmd.log", paths.log / "slurmctld.log")),
    ]


# ---------------------------------------------------------------------------- config files


def short_hostname() -> str:
    return socket.gethostname().split(".")[0]


def node_hardware() -> str:
    """The node's hardware line from ``slurmd -C`` (CPUs, sockets, cores, threads, memory).

    RealMemory is rounded down to whole GiB so a small fluctuation never changes slurm.conf
    (which would restart the daemons) nor drains the node for "Low RealMemory"."""
    line = _run(["slurmd", "-C"]).stdout.splitlines()[0]
    fields = [f for f in line.split() if not f.startswith("NodeName=")]
    return " ".join(f"RealMemory={max(1, int(f.split('=')[1]) // 1024 * 1024)}"
                    if f.startswith("RealMemory=") else f for f in fields)


def slurm_conf(cfg: ClusterConfig, paths: Paths, host: str, hardware: str) -> str:
    """slurm.conf; comments say why each non-default line is there."""
    p = paths
    return f"""{CONF_MARKER} (state dir {p.root}); rewritten by `up`.
ClusterName={CLUSTER_NAME}
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job may start again only once its old credential expired (default 120 s).
AuthInfo=cred_expire=10
StateSaveLocation={p.ctld_state}
SlurmdSpoolDir={p.slurmd_spool}
SlurmctldPidFile={p.run}/slurmctld.pid
SlurmdPidFile={p.run}/slurmd.pid
SlurmctldLogFile={p.log}/slurmctld.log
SlurmdLogFile={p.log}/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# No cgroups (containers, gVisor): track processes through /proc, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
PropagateResourceLimits=NONE
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Schedule every 2 s (default 60 s main loop / 30 s backfill), so tests need not wait.
SchedulerParameters=bf_interval=2,sched_interval=2
# Reject at submission a job no node can ever run (else it pends forever).
EnforcePartLimits=ALL
# SIGKILL 5 s after SIGTERM on cancel / time-out (submitit ignores SIGTERM).
KillWait=5
JobRequeue=1
ReturnToService=2
MaxArraySize={cfg.max_array_size}
MaxJobCount={max(10000, 4 * cfg.max_array_size)}
InactiveLimit=0
MinJobAge=300
# sacct (which submitit reads job states from) needs the accounting daemon.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
NodeName={host} NodeAddr=127.0.0.1 {hardware} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def slurmdbd_conf(paths: Paths) -> str:
    """slurmdbd.conf: MariaDB over its socket (``MYSQL_UNIX_PORT``), as its root user."""
    return f"""{CONF_MARKER} (state dir {paths.root}); rewritten by `up`.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile={paths.log}/slurmdbd.log
PidFile={paths.run}/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
"""


def write_conf(path: Path, text: str, mode: int) -> bool:
    """Write ``text`` to ``path`` if it differs; True if it changed. Never overwrites a file
    this module did not write."""
    try:
        old = path.read_text()
    except FileNotFoundError:
        old = None
    if old is not None and not old.startswith((CONF_MARKER, *OLD_MARKERS)):
        raise ClusterError(f"{path} exists and was not written by tools.slurm_cluster; "
                           f"move it away to let this script manage the local cluster")
    if old == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


# ---------------------------------------------------------------------------- install / setup


def ensure_installed() -> None:
    """apt-get install the packages if a binary is missing; package scripts start nothing."""
    missing = [b for b in REQUIRED_BINARIES if shutil.which(b, path=BASE_ENV["PATH"]) is None]
    if not missing:
        return
    _log(f"installing {' '.join(PACKAGES)} (missing: {' '.join(missing)})")
    env = {**BASE_ENV, "DEBIAN_FRONTEND": "noninteractive"}
    created = False
    if not POLICY_RC_D.exists():  # exit 101 = "action forbidden": invoke-rc.d starts nothing
        POLICY_RC_D.write_text("#!/bin/sh\n# temporary, tools.slurm_cluster\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
        created = True
    try:
        _run(["apt-get", "update", "-q"], timeout=300, env=env)
        _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
             timeout=900, env=env)
    finally:
        if created:
            POLICY_RC_D.unlink(missing_ok=True)


def _chown(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def prepare(paths: Paths) -> None:
    """Create the state folders (with the owners the daemons need) and MariaDB's datadir."""
    paths.root.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.root, 0o755)
    for d in (paths.pids, paths.log, paths.run, paths.ctld_state, paths.slurmd_spool):
        d.mkdir(mode=0o755, exist_ok=True)
    for d, user, mode in ((paths.munge, "munge", 0o700), (paths.mysql, "mysql", 0o750),
                          (Path("/run/munge"), "munge", 0o755)):
        d.mkdir(exist_ok=True)
        _chown(d, user)
        os.chmod(d, mode)
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        _run(["mungekey", "--create", f"--keyfile={key}"])
        _chown(key, "munge")
        os.chmod(key, 0o600)
    if not (paths.mysql_data / "mysql").is_dir():
        _log(f"initialising the MariaDB datadir {paths.mysql_data}")
        shutil.rmtree(paths.mysql_data, ignore_errors=True)
        out = _run(["mariadb-install-db", "--no-defaults", "--user=mysql", "--skip-test-db",
                    "--auth-root-authentication-method=socket",
                    f"--datadir={paths.mysql_data}"], timeout=120, check=False)
        if out.returncode != 0:
            raise ClusterError(f"mariadb-install-db failed:\n{out.stdout}{out.stderr}")


def register_cluster() -> None:
    """Register the cluster in slurmdbd once, before slurmctld first connects (this also
    creates the ``root`` account with user root, which root's jobs are accounted to)."""
    names = _run(["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"]).stdout.split()
    if CLUSTER_NAME not in names:
        _run(["sacctmgr", "-i", "add", "cluster", CLUSTER_NAME])
        _log(f"registered cluster {CLUSTER_NAME!r} in slurmdbd")


@contextlib.contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    """Serialise concurrent up/down calls on one state directory."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _require_root() -> None:
    if os.geteuid() != 0:
        raise ClusterError("must run as root (it installs packages and starts system daemons)")


# ---------------------------------------------------------------------------- commands


def up(cfg: ClusterConfig | None = None) -> bool:
    """Bring the cluster up; idempotent. Returns False if it was already up (a no-op)."""
    cfg = cfg or ClusterConfig.from_env()
    cfg.check()
    _require_root()
    paths = Paths(cfg.state_dir)
    t0 = time.monotonic()
    with _locked(paths):
        ensure_installed()
        prepare(paths)
        host = short_hostname()
        conf_changed = write_conf(SLURM_CONF, slurm_conf(cfg, paths, host, node_hardware()),
                                  0o644)
        write_conf(SLURMDBD_CONF, slurmdbd_conf(paths), 0o600)
        started = False
        for d in daemons(paths):
            pid = d.pid(paths)
            if pid is not None and conf_changed and d.name in ("slurmctld", "slurmd"):
                _log(f"slurm.conf changed: restarting {d.name} (pid {pid})")
                d.stop(paths)
                pid = None
            if pid is None:
                t1, since = time.monotonic(), time.time()
                pid, started = d.start(paths), True
                d.wait_ready(paths, pid, cfg.timeout_s, since)
                _log(f"started {d.name} (pid {pid}, answering after "
                     f"{time.monotonic() - t1:.1f} s)")
            else:
                d.wait_ready(paths, pid, cfg.timeout_s)
            if d.name == "slurmdbd":
                register_cluster()
    if started:
        _log(f"cluster {CLUSTER_NAME!r} is up after {time.monotonic() - t0:.1f} s: node {host} "
             f"{_node_state()}, partition {PARTITION}, MaxArraySize={cfg.max_array_size}, "
             f"state {paths.root}")
    else:
        _log(f"cluster {CLUSTER_NAME!r} is already up (nothing to do)")
    return started


def _cancel_all_jobs(paths: Paths, timeout: float = 30.0) -> None:
    """scancel every queued or running job and wait until the queue is empty."""
    ctld = next(d for d in daemons(paths) if d.name == "slurmctld")
    if ctld.pid(paths) is None:
        return
    ids = _run(["squeue", "-h", "-o", "%A"], check=False).stdout.split()
    if not ids:
        return
    _log(f"cancelling {len(ids)} job(s)")
    _run(["scancel", *ids], check=False)
    deadline = time.monotonic() + timeout
    while _run(["squeue", "-h", "-o", "%A"], check=False).stdout.split():
        if time.monotonic() > deadline:
            _log(f"jobs still queued after {timeout:.0f} s; stopping the daemons anyway")
            return
        time.sleep(0.5)


def down(cfg: ClusterConfig | None = None, purge: bool = False) -> bool:
    """Stop the daemons this module started (reverse order). Returns False if none ran.

    Running job steps (slurmstepd) are left alone: the next ``up`` re-adopts them from the
    saved state. With ``purge``, all jobs are cancelled first, then the state directory and
    the two config files are deleted."""
    cfg = cfg or ClusterConfig.from_env()
    cfg.check()
    _require_root()
    paths = Paths(cfg.state_dir)
    if not paths.root.exists() and not purge:
        _log("cluster is not running (no state directory)")
        return False
    with _locked(paths):
        if purge:
            _cancel_all_jobs(paths)
        stopped = [d.name for d in reversed(daemons(paths)) if d.stop(paths)]
        if purge:
            for conf in (SLURM_CONF, SLURMDBD_CONF):
                with contextlib.suppress(FileNotFoundError):
                    if conf.read_text().startswith((CONF_MARKER, *OLD_MARKERS)):
                        conf.unlink()
            for child in paths.root.iterdir():  # keep the (locked) lock file till last
                if child != paths.lock:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
    if purge:
        paths.lock.unlink(missing_ok=True)
        paths.root.rmdir()
    _log(f"stopped {', '.join(stopped)}" if stopped else "cluster is not running (nothing to do)")
    if purge:
        _log(f"deleted {paths.root}, {SLURM_CONF} and {SLURMDBD_CONF}")
    return bool(stopped)


def status(cfg: ClusterConfig | None = None) -> bool:
    """Print each daemon's state and ``sinfo``; True iff every daemon runs and the node is up."""
    cfg = cfg or ClusterConfig.from_env()
    cfg.check()
    paths = Paths(cfg.state_dir)
    all_up = True
    for d in daemons(paths):
        pid = d.pid(paths)
        all_up &= pid is not None
        print(f"{d.name:10s} {'running, pid ' + str(pid) if pid else 'stopped'}")
    node = _node_state() if all_up else None
    all_up &= node in READY_NODE_STATES
    if shutil.which("sinfo", path=BASE_ENV["PATH"]) and SLURM_CONF.exists():
        with contextlib.suppress(ClusterError):
            out = _run(["sinfo"], check=False, timeout=15)
            print((out.stdout + out.stderr).rstrip())
    print(f"cluster {CLUSTER_NAME!r}: {'up' if all_up else 'not up'} (state dir {paths.root})")
    return all_up


def max_array_size() -> int:
    """The running controller's MaxArraySize (largest array index + 1), from scontrol."""
    out = _run(["scontrol", "show", "config"]).stdout
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    if match is None:
        raise ClusterError("scontrol show config printed no MaxArraySize")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slurm_cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", help=f"state directory (${STATE_DIR_ENV}, "
                        f"default {DEFAULT_STATE_DIR})")
    parser.add_argument("--max-array-size", type=int, help=f"slurm.conf MaxArraySize "
                        f"(${MAX_ARRAY_SIZE_ENV}, default {DEFAULT_MAX_ARRAY_SIZE})")
    parser.add_argument("--timeout", type=float, help=f"seconds to wait for each daemon "
                        f"(${TIMEOUT_ENV}, default 60)")
    parser.add_argument("--purge", action="store_true",
                        help="down: also delete the state directory and the configs")
    args = parser.parse_args(argv)
    try:
        cfg = ClusterConfig.from_env()
        if args.state_dir:
            cfg.state_dir = args.state_dir
        if args.max_array_size is not None:
            cfg.max_array_size = args.max_array_size
        if args.timeout is not None:
            cfg.timeout_s = args.timeout
        if args.purge and args.command != "down":
            raise ConfigError("--purge", "only valid with `down`")
        if args.command == "up":
            up(cfg)
        elif args.command == "down":
            down(cfg, purge=args.purge)
        else:
            return 0 if status(cfg) else 1
    except ConfigError as err:
        print(f"slurm_cluster: {err}", file=sys.stderr)
        return 2
    except ClusterError as err:
        print(f"slurm_cluster: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
