"""The local one-node SLURM cluster (tools/slurm_cluster.py, tools/slurm_cluster.sh).

Tests marked ``slurm`` bring the cluster up (idempotent) and talk to the real daemons; run
them with ``python -m pytest tests/test_slurm_cluster.py -m slurm -q`` as root. They check
what the sweep engine relies on: submitit job arrays run and ``sacct`` reports COMPLETED, a
``scancel``-ed job is seen as CANCELLED by submitit without hanging, ``scontrol requeue``
restarts a job within seconds (``AuthInfo=cred_expire=10``), a job no node can run is
rejected at submission (``EnforcePartLimits=ALL``), and ``$MOCA_SLURM_MAX_ARRAY_SIZE``
changes the running MaxArraySize. The unmarked tests check the pid-file safety of ``down``
and config validation without any daemon.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import slurm_cluster as sc
from harness.config import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "slurm_cluster.sh"


def _script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable, **(env or {})})


def _wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def _sacct_states(job_id: str) -> dict[str, str]:
    """JobID -> State (first word: 'CANCELLED by 0' -> 'CANCELLED') of a job or array."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "JobID,State"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return {jid: state.split()[0] for jid, state in
            (line.split("|") for line in out.splitlines() if line)}


def _sbatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", *args],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def cluster():
    up = _script("up")
    assert up.returncode == 0, f"slurm_cluster.sh up failed:\n{up.stdout}{up.stderr}"
    return up


@pytest.fixture
def executor(cluster, tmp_path):
    submitit = pytest.importorskip("submitit")
    ex = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="slurm")
    ex.update_parameters(slurm_partition=sc.PARTITION, timeout_min=10, cpus_per_task=1)
    return ex


# ---------------------------------------------------------------------------- real cluster


@pytest.mark.slurm
def test_second_up_is_a_no_op_and_status_reports_up(cluster):
    again = _script("up")
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stdout and "started" not in again.stdout
    status = _script("status")
    assert status.returncode == 0, status.stdout + status.stderr
    for name in ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd"):
        assert f"{name}" in status.stdout and "stopped" not in status.stdout
    assert sc.PARTITION in status.stdout


@pytest.mark.slurm
def test_map_array_completes_and_sacct_says_completed(executor):
    jobs = executor.map_array(sc._echo, [1, 2, 3])
    try:
        _wait_for(lambda: all(j.done() for j in jobs), 120, "the array to finish")
        assert [j.result() for j in jobs] == [2, 4, 6]
        array_id = jobs[0].job_id.split("_")[0]
        expected = {f"{array_id}_{i}" for i in range(3)}
        # sacct lags the controller by a few seconds for some array tasks
        states = _wait_for(lambda: (s := _sacct_states(array_id)).keys() == expected
                           and set(s.values()) == {"COMPLETED"} and s, 60,
                           f"sacct to report {sorted(expected)} COMPLETED")
        assert set(states.values()) == {"COMPLETED"}
        # job.state is cached (refreshed every max(2 s, age / 2)); get_info() forces sacct
        assert [j.get_info()["State"] for j in jobs] == ["COMPLETED"] * 3
        assert [j.state for j in jobs] == ["COMPLETED"] * 3
    finally:
        subprocess.run(["scancel", *[j.job_id for j in jobs]], capture_output=True)


@pytest.mark.slurm
def test_scancel_is_seen_as_cancelled_by_submitit(executor):
    # (job.result() would raise UncompletedJobError, but only after submitit's 15 s wait
    # for a result file that may lag on NFS; the state is what the sweep engine reads.)
    job = executor.submit(sc._sleep, 600)
    try:
        _wait_for(lambda: job.state == "RUNNING", 60, f"job {job.job_id} to start")
        subprocess.run(["scancel", job.job_id], check=True, timeout=30)
        _wait_for(job.done, 60, f"submitit to see job {job.job_id} done after scancel")
        assert job.state.startswith("CANCELLED")
        assert not job.paths.result_pickle.exists()
        assert _sacct_states(job.job_id) == {job.job_id: "CANCELLED"}
    finally:
        subprocess.run(["scancel", job.job_id], capture_output=True)


@pytest.mark.slurm
def test_requeued_job_restarts_within_a_minute(cluster, tmp_path):
    """With Slurm's default cred_expire (120 s) the restart would take over two minutes."""
    marks = tmp_path / "restarts.txt"
    sub = _sbatch("--wrap", f"echo run${{SLURM_RESTART_COUNT:-0}} >> {marks}; sleep 600")
    assert sub.returncode == 0, sub.stderr
    job_id = sub.stdout.strip().split(";")[0]
    try:
        _wait_for(marks.exists, 60, f"job {job_id} to start")
        subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
        t0 = time.monotonic()
        _wait_for(lambda: len(marks.read_text().split()) >= 2, 60, f"job {job_id} to restart")
        assert marks.read_text().split() == ["run0", "run1"]
        assert time.monotonic() - t0 < 60
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)


@pytest.mark.slurm
def test_job_no_node_can_run_is_rejected_at_submission(cluster):
    cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    sub = _sbatch(f"--cpus-per-task={cpus + 1}", "--wrap", "true")
    if sub.returncode == 0:  # accepted: it would pend forever; do not leave it queued
        subprocess.run(["scancel", sub.stdout.strip()], capture_output=True)
    assert sub.returncode != 0 and "submission failed" in sub.stderr, sub.stderr


@pytest.mark.slurm
def test_max_array_size_env_sets_the_running_limit(cluster):
    """Tests of the sweep engine's array chunking need a small MaxArraySize."""
    try:
        small = _script("up", env={sc.MAX_ARRAY_SIZE_ENV: "3"})
        assert small.returncode == 0, small.stdout + small.stderr
        assert "restarting slurmctld" in small.stdout
        assert sc.max_array_size() == 3
        too_big = _sbatch("--hold", "--array=0-3", "--wrap", "true")
        assert too_big.returncode != 0 and "Invalid job array" in too_big.stderr
        fits = _sbatch("--hold", "--array=0-2", "--wrap", "true")
        assert fits.returncode == 0, fits.stderr
        subprocess.run(["scancel", fits.stdout.strip()], check=True, timeout=30)
    finally:
        restored = _script("up")  # back to the caller's setting (default 1001)
        assert restored.returncode == 0, restored.stdout + restored.stderr
    assert sc.max_array_size() == sc.ClusterConfig.from_env().max_array_size


# ---------------------------------------------------------------------------- no daemons


def test_stop_never_signals_a_pid_that_names_another_program(tmp_path):
    """A stale pid file whose pid now belongs to another program must be left alone."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        paths = sc.Paths(tmp_path)
        paths.pids.mkdir()
        paths.pid_file("slurmd").write_text(f"{other.pid}\n")
        daemon = next(d for d in sc.daemons(paths) if d.name == "slurmd")
        assert daemon.pid(paths) is None
        assert daemon.stop(paths) is False
        assert other.poll() is None  # still running
        assert not paths.pid_file("slurmd").exists()  # the stale pid file is gone
    finally:
        other.kill()
        other.wait()


def test_pid_alive_treats_zombies_and_renamed_processes_as_dead():
    # The parent never waits for its child `sleep 0`: a zombie that is not ours to reap.
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, time; p = subprocess.Popen(['sleep', '0']);"
         " print(p.pid, flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        zombie = int(parent.stdout.readline())
        _wait_for(lambda: Path(f"/proc/{zombie}/stat").read_text().rsplit(")", 1)[1].split()[0]
                  == "Z", 10, "the child to become a zombie")
        assert not sc.pid_alive(zombie, "sleep")
        assert sc.pid_alive(parent.pid, Path(f"/proc/{parent.pid}/comm").read_text().strip())
        assert not sc.pid_alive(parent.pid, "slurmctld")
    finally:
        parent.kill()
        parent.wait()
    assert not sc.pid_alive(parent.pid, "python")


def test_write_conf_refuses_a_config_it_did_not_write(tmp_path):
    conf = tmp_path / "slurm.conf"
    assert sc.write_conf(conf, f"{sc.CONF_MARKER}\nA=1\n", 0o644) is True
    assert sc.write_conf(conf, f"{sc.CONF_MARKER}\nA=1\n", 0o644) is False  # unchanged
    conf.write_text("ClusterName=theirs\n")
    with pytest.raises(sc.ClusterError, match="not written by tools.slurm_cluster"):
        sc.write_conf(conf, f"{sc.CONF_MARKER}\nA=2\n", 0o644)
    assert conf.read_text() == "ClusterName=theirs\n"


@pytest.mark.parametrize("env, key", [
    ({sc.MAX_ARRAY_SIZE_ENV: "0"}, "slurm.max_array_size"),
    ({sc.MAX_ARRAY_SIZE_ENV: "many"}, sc.MAX_ARRAY_SIZE_ENV),
    ({sc.STATE_DIR_ENV: "relative/dir"}, "slurm.state_dir"),
])
def test_bad_settings_raise_config_error(env, key):
    with pytest.raises(ConfigError) as err:
        sc.ClusterConfig.from_env(env).check()
    assert str(err.value).startswith(key)
