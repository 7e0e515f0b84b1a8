"""``artifacts``: image grids and a t-SNE map written into the run folder (no metrics).

What the paper shows qualitatively (Figs. 5, 6, 11-19 and Fig. 7):

| file | what |
|---|---|
| ``samples.png`` | 8×8 grid of g(z), z from 64 prior draws fixed for the run |
| ``reconstructions.png`` | rows of 8 test images (labelled ``input``), each followed by their reconstructions (``reconstruction``), 4 pairs of rows |
| ``interpolations.png`` | one row per pair of test images: the first image (``input a``), g(interp(z_a, z_b, t)) for 10 values of t in [0, 1] (columns labelled with t), the second image (``input b``); ``prior.interpolate`` renormalises to the sphere for the spherical prior (docs/paper.md) and is linear for the Gaussian |
| ``tsne.png``, ``tsne.csv`` | 2-D t-SNE (scikit-learn) of the latents of the first ``eval.artifacts.tsne_points`` test items, coloured by label (Fig. 7); columns ``x, y, label`` |

Every grid is a labelled PNG (:func:`labelled_grid`): a title line with the run's method, λ,
seed and epoch, a label left of every row (and above every column where columns differ), and
the images enlarged by an integer factor with nearest-neighbour pixels (:func:`grid_scale`:
at least 96 pixels per image, so a 28×28 MNIST digit is drawn 112 pixels high). The
unlabelled pixels are exactly torchvision's ``make_grid`` of the images, enlarged.

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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from harness.atomic import atomic_write, write_text
from harness.errors import require
from harness.evaluators._base import EVALUATORS, Evaluator
from harness.evaluators.image_swd import decode
from harness.seeding import derive_seed, make_generator

GRID = 8  # images per row
NUM_SAMPLES = GRID * GRID
RECON_ROWS = 4  # pairs of rows (originals, reconstructions)
INTERP_PAIRS = 8
INTERP_STEPS = 10


PAD = 2  # make_grid's padding between images (pixels of the unscaled grid)
MIN_CELL_PX = 96  # images are enlarged to at least this many pixels high
FONT_PX = 15
LABEL_GAP = 8


def grid_scale(height: int) -> int:
    """The integer enlargement of an image ``height`` pixels high (28 -> 4, 32 -> 3, 64 -> 2)."""
    return max(1, math.ceil(MIN_CELL_PX / height))


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    from matplotlib import font_manager

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), FONT_PX)


def raw_grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    """torchvision's ``make_grid`` of images in [0, 1] as an H×W×3 uint8 array (white padding)."""
    from torchvision.utils import make_grid
    grid = make_grid(images.float().clamp(0, 1), nrow=nrow, padding=PAD, pad_value=1.0)
    return grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def labelled_grid(images: torch.Tensor, nrow: int, title: str, row_labels: list[str],
                  col_labels: list[str] | None = None) -> Image.Image:
    """The images as a grid of ``nrow`` columns, enlarged by :func:`grid_scale` (nearest
    neighbour), with ``title`` on top, ``row_labels[i]`` left of row i and, when given,
    ``col_labels[j]`` above column j (DejaVu Sans, matplotlib's bundled font)."""
    h, w = images.shape[-2:]
    s = grid_scale(h)
    grid = Image.fromarray(raw_grid(images, nrow))
    grid = grid.resize((grid.width * s, grid.height * s), Image.NEAREST)
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text: str) -> int:
        return int(math.ceil(measure.textlength(text, font=font)))

    line = FONT_PX + 6
    left = LABEL_GAP + max([width(t) for t in row_labels] + [0]) + LABEL_GAP
    top = LABEL_GAP + line + (line if col_labels else 0)
    canvas_w = max(left + grid.width + LABEL_GAP, LABEL_GAP + width(title) + LABEL_GAP)
    canvas = Image.new("RGB", (canvas_w, top + grid.height + LABEL_GAP), "white")
    canvas.paste(grid, (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((LABEL_GAP, LABEL_GAP), title, fill="black", font=font)
    cell_h, cell_w = (h + PAD) * s, (w + PAD) * s
    for i, label in enumerate(row_labels):
        y = top + PAD * s + i * cell_h + h * s // 2
        draw.text((left - LABEL_GAP, y), label, fill="black", font=font, anchor="rm")
    for j, label in enumerate(col_labels or []):
        x = left + PAD * s + j * cell_w + w * s // 2
        draw.text((x, top - 4), label, fill="black", font=font, anchor="md")
    return canvas


def save_png(path: Path, image: Image.Image) -> None:
    atomic_write(path, lambda f: image.save(f, format="png"), mode="wb")


@dataclass
class ArtifactsConfig:
    """``eval.artifacts``: when the image grids and the t-SNE map are written, and its size."""

    at_end: bool = True  # after the last epoch
    every_eval: bool = False  # also at every evaluation
    tsne_points: int = 2000  # test latents shown in the t-SNE map (labelled datasets)

    def check(self, p: str) -> None:
        require(self.tsne_points >= 10, f"{p}.tsne_points", self.tsne_points, "an integer >= 10")


@EVALUATORS.register("artifacts")
class Artifacts(Evaluator):
    Config = ArtifactsConfig
    config_key = "artifacts"

    def __init__(self, config: ArtifactsConfig, ctx):
        super().__init__(config, ctx)
        self.acfg, seed, self.cfg = config, ctx.seed, ctx.run
        self.z = ctx.prior.sample(NUM_SAMPLES, generator=make_generator(seed, "artifacts", "samples"))
        n_test = len(ctx.data.test_x)
        pairs = min(INTERP_PAIRS, n_test // 2)
        self.pairs = torch.randperm(n_test, generator=make_generator(seed, "artifacts", "pairs"))[: 2 * pairs]
        self.tsne_seed = derive_seed(seed, "artifacts", "tsne") % 2**32
        self.images: dict[str, Image.Image] = {}  # the grids of the last call (for trackers)
        self.tracked = bool(getattr(ctx.run.train, "tensorboard", False))

    def take_images(self) -> dict[str, np.ndarray]:
        """The grids made by the last call, as H×W×3 uint8 arrays; cleared when taken."""
        out = {name: np.asarray(img) for name, img in self.images.items()}
        self.images = {}
        return out

    def _title(self, what: str, epoch: int) -> str:
        m = self.cfg.method
        return f"{what} · {m.name} λ={m.weight:g} seed={self.cfg.seed} · epoch {epoch}"

    def __call__(self, model, epoch: int, final: bool = False) -> dict[str, float]:
        if self.run_dir is None:
            return {}
        run_dir = Path(self.run_dir)
        if self.data.is_image:
            folders = ([(run_dir, "")] if final and self.acfg.at_end else []) + \
                ([(run_dir / "artifacts", f"_epoch{epoch:04d}")] if self.acfg.every_eval else [])
            if folders or self.tracked:
                self.images = self.grids(model, epoch)
            for folder, suffix in folders:
                for name, image in self.images.items():
                    save_png(folder / f"{name}{suffix}.png", image)
        if final and self.acfg.at_end and self.data.test_y is not None:
            self.write_tsne(model, run_dir)
        return {}

    # ------------------------------------------------------------------ image grids

    def _decode(self, model, z: torch.Tensor) -> torch.Tensor:
        return decode(model, z, self.device).reshape(-1, *self.data.item_shape)

    def grids(self, model, epoch: int) -> dict[str, Image.Image]:
        """The labelled sample, reconstruction and interpolation grids of ``model``."""
        out = {"samples": labelled_grid(self._decode(model, self.z), GRID, self._title("samples g(z), z ~ prior", epoch),
                                        ["g(z)"] * math.ceil(NUM_SAMPLES / GRID))}
        test = self.data.test_x
        if len(test) == 0:
            return out
        nrow = min(GRID, len(test))
        n = min(RECON_ROWS * GRID, len(test)) // nrow * nrow
        x = self.data.to_float(test[:n])
        x_hat = self._decode(model, self.encode(model, test[:n]))
        rows = torch.stack([x.reshape(-1, nrow, *x.shape[1:]), x_hat.reshape(-1, nrow, *x.shape[1:])], 1)
        out["reconstructions"] = labelled_grid(rows.reshape(-1, *x.shape[1:]), nrow,
                                               self._title("test reconstructions", epoch),
                                               ["input", "reconstruction"] * (n // nrow))
        if len(self.pairs):
            ts = [f"t={t:.2g}" for t in torch.linspace(0, 1, INTERP_STEPS).tolist()]
            out["interpolations"] = labelled_grid(
                self.interpolations(model), INTERP_STEPS + 2,
                self._title(f"interpolations ({self.cfg.model.prior} prior)", epoch),
                [f"pair {i + 1}" for i in range(len(self.pairs) // 2)], ["input a", *ts, "input b"])
        return out

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
