"""``moca``: the Momentum Contrastive Autoencoder regularizer (the paper's Eq. 6, Algorithm 1).

For a batch x_1..x_B with latents q_i = f_θ(x_i) on the unit sphere (gradients flow), keys
k_i = f_θ'(x_i) from the momentum encoder (no gradients) and a queue u_1..u_K of the keys of
the K most recent training inputs, the loss is the InfoNCE

    L_con = −(1/B) Σ_i log( e^{q_i·k_i/τ} / ( e^{q_i·k_i/τ} + Σ_j e^{q_i·u_j/τ} ) ).

After each optimiser step the momentum encoder follows θ' ← m_t θ' + (1 − m_t) θ with the
BYOL cosine schedule m_t = 1 − (1 − m)(cos(π t / T) + 1) / 2 (m_0 = m, m_T = 1), then the
batch's keys are enqueued and the oldest dropped (docs/paper.md "The method").

Choices (documented assumptions):
* The queue is initialised with uniform-sphere samples (prior draws), so the negative term
  is meaningful from the first step; any K ≥ 1 works, writes wrap around the ring buffer
  when K is not a multiple of B, and a batch larger than K keeps only its last K keys.
* The key encoder runs its batch-norm layers in training mode (batch statistics), as in
  MoCo's reference code; its BN running statistics are its own and are not averaged from
  the encoder, since training-mode BN never reads them. Only parameters follow the EMA.
* MoCA's latents live on the sphere: the method requires ``model.prior: sphere``.

Ablation variants (beyond the paper; defaults reproduce MoCA as above):

* ``negatives: batch`` - in-batch negatives only, no queue (SimCLR / MoCo v3 style): the
  keys of the other items of the batch are the negatives,
      L = −(1/B) Σ_i log( e^{q_i·k_i/τ} / Σ_j e^{q_i·k_j/τ} );
  ``queue_size`` is then unused.
* ``key_encoder: online`` - no momentum encoder: the positive key is the online encoder's
  own latent under stop-gradient, k_i = sg(q_i). Without data augmentation the positive
  logit q_i·sg(q_i)/τ = 1/τ then has zero gradient on the sphere (its gradient k_i is
  normal to the sphere at q_i), so the loss acts only through the negatives: the entropy
  (uniformity) term of InfoNCE against the queue (or the batch). The queue holds the
  online latents of past batches. (``momentum: 0`` with the constant schedule trains the
  same keys one optimiser step late; with the cosine schedule m_t still rises to 1.)
* ``key_bn: shuffle`` - MoCo's shuffle-BN emulated on one device (MoCo issue #47): the batch
  is permuted with the method's generator and the momentum encoder computes the keys in
  ``key_bn_groups`` groups, each with its own batch-norm statistics, so a key does not share
  batch statistics with its query (computed on the whole batch); the keys are then put
  back in batch order. Without batch-norm layers in the encoder (``small_conv``, ``mlp``)
  it changes nothing but the cost. Requires ``key_encoder: momentum``.
* One run on several GPUs (DDP): each rank computes the InfoNCE of its slice of the batch
  against the shared queue, and the keys of every rank are enqueued in rank order (MoCo's
  ``concat_all_gather``), so the queue is the one a single process with the global batch
  keeps. Batch norm is synchronised over ranks (SyncBN, ``train.sync_bn``) in the encoder
  and hence in its momentum copy: key statistics are those of the global batch, exactly as
  in one process, rather than MoCo's shuffle-BN (which exists to hide per-GPU statistics).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from harness.errors import ConfigError, require, require_choice
from harness.methods._base import REGULARIZERS, Regularizer, RegularizerContext


@dataclass
class MoCAConfig:
    tau: float = 0.1  # temperature τ (value lost in the paper's text; docs/paper.md default)
    momentum: float = 0.999  # base momentum m (best in Table 3)
    queue_size: int = 10000  # K (docs/paper.md: 10,000 for CIFAR-10, 60,000 for CelebA)
    momentum_schedule: str = "cosine"  # cosine (BYOL, as in the paper) | constant
    negatives: str = "queue"  # queue (the paper) | batch (in-batch negatives, no queue)
    key_encoder: str = "momentum"  # momentum (the paper) | online (sg of the query, no EMA copy)
    key_bn: str = "batch"  # batch (one BN batch, as MoCo's code on one GPU) | shuffle (per-group BN)
    key_bn_groups: int = 2  # groups of the shuffled batch with key_bn: shuffle

    def check(self, p: str) -> None:
        require(self.tau > 0 and math.isfinite(self.tau), f"{p}.tau", self.tau, "a number > 0")
        require(0 <= self.momentum <= 1, f"{p}.momentum", self.momentum, "a number in [0, 1]")
        require(self.queue_size >= 1, f"{p}.queue_size", self.queue_size, "an integer >= 1")
        require_choice(self.momentum_schedule, f"{p}.momentum_schedule", ["cosine", "constant"])
        require_choice(self.negatives, f"{p}.negatives", ["queue", "batch"])
        require_choice(self.key_encoder, f"{p}.key_encoder", ["momentum", "online"])
        require_choice(self.key_bn, f"{p}.key_bn", ["batch", "shuffle"])
        require(self.key_bn_groups >= 2, f"{p}.key_bn_groups", self.key_bn_groups, "an integer >= 2")
        if self.key_bn == "shuffle":
            require(self.key_encoder == "momentum", f"{p}.key_bn", self.key_bn,
                    "batch when key_encoder is online (the online keys are the queries themselves)")


def cosine_momentum(base: float, t: int, total: int) -> float:
    """BYOL's schedule m_t = 1 − (1 − m)(cos(π t / T) + 1) / 2; equals m at t=0, 1 at t=T."""
    if total <= 0:
        return base
    t = min(max(t, 0), total)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * t / total) + 1.0) / 2.0


class QueueLogSumExp(torch.autograd.Function):
    """logsumexp_j (q_i · u_j) over the queue rows u_j, for each query row q_i.

    Same value and gradient as ``torch.logsumexp(q @ queue.T, 1)``, but the B×K logits
    become the softmax in place and that one buffer serves the backward pass (grad_q =
    softmax · queue), where autograd's version allocates and traverses several B×K
    temporaries; with K = 10,000 this is most of MoCA's cost beyond the key encoder. The
    queue gets no gradient (it holds keys of past batches).
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        logits = q @ queue.t()
        top = logits.amax(dim=1, keepdim=True)
        probs = logits.sub_(top).exp_()
        total = probs.sum(dim=1, keepdim=True)
        probs.div_(total)
        ctx.save_for_backward(probs, queue)
        return (top + total.log()).squeeze(1)

    @staticmethod
    @torch.autograd.function.once_differentiable  # no double backward through the queue
    def backward(ctx, grad: torch.Tensor):
        probs, queue = ctx.saved_tensors
        return grad.unsqueeze(1) * (probs @ queue), None  # diag(g)·P·U, no B×K temporary


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean InfoNCE with positive ``k[i]`` for ``q[i]`` and the rows of ``queue`` as negatives.

    −log(e^{l⁺} / (e^{l⁺} + Σ_j e^{l⁻_j})) = logaddexp(l⁺, logsumexp_j l⁻_j) − l⁺, with
    the logits l = q·u/τ. Scaling the B×d queries by 1/τ (not the B×K logits) and reducing
    the negatives with :class:`QueueLogSumExp` keeps the cost of a large queue to one matrix
    product and a few in-place passes over the logits.
    """
    q = q / tau
    l_pos = (q * k).sum(dim=1)  # B
    l_neg = QueueLogSumExp.apply(q, queue)  # B: logsumexp over the K negatives
    return (torch.logaddexp(l_pos, l_neg) - l_pos).mean()


def info_nce_in_batch(q: torch.Tensor, k: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean InfoNCE with positive ``k[i]`` for ``q[i]`` and the other rows of ``k`` as negatives."""
    logits = (q / tau) @ k.t()
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(q), device=q.device))


@torch.no_grad()
def enqueue_ring(queue: torch.Tensor, ptr: torch.Tensor, keys: torch.Tensor) -> None:
    """FIFO ring buffer: write ``keys`` over the oldest rows of ``queue`` from ``ptr``, wrapping
    around; a batch larger than the queue keeps its last rows. ``ptr`` (a 0-d tensor) advances."""
    K = queue.shape[0]
    keys = keys[-K:]
    n = keys.shape[0]
    idx = (ptr + torch.arange(n, device=keys.device)) % K
    queue[idx] = keys
    ptr.copy_((ptr + n) % K)


@REGULARIZERS.register("moca")
class MoCA(Regularizer):
    Config = MoCAConfig

    def __init__(self, config: MoCAConfig, ctx: RegularizerContext):
        super().__init__(config, ctx)
        self.key_encoder = None
        if config.key_encoder == "momentum":
            self.key_encoder = copy.deepcopy(ctx.encoder)
            for p in self.key_encoder.parameters():
                p.requires_grad_(False)
        if config.negatives == "queue":
            self.register_buffer("queue", self.sample_prior(config.queue_size))  # uniform on the sphere
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long, device=ctx.device))
        self._keys: torch.Tensor | None = None

    @classmethod
    def check_run(cls, cfg) -> None:
        if cfg.model.prior != "sphere":
            raise ConfigError("model.prior", f"got {cfg.model.prior!r}; method moca needs: sphere")
        params = cfg.method.params
        if params.key_bn == "shuffle":
            per_group = cfg.train.batch_size // params.key_bn_groups
            require(per_group >= 2, "method.key_bn_groups", params.key_bn_groups,
                    f"at most train.batch_size / 2 = {cfg.train.batch_size // 2} (batch norm needs 2 items per group)")
        if params.negatives == "batch":
            require(cfg.train.batch_size >= 2, "train.batch_size", cfg.train.batch_size,
                    "an integer >= 2 for moca with in-batch negatives")

    def momentum_at(self, t: int) -> float:
        if self.config.momentum_schedule == "constant":
            return self.config.momentum
        return cosine_momentum(self.config.momentum, t, self.ctx.total_steps)

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """Keys of the momentum encoder, its batch-norm in training mode (module docstring);
        its forward pass runs under the trainer's autocast, the keys are fp32."""
        self.key_encoder.train()
        if self.config.key_bn == "batch":
            with self.ctx.autocast():
                raw = self.key_encoder(x)
            return self.ctx.project(raw.float())
        g = self.ctx.generator
        perm = torch.randperm(len(x), generator=g, device=g.device).to(x.device)
        with self.ctx.autocast():
            shuffled = torch.cat([self.key_encoder(part) for part in x[perm].chunk(self.config.key_bn_groups)])
        shuffled = shuffled.float()
        k = torch.empty_like(shuffled)
        k[perm] = shuffled  # back in batch order
        return self.ctx.project(k)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        k = z.detach() if self.key_encoder is None else self.keys(x)
        self._keys = k
        if self.config.negatives == "batch":
            return info_nce_in_batch(z, k, self.config.tau)
        return info_nce(z, k, self.queue, self.config.tau)

    @torch.no_grad()
    def momentum_update(self, m: float) -> None:
        """θ' ← m θ' + (1 − m) θ over the parameters of the two encoders."""
        keys = list(self.key_encoder.parameters())
        queries = [p.detach() for p in self.ctx.encoder.parameters()]
        if len(keys) != len(queries):
            raise RuntimeError("the momentum encoder no longer mirrors the encoder")
        torch._foreach_lerp_(keys, queries, 1.0 - m)  # θ' + (1 − m)(θ − θ'), one multi-tensor op

    def enqueue(self, keys: torch.Tensor) -> None:
        enqueue_ring(self.queue, self.queue_ptr, keys)

    def after_step(self, z: torch.Tensor, x: torch.Tensor, step: int) -> None:
        if self.key_encoder is not None:
            m = self.momentum_at(step)
            self.momentum_update(m)
            self.logs = {"momentum": m}
        if self._keys is not None and self.config.negatives == "queue":
            self.enqueue(self.ctx.gather(self._keys))  # every rank's keys, in rank order
        self._keys = None
