"""The common trainer: loss terms, schedule, metrics, checkpoints, resume, divergence."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from harness.atomic import read_jsonl
from harness.config import config_from_dict
from harness.run_folder import RunFolder, load_checkpoint, save_checkpoint
from harness.train import read_status, train_run
from harness.trainer import Trainer, lr_factor, reconstruction_loss

TIME_KEYS = {"epoch_time_s", "eval_time_s"}


def final_state(run_dir):
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    metrics = [{k: v for k, v in row.items() if k not in TIME_KEYS} for row in read_jsonl(run_dir / "metrics.jsonl")]
    return ckpt, metrics


def assert_same_run(a, b):
    ckpt_a, metrics_a = final_state(a)
    ckpt_b, metrics_b = final_state(b)
    assert metrics_a == metrics_b
    for key in ckpt_a["model"]:
        assert torch.equal(ckpt_a["model"][key], ckpt_b["model"][key]), key
    for key, value in ckpt_a["regularizer"]["module"].items():
        assert torch.equal(value, ckpt_b["regularizer"]["module"][key]), key
    assert ckpt_a["step"] == ckpt_b["step"]


def test_reconstruction_is_summed_over_pixels_and_averaged_over_batch():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[2.0, 0.0], [0.0, 0.0]]]])
    assert reconstruction_loss(x_hat, x).item() == pytest.approx((4 * 1.0 + 4.0) / 2)


def test_step_decay_halves_the_learning_rate():
    assert [lr_factor(e, 60, 0.5, None) for e in (0, 59, 60, 119, 120)] == [1, 1, 0.5, 0.5, 0.25]
    assert lr_factor(1000, 40, 0.5, 400) == 0.5 ** 10  # CelebA-HQ: every 40 until 400
    assert lr_factor(10, None, 0.5, None) == 1.0


def test_loss_is_reconstruction_plus_weighted_regularizer(tiny_tree):
    tiny_tree["method"]["weight"] = 3.0
    trainer = Trainer(config_from_dict(tiny_tree))
    x = next(trainer.batches(1))
    with torch.no_grad():
        z = trainer.prior.project(trainer.model.encoder(x))
        recon = reconstruction_loss(trainer.model.decoder(z), x)
    state = trainer.regularizer.checkpoint_state()
    reg_value = trainer.regularizer.loss(z, x).item()
    trainer.regularizer.load_checkpoint_state(state)
    loss, r, g = trainer.train_step(x)
    assert r.item() == pytest.approx(recon.item(), rel=1e-6)
    assert g.item() == pytest.approx(reg_value, rel=1e-6)
    assert loss.item() == pytest.approx(recon.item() + 3.0 * reg_value, rel=1e-6)


def test_latent_only_drops_reconstruction(tiny_tree):
    tiny_tree["train"]["latent_only"] = True
    trainer = Trainer(config_from_dict(tiny_tree))
    loss, recon, reg = trainer.train_step(next(trainer.batches(1)))
    assert recon.item() == 0.0 and loss.item() == pytest.approx(reg.item())
    assert all(p.grad is None for p in trainer.model.decoder.parameters())


def test_run_folder_contents(tmp_path, tiny_tree):
    cfg = config_from_dict(tiny_tree)
    assert train_run(cfg, tmp_path / "run") == "done"
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text()) == cfg.to_dict()
    status = read_status(run)
    assert status["state"] == "done" and status["epoch"] == 4 and status["step"] == 4 * (160 // 32)
    assert status["packages"]["torch"] and "git_commit" in status["code_version"]
    # the processor is recorded: it decides the low bits of every number (harness.provenance)
    assert status["machine"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert status["machine"]["arch"] == platform.machine() and status["machine"]["cpu"]
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert all({"loss", "recon", "reg", "lr", "step"} <= set(r) for r in rows)
    assert not list(run.glob(".*.tmp"))  # no temporary files left behind
    # a finished run is not trained again
    mtime = (run / "checkpoint.pt").stat().st_mtime_ns
    assert train_run(cfg, run) == "done"
    assert (run / "checkpoint.pt").stat().st_mtime_ns == mtime


def test_checkpoint_round_trip_restores_everything(tmp_path, tiny_tree):
    cfg = config_from_dict(tiny_tree)
    a = Trainer(cfg)
    a.train_epoch()
    save_checkpoint(tmp_path / "c.pt", a.state_dict())
    b = Trainer(cfg)
    b.load_state_dict(load_checkpoint(tmp_path / "c.pt"))
    sa, sb = a.state_dict(), b.state_dict()
    assert (sa["epoch"], sa["step"]) == (sb["epoch"], sb["step"]) == (1, 5)
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k])
    assert sa["scheduler"] == sb["scheduler"]
    for ga, gb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert all(torch.equal(ga[k], gb[k]) for k in ga)
    assert torch.equal(sa["regularizer"]["module"]["queue"], sb["regularizer"]["module"]["queue"])
    assert torch.equal(sa["regularizer"]["generator"], sb["regularizer"]["generator"])
    assert torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])
    # the next epoch is identical from both
    ra, rb = a.train_epoch(), b.train_epoch()
    assert {k: v for k, v in ra.items() if k not in TIME_KEYS} == {k: v for k, v in rb.items() if k not in TIME_KEYS}


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so the trainer does not record a failure."""


def interrupt_after_epoch(cfg, run_dir, epoch, monkeypatch):
    """Train ``cfg`` in ``run_dir`` until the checkpoint of ``epoch`` is written, then 'kill' it."""
    original = RunFolder.save_checkpoint

    def save_then_die(self, state):
        original(self, state)
        if state["epoch"] == epoch:
            raise Killed

    with monkeypatch.context() as m:
        m.setattr(RunFolder, "save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            train_run(cfg, run_dir)


@pytest.mark.parametrize("kill_at", ["after_checkpoint", "mid_epoch"])
def test_interrupted_and_resumed_run_is_bitwise_identical(tmp_path, tiny_tree, monkeypatch, kill_at):
    cfg = config_from_dict(tiny_tree)
    assert train_run(cfg, tmp_path / "straight") == "done"

    original_step = Trainer.train_step

    def dying_step(self, x):
        if self.step == (12 if kill_at == "mid_epoch" else 10):  # epoch 3 of 4 (5 steps/epoch)
            raise Killed
        return original_step(self, x)

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(Killed):
        train_run(cfg, tmp_path / "resumed")
    assert read_status(tmp_path / "resumed")["state"] == "running"
    assert read_status(tmp_path / "resumed")["epoch"] == 2
    monkeypatch.setattr(Trainer, "train_step", original_step)
    assert train_run(cfg, tmp_path / "resumed") == "done"
    assert read_status(tmp_path / "resumed")["resumed_at"] is not None
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")


@pytest.mark.slow  # ~50 s: a real process trained, killed and trained again
def test_sigkilled_process_resumes_bitwise_identical(tmp_path, tiny_tree):
    """A real SIGKILL of `python -m harness.train` mid-run, then the same command again."""
    tiny_tree["data"].update(num_points=2000, input_dim=50)
    tiny_tree["model"]["hidden"] = [128]
    tiny_tree["train"]["epochs"] = 12
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_tree))
    cmd = [sys.executable, "-m", "harness.train", str(path), "--out"]
    proc = subprocess.Popen(cmd + [str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline:
        status = read_status(tmp_path / "killed") or {}
        if status.get("epoch", 0) >= 2 or proc.poll() is not None:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_epoch = read_status(tmp_path / "killed")["epoch"]
    assert 2 <= killed_epoch < 12
    subprocess.run(cmd + [str(tmp_path / "killed")], check=True, capture_output=True, timeout=600)
    train_run(config_from_dict(tiny_tree), tmp_path / "straight")
    assert_same_run(tmp_path / "straight", tmp_path / "killed")


def test_non_finite_loss_stops_with_status_diverged(tmp_path, tiny_tree, capsys):
    tiny_tree["optim"]["lr"] = 1e30  # the first step blows the weights up
    tiny_tree["method"] = {"name": "none"}
    cfg = config_from_dict(tiny_tree)
    assert train_run(cfg, tmp_path / "run") == "diverged"
    status = read_status(tmp_path / "run")
    assert status["state"] == "diverged"
    assert status["diverged_step"] >= 1
    assert "non-finite loss at step" in status["reason"]
    assert "Traceback" not in capsys.readouterr().err


def test_a_crash_is_recorded_as_failed(tmp_path, tiny_tree, monkeypatch):
    def boom(self, x):
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(Trainer, "train_step", boom)
    assert train_run(config_from_dict(tiny_tree), tmp_path / "run", quiet_errors=True) == "failed"
    status = read_status(tmp_path / "run")
    assert status["state"] == "failed" and status["reason"] == "RuntimeError: out of cheese"
    assert "out of cheese" in (tmp_path / "run" / "error.txt").read_text()


def test_same_seed_same_numbers_other_seed_other_numbers(tiny_tree):
    def first_losses(seed):
        tiny_tree["seed"] = seed
        t = Trainer(config_from_dict(tiny_tree))
        return t.train_epoch()["loss"]

    assert first_losses(0) == first_losses(0)
    assert first_losses(0) != first_losses(1)


def test_a_folder_of_another_run_is_refused(tmp_path, tiny_tree):
    from harness.config import ConfigError

    train_run(config_from_dict(tiny_tree), tmp_path / "run")
    tiny_tree["seed"] = 5
    with pytest.raises(ConfigError, match="different config"):
        train_run(config_from_dict(tiny_tree), tmp_path / "run")


def _method_names():
    from harness.methods import REGULARIZERS

    return REGULARIZERS.names()


@pytest.mark.parametrize("method", _method_names())
def test_every_method_trains_and_resumes_bitwise(tmp_path, tiny_tree, monkeypatch, method):
    """Each registered regularizer runs through the common trainer, and a run interrupted
    after its second epoch and resumed equals an uninterrupted one (own optimisers,
    generators and queues included)."""
    tiny_tree["method"] = {"name": method, "weight": 0.5}
    tiny_tree["train"]["epochs"] = 3
    if method == "cwae":
        tiny_tree["model"]["prior"] = "gaussian"
    cfg = config_from_dict(tiny_tree)
    assert train_run(cfg, tmp_path / "straight") == "done"
    interrupt_after_epoch(cfg, tmp_path / "resumed", 2, monkeypatch)
    assert train_run(cfg, tmp_path / "resumed") == "done"
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")


def test_a_run_from_an_older_schema_still_resumes(tmp_path, tiny_tree, monkeypatch):
    """A key added to the config schema since a run started (here: one removed from its
    stored config and checkpoint) takes its default; the run resumes instead of refusing."""
    cfg = config_from_dict(tiny_tree)
    interrupt_after_epoch(cfg, tmp_path / "run", 2, monkeypatch)
    run = tmp_path / "run"
    stored = json.loads((run / "config.json").read_text())
    del stored["eval"]["fid"]["dims"]
    (run / "config.json").write_text(json.dumps(stored))
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    del ckpt["config"]["eval"]["fid"]["dims"]
    torch.save(ckpt, run / "checkpoint.pt")
    assert train_run(cfg, run) == "done"
    assert read_status(run)["epoch"] == 4


def test_a_failure_reason_keeps_type_and_message(tmp_path, tiny_tree, monkeypatch):
    """Issue 21.5: an OSError without errno (every feature-network cache folder read-only)
    keeps its text, not only 'OSError'; an environment error keeps its plain words."""
    def no_cache(self, x):
        raise OSError("no writable cache folder for the LeNet network; set MOCA_CACHE_DIR")

    monkeypatch.setattr(Trainer, "train_step", no_cache)
    assert train_run(config_from_dict(tiny_tree), tmp_path / "run") == "failed"
    assert read_status(tmp_path / "run")["reason"] == (
        "OSError: no writable cache folder for the LeNet network; set MOCA_CACHE_DIR")

    def full(self, x):
        raise OSError(28, "No space left on device", "/results/x")

    monkeypatch.setattr(Trainer, "train_step", full)
    assert train_run(config_from_dict(tiny_tree), tmp_path / "run2") == "failed"
    assert read_status(tmp_path / "run2")["reason"] == "OSError: /results/x: no space left on device"


def test_machine_info_reads_the_first_processor(tmp_path):
    from harness.provenance import machine_info

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\n"
                       "model name\t: Intel(R) Xeon(R) Processor\nstepping\t: 2\n\n"
                       "processor\t: 1\nvendor_id\t: Other\nmodel name\t: Not this one\n")
    info = machine_info(cpuinfo)
    assert info["cpu"] == "Intel(R) Xeon(R) Processor" and info["cpu_id"] == "GenuineIntel/6/207/2"
    # no /proc/cpuinfo (macOS): the platform's name, no id
    assert machine_info(tmp_path / "missing")["cpu_id"] is None
