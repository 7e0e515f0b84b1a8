"""MoCA: InfoNCE value, queue semantics, momentum schedule and update, gradient flow."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.priors import build_prior
from harness.methods import REGULARIZERS, RegularizerContext
from harness.methods.moca import MoCAConfig, QueueLogSumExp, cosine_momentum, info_nce


def make_moca(queue_size=5, dim=3, total_steps=10, momentum=0.9, tau=0.5, encoder=None):
    torch.manual_seed(0)
    encoder = encoder or nn.Linear(4, dim)
    prior = build_prior("sphere", dim)
    g = torch.Generator().manual_seed(0)
    ctx = RegularizerContext(encoder=encoder, project=prior.project, prior=prior, latent_dim=dim,
                             total_steps=total_steps, generator=g, device=torch.device("cpu"))
    cfg = MoCAConfig(tau=tau, momentum=momentum, queue_size=queue_size)
    return REGULARIZERS.get("moca")(cfg, ctx), encoder


def test_info_nce_matches_hand_computation_on_three_samples():
    s = 1 / math.sqrt(2)
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [s, s]])
    k = torch.tensor([[s, s], [0.0, 1.0], [1.0, 0.0]])
    queue = torch.tensor([[-1.0, 0.0], [0.0, -1.0]])
    tau = 0.5
    expected = 0.0
    for i in range(3):
        pos = math.exp(float(q[i] @ k[i]) / tau)
        neg = sum(math.exp(float(q[i] @ u) / tau) for u in queue)
        expected += -math.log(pos / (pos + neg))
    expected /= 3
    assert info_nce(q, k, queue, tau).item() == pytest.approx(expected, rel=1e-6)
    # one term written out by hand: sample 2 has q·k = 1 and q·u = 0, -1 with the queue,
    # so with τ = 0.5 its loss is -log(e² / (e² + e⁰ + e⁻²)) = log(1 + e⁻² + e⁻⁴)
    term2 = math.log(1 + math.exp(-2) + math.exp(-4))
    assert info_nce(q[1:2], k[1:2], queue, tau).item() == pytest.approx(term2, rel=1e-6)
    assert term2 == pytest.approx(0.142932, abs=1e-6)


def test_loss_uses_momentum_keys_and_queue():
    moca, enc = make_moca(queue_size=4)
    x = torch.randn(3, 4)
    z = moca.ctx.project(enc(x))
    k = moca.ctx.project(moca.key_encoder(x)).detach()
    assert moca.loss(z, x).item() == pytest.approx(info_nce(z, k, moca.queue, 0.5).item(), rel=1e-6)


def test_queue_is_initialised_on_the_unit_sphere():
    moca, _ = make_moca(queue_size=100, dim=7)
    assert torch.allclose(moca.queue.norm(dim=1), torch.ones(100), atol=1e-6)
    assert moca.queue.std(0).min() > 0.1  # not a constant vector


def test_queue_fifo_order_and_wrap_around():
    moca, _ = make_moca(queue_size=5, dim=1)
    moca.enqueue(torch.tensor([[1.0], [2.0]]))
    moca.enqueue(torch.tensor([[3.0], [4.0]]))
    assert moca.queue[:4, 0].tolist() == [1, 2, 3, 4]
    moca.enqueue(torch.tensor([[5.0], [6.0]]))  # K=5 is not a multiple of B=2: wraps around
    assert moca.queue[:, 0].tolist() == [6, 2, 3, 4, 5]
    assert int(moca.queue_ptr) == 1
    moca.enqueue(torch.tensor([[7.0], [8.0], [9.0]]))
    assert moca.queue[:, 0].tolist() == [6, 7, 8, 9, 5]  # the oldest (2, 3, 4) were dropped
    # oldest-first reading starting at the pointer gives insertion order
    order = torch.roll(moca.queue[:, 0], -int(moca.queue_ptr)).tolist()
    assert order == [5, 6, 7, 8, 9]


def test_batch_larger_than_queue_keeps_its_last_keys():
    moca, _ = make_moca(queue_size=1, dim=1)
    moca.enqueue(torch.tensor([[1.0], [2.0], [3.0]]))
    assert moca.queue[:, 0].tolist() == [3.0]
    moca2, _ = make_moca(queue_size=2, dim=1)
    moca2.enqueue(torch.tensor([[1.0], [2.0], [3.0]]))
    assert sorted(moca2.queue[:, 0].tolist()) == [2.0, 3.0]


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.99, 0, 100) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 100, 100) == pytest.approx(1.0)
    assert cosine_momentum(0.99, 50, 100) == pytest.approx(0.995)
    values = [cosine_momentum(0.9, t, 20) for t in range(21)]
    assert values == sorted(values)


def test_gradients_reach_encoder_not_momentum_encoder():
    moca, enc = make_moca()
    x = torch.randn(6, 4)
    z = moca.ctx.project(enc(x))
    moca.loss(z, x).backward()
    assert enc.weight.grad is not None and enc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in moca.key_encoder.parameters())
    assert all(not p.requires_grad for p in moca.key_encoder.parameters())


def test_after_step_applies_ema_with_scheduled_momentum_and_enqueues():
    moca, enc = make_moca(queue_size=8, momentum=0.9, total_steps=10)
    theta_k = moca.key_encoder.weight.detach().clone()
    with torch.no_grad():
        enc.weight.add_(1.0)  # pretend an optimiser step moved the encoder
    x = torch.randn(3, 4)
    z = moca.ctx.project(enc(x))
    moca.loss(z, x)
    keys = moca._keys.clone()
    moca.after_step(z.detach(), x, step=0)
    m0 = 0.9  # m_t at t=0 equals the base momentum
    assert torch.allclose(moca.key_encoder.weight, m0 * theta_k + (1 - m0) * enc.weight.detach(), atol=1e-6)
    assert torch.equal(moca.queue[:3], keys)
    assert moca.logs["momentum"] == pytest.approx(0.9)


def test_key_encoder_batch_norm_runs_in_training_mode():
    enc = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    moca, _ = make_moca(encoder=enc)
    moca.eval()  # even when the module tree is put in eval mode
    x = torch.randn(16, 4)
    k = moca.keys(x)
    raw = moca.key_encoder(x)
    assert torch.allclose(raw.mean(0), torch.zeros(3), atol=1e-5)  # batch statistics were used
    assert k.shape == (16, 3)


def test_checkpoint_state_round_trip():
    moca, enc = make_moca(queue_size=6)
    x = torch.randn(4, 4)
    z = moca.ctx.project(enc(x))
    moca.loss(z, x)
    moca.after_step(z.detach(), x, 0)
    state = moca.checkpoint_state()
    other, _ = make_moca(queue_size=6)
    other.ctx.generator.manual_seed(123)
    other.load_checkpoint_state(state)
    assert torch.equal(other.queue, moca.queue)
    assert int(other.queue_ptr) == int(moca.queue_ptr)
    assert torch.equal(other.key_encoder.weight, moca.key_encoder.weight)
    assert torch.equal(other.ctx.generator.get_state(), moca.ctx.generator.get_state())


def test_queue_logsumexp_matches_autograd_value_and_gradient():
    torch.manual_seed(0)
    q = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    queue = torch.randn(7, 4, dtype=torch.float64)
    ours = QueueLogSumExp.apply(q, queue)
    ref = torch.logsumexp(q @ queue.t(), dim=1)
    assert torch.allclose(ours, ref)
    w = torch.randn(5, dtype=torch.float64)
    (g_ours,) = torch.autograd.grad((ours * w).sum(), q)
    (g_ref,) = torch.autograd.grad((torch.logsumexp(q @ queue.t(), dim=1) * w).sum(), q)
    assert torch.allclose(g_ours, g_ref)
    assert torch.autograd.gradcheck(lambda a: QueueLogSumExp.apply(a, queue), (q,))
