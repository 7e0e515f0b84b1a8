"""``latent``: distance of the encoded training distribution to the prior, every evaluation.

What the paper's Fig. 2 (left) logs each epoch (SWD between the latents of the synthetic data
and uniform-sphere samples) and Fig. 3 (singular values of the latent matrix), plus two
cheap companions. On the first N = ``eval.num_samples`` training items (all if fewer):

| key | what |
|---|---|
| ``latent_swd`` | sliced 2-Wasserstein distance to N prior samples, ``eval.projections`` directions |
| ``latent_sphere_swd`` | spherical SW distance to Unif(S^{d-1}) (sphere prior) |
| ``latent_dir_sphere_swd`` | the same on the directions z/‖z‖ (Gaussian prior: directions of N(0, I) are uniform) |
| ``latent_uniformity`` / ``latent_dir_uniformity`` | Wang & Isola log E exp(−2‖z−z'‖²), on z (sphere prior) / on z/‖z‖ (Gaussian prior) |
| ``latent_sv_max``, ``latent_sv_min``, ``latent_sv_ratio``, ``latent_sv_entropy`` | spectrum of the N×d latent matrix |
| ``latent_mean_norm`` | ‖mean z‖ |

The prior sample, the directions and the 2-planes are drawn once, at construction, from
generators seeded by ``derive_seed(eval.seed, "latent", ...)``: every epoch (and every run with
the same ``eval.seed``) is measured with the same randomness, so curves are comparable. The full
spectrum goes to ``<run_dir>/latent_singular_values.jsonl``, one line ``{"epoch", "singular_values"}``
per evaluation; a resumed run rewrites the lines of the epochs it evaluates again.
"""

from __future__ import annotations

from pathlib import Path

import torch

from harness.atomic import read_jsonl, write_jsonl
from harness.evaluators._base import EVALUATORS, Evaluator
from harness.metrics import latent as L
from harness.seeding import make_generator

SPECTRUM_FILE = "latent_singular_values.jsonl"


@EVALUATORS.register("latent")
class LatentDiagnostics(Evaluator):
    logs = ("latent_*",)

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        ev, prior, seed = ctx.run.eval, ctx.prior, ctx.seed
        self.x = ctx.data.train_x[: ev.num_samples]
        n, dim = len(self.x), prior.dim
        self.prior_samples = prior.sample(n, generator=make_generator(seed, "latent", "prior"))
        self.projections = L.random_projections(dim, ev.projections, make_generator(seed, "latent", "projections"))
        self.planes = L.sphere_projections(dim, ev.projections, make_generator(seed, "latent", "planes"))
        self.prefix = "latent_" if prior.spherical else "latent_dir_"

    def __call__(self, model, epoch: int, final: bool = False) -> dict[str, float]:
        z = self.encode(model, self.x)
        sv = L.singular_values(z)
        out = {
            "latent_swd": L.sliced_wasserstein(z, self.prior_samples, self.projections),
            f"{self.prefix}sphere_swd": L.sphere_sliced_wasserstein_unif(z, self.planes),
            f"{self.prefix}uniformity": L.uniformity(torch.nn.functional.normalize(z, dim=-1)),
            "latent_mean_norm": L.mean_norm(z),
        }
        out.update({f"latent_{k}": v for k, v in L.spectrum_summary(sv).items()})
        if self.run_dir is not None:
            self._write_spectrum(epoch, sv)
        return out

    def _write_spectrum(self, epoch: int, sv: torch.Tensor) -> None:
        path = Path(self.run_dir) / SPECTRUM_FILE
        rows = [r for r in read_jsonl(path) if r["epoch"] < epoch] if path.exists() else []
        rows.append({"epoch": epoch, "singular_values": sv.tolist()})
        write_jsonl(path, rows)
