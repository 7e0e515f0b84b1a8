"""``artifacts``: image grids and a t-SNE map written into the run folder (no metrics).

What the paper shows qualitatively (Figs. 5, 6, 11-19 and Fig. 7):

| file | what |
|---|---|
| ``samples.png`` | 8×8 grid of g(z), z from 64 prior draws fixed for the run |
| ``reconstructions.png`` | rows of 8 test images, each row followed by their reconstructions (4 pairs of rows) |
| ``interpolations.png`` | one row per pair of test images: the first image, g(interp(z_a, z_b, t)) for 10 values of t in [0, 1], the second image; ``prior.interpolate`` renormalises to the sphere for the spherical prior (docs/paper.md) and is linear for the Gaussian |
| ``tsne.png``, ``tsne.csv`` | 2-D t-SNE (scikit-learn) of the latents of the first ``eval.artifacts.tsne_points`` test items, coloured by label (Fig. 7); columns ``x, y, label`` |

Written after the last epoch (``final``) if ``eval.artifacts.at_end``, with the names above;
with ``eval.artifacts.every_eval`` the image grids are also written at every evaluation as
``artifacts/<name>_epoch<NNNN>.png``. The t-SNE map is made only after the last epoch and only
for labelled datasets (``test_y``); image grids are skipped for vector datasets. Nothing is
written when the run has no folder. The prior draws and the interpolation pairs are fixed at
construction from ``derive_seed(eval.seed, "artifacts", ...)``. Every file is written
atomically. Returns no metrics.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid, save_image

from harness.atomic import atomic_write, write_text
from harness.evaluators._base import EVALUATORS, Evaluator
from harness.evaluators.image_swd import decode
from harness.seeding import derive_seed, make_generator

GRID = 8  # images per row
NUM_SAMPLES = GRID * GRID
RECON_ROWS = 4  # pairs of rows (originals, reconstructions)
INTERP_PAIRS = 8
INTERP_STEPS = 10


def save_grid(path: Path, images: torch.Tensor, nrow: int) -> None:
    """Write images in [0, 1] as one PNG grid (torchvision), atomically."""
    grid = make_grid(images.float().clamp(0, 1), nrow=nrow, padding=2)
    atomic_write(path, lambda f: save_image(grid, f, format="png"), mode="wb")


@EVALUATORS.register("artifacts")
class Artifacts(Evaluator):
    def __init__(self, cfg, data, prior, device, run_dir=None):
        super().__init__(cfg, data, prior, device, run_dir)
        self.acfg, seed = cfg.eval.artifacts, cfg.eval.seed
        self.z = prior.sample(NUM_SAMPLES, generator=make_generator(seed, "artifacts", "samples"))
        n_test = len(data.test_x)
        pairs = min(INTERP_PAIRS, n_test // 2)
        self.pairs = torch.randperm(n_test, generator=make_generator(seed, "artifacts", "pairs"))[: 2 * pairs]
        self.tsne_seed = derive_seed(seed, "artifacts", "tsne") % 2**32

    def __call__(self, model, epoch: int, final: bool = False) -> dict[str, float]:
        if self.run_dir is None:
            return {}
        run_dir = Path(self.run_dir)
        if self.data.is_image:
            if final and self.acfg.at_end:
                self.write_grids(model, run_dir, "")
            if self.acfg.every_eval:
                self.write_grids(model, run_dir / "artifacts", f"_epoch{epoch:04d}")
        if final and self.acfg.at_end and self.data.test_y is not None:
            self.write_tsne(model, run_dir)
        return {}

    # ------------------------------------------------------------------ image grids

    def _decode(self, model, z: torch.Tensor) -> torch.Tensor:
        return decode(model, z, self.device).reshape(-1, *self.data.item_shape)

    def write_grids(self, model, folder: Path, suffix: str) -> None:
        save_grid(folder / f"samples{suffix}.png", self._decode(model, self.z), GRID)
        test = self.data.test_x
        if len(test) == 0:
            return
        nrow = min(GRID, len(test))
        n = min(RECON_ROWS * GRID, len(test)) // nrow * nrow
        x = self.data.to_float(test[:n])
        x_hat = self._decode(model, self.encode(model, test[:n]))
        rows = torch.stack([x.reshape(-1, nrow, *x.shape[1:]), x_hat.reshape(-1, nrow, *x.shape[1:])], 1)
        save_grid(folder / f"reconstructions{suffix}.png", rows.reshape(-1, *x.shape[1:]), nrow)
        if len(self.pairs):
            save_grid(folder / f"interpolations{suffix}.png", self.interpolations(model), INTERP_STEPS + 2)

    def interpolations(self, model) -> torch.Tensor:
        """(pairs · (steps + 2)) images: per pair, x_a, the decoded path, x_b."""
        items = self.data.test_x[self.pairs]
        z = self.encode(model, items)
        za, zb = z[0::2], z[1::2]  # (P, d)
        t = torch.linspace(0, 1, INTERP_STEPS).view(1, -1, 1)
        path = self.prior.interpolate(za[:, None], zb[:, None], t)  # (P, steps, d)
        imgs = self._decode(model, path.reshape(-1, z.shape[1])).reshape(len(za), INTERP_STEPS, *self.data.item_shape)
        x = self.data.to_float(items)
        return torch.cat([x[0::2, None], imgs, x[1::2, None]], 1).reshape(-1, *self.data.item_shape)

    # ------------------------------------------------------------------ t-SNE

    def write_tsne(self, model, run_dir: Path) -> None:
        from sklearn.manifold import TSNE

        n = min(self.acfg.tsne_points, len(self.data.test_x))
        z = self.encode(model, self.data.test_x[:n]).double().numpy()
        labels = self.data.test_y[:n].reshape(n).tolist()
        perplexity = min(30.0, max(1.0, (n - 1) / 3))
        xy = TSNE(2, perplexity=perplexity, init="pca", random_state=self.tsne_seed).fit_transform(z)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["x", "y", "label"])
        w.writerows([float(a), float(b), lab] for (a, b), lab in zip(xy, labels))
        write_text(run_dir / "tsne.csv", buf.getvalue())
        atomic_write(run_dir / "tsne.png", lambda f: _tsne_figure(xy, labels).savefig(f, format="png", dpi=120), mode="wb")


def _tsne_figure(xy: np.ndarray, labels: list) -> "Figure":
    """Scatter of the 2-D map, one colour per label (Agg canvas, no pyplot state)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    classes = sorted(set(labels))
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    lab = np.asarray(labels)
    for i, c in enumerate(classes):
        pts = xy[lab == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=4, color=cmap(i % cmap.N), label=str(c))
    if len(classes) <= 20:
        ax.legend(markerscale=3, fontsize=7, loc="best", ncol=math.ceil(len(classes) / 10))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of test latents")
    fig.tight_layout()
    return fig
