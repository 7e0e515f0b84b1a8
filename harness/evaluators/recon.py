"""``recon``: the paper's reconstruction error on the whole test split (``test_recon``).

Per-item squared error summed over pixels, averaged over the test items (Fig. 8 reports its
final value against λ); see :mod:`harness.metrics.recon`. Works for images and vectors.
"""

from __future__ import annotations

from harness.evaluators._base import EVALUATORS, Evaluator, latent_map
from harness.metrics.recon import reconstruction_error


@EVALUATORS.register("recon")
class TestReconstruction(Evaluator):
    logs = ("test_recon",)

    def __call__(self, model, epoch: int, final: bool = False) -> dict[str, float]:
        err = reconstruction_error(model, self.data.test_x, self.data.to_float,
                                   latent_map(model, self.prior), self.device)
        return {"test_recon": err}
