"""MoCA's components as ablations: the uniformity loss, in-batch negatives, online keys,
and per-group (shuffle) batch-norm for the key encoder."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.config import ConfigError, config_from_dict
from harness.priors import build_prior
from harness.train import train_run
from harness.methods import REGULARIZERS, RegularizerContext
from harness.methods.moca import MoCAConfig, info_nce_in_batch
from harness.methods.uniformity import UniformityConfig, uniformity_loss
from test_trainer import assert_same_run, interrupt_after_epoch


def make(name, config, encoder=None, dim=3, in_dim=4, seed=0):
    torch.manual_seed(seed)
    encoder = encoder or nn.Linear(in_dim, dim)
    prior = build_prior("sphere", dim)
    ctx = RegularizerContext(encoder=encoder, project=prior.project, prior=prior, latent_dim=dim,
                             total_steps=10, generator=torch.Generator().manual_seed(seed),
                             device=torch.device("cpu"))
    return REGULARIZERS.get(name)(config, ctx), encoder


def test_uniformity_matches_wang_isola_pdist_formula():
    """Wang & Isola's reference: torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()."""
    z = F.normalize(torch.randn(7, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    expected = torch.pdist(z, p=2).pow(2).mul(-2.0).exp().mean().log()
    assert uniformity_loss(z, 2.0).item() == pytest.approx(expected.item(), rel=1e-5)


def test_uniformity_with_queue_averages_over_batch_pairs_and_queue_pairs():
    z = F.normalize(torch.randn(3, 2, generator=torch.Generator().manual_seed(2)), dim=1)
    u = F.normalize(torch.randn(4, 2, generator=torch.Generator().manual_seed(3)), dim=1)
    terms = [math.exp(-1.5 * float((z[i] - z[j]).pow(2).sum())) for i in range(3) for j in range(i + 1, 3)]
    terms += [math.exp(-1.5 * float((z[i] - u[k]).pow(2).sum())) for i in range(3) for k in range(4)]
    assert uniformity_loss(z, 1.5, u).item() == pytest.approx(math.log(sum(terms) / len(terms)), rel=1e-5)


def test_uniformity_is_lowest_for_spread_latents_and_has_no_nan_gradient_for_duplicates():
    spread = torch.eye(4)
    bunched = F.normalize(torch.ones(4, 4) + 0.01 * torch.eye(4), dim=1)
    assert uniformity_loss(spread, 2.0) < uniformity_loss(bunched, 2.0)
    dup = F.normalize(torch.ones(3, 4), dim=1).requires_grad_(True)
    uniformity_loss(dup, 2.0).backward()
    assert torch.isfinite(dup.grad).all()


def test_uniformity_queue_is_a_fifo_of_detached_latents():
    reg, enc = make("uniformity", UniformityConfig(t=2.0, queue_size=5))
    assert torch.allclose(reg.queue.norm(dim=1), torch.ones(5))
    z = F.normalize(torch.randn(3, 3), dim=1)
    reg.after_step(z, None, 0)
    assert torch.equal(reg.queue[:3], z) and int(reg.queue_ptr) == 3
    plain, _ = make("uniformity", UniformityConfig(t=2.0, queue_size=0))
    assert plain.queue is None and "queue" not in plain.state_dict()


def test_in_batch_info_nce_matches_hand_computation():
    s = 1 / math.sqrt(2)
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[s, s], [0.0, 1.0]])
    tau = 0.5
    l0 = -math.log(math.exp(s / tau) / (math.exp(s / tau) + math.exp(0.0)))
    l1 = -math.log(math.exp(1 / tau) / (math.exp(s / tau) + math.exp(1 / tau)))
    assert info_nce_in_batch(q, k, tau).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_in_batch_variant_has_no_queue_and_uses_momentum_keys():
    moca, enc = make("moca", MoCAConfig(tau=0.5, momentum=0.9, queue_size=5, negatives="batch"))
    assert "queue" not in moca.state_dict()
    x = torch.randn(6, 4)
    z = moca.ctx.project(enc(x))
    expected = info_nce_in_batch(z, moca.keys(x), 0.5)
    assert moca.loss(z, x).item() == pytest.approx(expected.item(), rel=1e-6)
    moca.after_step(z.detach(), x, 0)  # EMA still runs, nothing to enqueue


def test_online_keys_are_the_detached_queries_and_the_positive_term_has_no_gradient():
    moca, enc = make("moca", MoCAConfig(tau=0.5, queue_size=4, key_encoder="online"))
    assert moca.key_encoder is None
    x = torch.randn(5, 4)
    z = moca.ctx.project(enc(x))
    loss = moca.loss(z, x)
    assert torch.equal(moca._keys, z.detach())
    # on the sphere the gradient of q·sg(q) w.r.t. the raw encoder output vanishes, so the
    # loss's gradient equals that of its negative (logsumexp) part alone
    h = enc(x).detach().requires_grad_(True)
    full = torch.autograd.grad(moca.loss(F.normalize(h, dim=1), x), h)[0]
    q = F.normalize(h, dim=1)
    neg_only = torch.autograd.grad(
        torch.logaddexp(torch.full((5,), 2.0), torch.logsumexp(q @ moca.queue.T / 0.5, 1)).mean(), h)[0]
    assert torch.allclose(full, neg_only, atol=1e-6) and full.abs().sum() > 0
    moca.after_step(z.detach(), x, 0)
    assert torch.equal(moca.queue[:4], z.detach()[-4:])
    assert loss.ndim == 0


def test_shuffle_bn_keys_use_per_group_batch_statistics():
    enc = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    moca, _ = make("moca", MoCAConfig(key_bn="shuffle", key_bn_groups=2), encoder=enc)
    plain, _ = make("moca", MoCAConfig(), encoder=enc)
    x = torch.randn(8, 4)
    g = torch.Generator().manual_seed(0)
    g.set_state(moca.ctx.generator.get_state())
    perm = torch.randperm(8, generator=g)
    k = moca.keys(x)
    ref = torch.empty(8, 3)
    ke = moca.key_encoder.train()
    for part in perm.chunk(2):
        ref[part] = F.normalize(ke(x[part]), dim=1)  # each group normalised by its own statistics
    assert torch.allclose(k, ref, atol=1e-6)
    assert not torch.allclose(k, plain.keys(x), atol=1e-3)


def test_shuffle_bn_without_batch_norm_gives_the_plain_keys():
    moca, enc = make("moca", MoCAConfig(key_bn="shuffle", key_bn_groups=4))
    plain, _ = make("moca", MoCAConfig(), encoder=enc)
    x = torch.randn(8, 4)
    assert torch.allclose(moca.keys(x), plain.keys(x), atol=1e-6)


BASE = {"data": {"name": "synthetic"}, "model": {"arch": "mlp", "prior": "sphere"}, "train": {"batch_size": 8}}


@pytest.mark.parametrize("method,key", [
    ({"name": "moca", "negatives": "memory"}, "method.negatives"),
    ({"name": "moca", "key_encoder": "ema"}, "method.key_encoder"),
    ({"name": "moca", "key_bn": "sync"}, "method.key_bn"),
    ({"name": "moca", "key_bn": "shuffle", "key_bn_groups": 1}, "method.key_bn_groups"),
    ({"name": "moca", "key_bn": "shuffle", "key_bn_groups": 5}, "method.key_bn_groups"),
    ({"name": "moca", "key_bn": "shuffle", "key_encoder": "online"}, "method.key_bn"),
    ({"name": "uniformity", "t": 0}, "method.t"),
    ({"name": "uniformity", "queue_size": -1}, "method.queue_size"),
])
def test_config_errors_name_the_key(method, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict({**BASE, "method": method})
    assert err.value.key == key and "\n" not in str(err.value)


def test_uniformity_needs_the_sphere_prior():
    with pytest.raises(ConfigError) as err:
        config_from_dict({**BASE, "model": {"arch": "mlp", "prior": "gaussian"}, "method": {"name": "uniformity"}})
    assert err.value.key == "model.prior"


@pytest.mark.parametrize("params", [
    {"negatives": "batch"},
    {"key_encoder": "online", "queue_size": 40},
    {"key_bn": "shuffle", "key_bn_groups": 4},
    {"name": "uniformity", "queue_size": 40},
])
def test_variants_train_and_resume_bitwise(tmp_path, tiny_tree, monkeypatch, params):
    tiny_tree["method"] = {"name": "moca", "weight": 0.5, **params}
    tiny_tree["train"]["epochs"] = 3
    cfg = config_from_dict(tiny_tree)
    assert train_run(cfg, tmp_path / "straight") == "done"
    interrupt_after_epoch(cfg, tmp_path / "resumed", 2, monkeypatch)
    assert train_run(cfg, tmp_path / "resumed") == "done"
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")
