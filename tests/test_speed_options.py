"""The trainer's accelerator options, checked on CPU: the delayed non-finite check still
names the exact step, bf16 autocast and channels-last stay close to fp32, CPU defaults leave
today's numbers bitwise unchanged, torch.compile trains the same model."""

from __future__ import annotations

import pytest
import torch

import harness.trainer as T
from harness.config import ConfigError, config_from_dict
from harness.train import read_status, train_run
from harness.trainer import Trainer

IMAGE = {"name": "digits"}  # 8×8 scikit-learn digits: a tiny image dataset that needs no files


def _poison_recon(monkeypatch, at_call: int):
    """Make the reconstruction term infinite on its ``at_call``-th evaluation (0-based)."""
    original = T.reconstruction_loss
    calls = []

    def recon(x_hat, x):
        calls.append(1)
        value = original(x_hat, x)
        return value * float("inf") if len(calls) == at_call + 1 else value

    monkeypatch.setattr(T, "reconstruction_loss", recon)


@pytest.mark.parametrize("check_every", [3, 1000])
def test_delayed_check_names_the_same_step_and_values(tmp_path, tiny_tree, monkeypatch, check_every):
    """Checking every step (CPU default) and every N steps (CUDA default) report the same
    first non-finite step, epoch and loss terms; the delayed check stops within N steps."""
    states = {}
    for name, every in (("each", 1), ("delayed", check_every)):
        tiny_tree["train"]["check_every"] = every
        with monkeypatch.context() as m:
            _poison_recon(m, at_call=7)  # step 7: epoch 2 of 5-step epochs
            assert train_run(config_from_dict(tiny_tree), tmp_path / name) == "diverged"
        states[name] = read_status(tmp_path / name)
    keys = ("state", "diverged_step", "reason", "epoch", "step")
    assert {k: states["each"][k] for k in keys} == {k: states["delayed"][k] for k in keys}
    assert states["each"]["diverged_step"] == 7 and states["each"]["epoch"] == 1
    assert "non-finite loss at step 7 (epoch 2): loss=inf, recon=inf, reg=" in states["each"]["reason"]
    assert not (tmp_path / "delayed" / "metrics.jsonl").read_text().count('"epoch": 2')


def test_cpu_defaults_are_the_plain_fp32_path(tiny_tree):
    cfg = config_from_dict(tiny_tree)
    trainer = Trainer(cfg)
    assert trainer.amp_dtype is None and not trainer.channels_last and trainer.check_every == 1
    assert not trainer.dist.enabled


def _train(tree, epochs=2):
    tree["train"]["epochs"] = epochs
    trainer = Trainer(config_from_dict(tree))
    rows = [trainer.train_epoch() for _ in range(epochs)]
    return trainer, rows


def test_bf16_autocast_forced_on_cpu_trains_close_to_fp32(tiny_tree):
    tiny_tree["data"] = IMAGE
    tiny_tree["model"] = {"arch": "small_conv", "latent_dim": 8, "prior": "sphere", "width": 8}
    _, fp32 = _train(tiny_tree)
    tiny_tree["train"]["precision"] = "bf16"
    trainer, bf16 = _train(tiny_tree)
    assert trainer.amp_dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # weights stay fp32
    for a, b in zip(fp32, bf16):
        assert a["loss"] != b["loss"]  # bf16 really ran
        assert b["loss"] == pytest.approx(a["loss"], rel=0.05)


def test_channels_last_forced_on_cpu_matches_contiguous(tiny_tree):
    tiny_tree["data"] = IMAGE
    tiny_tree["model"] = {"arch": "small_conv", "latent_dim": 8, "prior": "sphere", "width": 8}
    _, plain = _train(tiny_tree)
    tiny_tree["train"]["channels_last"] = True
    trainer, nhwc = _train(tiny_tree)
    assert next(trainer.batches(1)).is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(plain, nhwc):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)


def test_speed_options_are_validated():
    with pytest.raises(ConfigError, match="train.precision: got 'fp16'"):
        config_from_dict({"train": {"precision": "fp16"}})
    with pytest.raises(ConfigError, match="train.check_every"):
        config_from_dict({"train": {"check_every": 0}})


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(tiny_tree):
    """torch.compile (inductor, CPU) of encoder and decoder: same losses to float tolerance,
    and checkpoints keep the plain parameter names."""
    plain, eager = _train(tiny_tree)
    tiny_tree["train"]["compile"] = True
    trainer, compiled = _train(tiny_tree)
    assert set(trainer.state_dict()["model"]) == set(plain.state_dict()["model"])
    for a, b in zip(eager, compiled):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
