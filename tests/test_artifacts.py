"""Reconstruction error (harness/metrics/recon.py, evaluator ``recon``) and the ``artifacts``
evaluator (image grids, interpolations, t-SNE) on a tiny linear autoencoder."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from harness.archs import AutoEncoder
from harness.config import RunConfig
from harness.datasets import DataBundle
from harness.evaluators import build_evaluator, make_context
from harness.evaluators.artifacts import LABEL_GAP, grid_scale, labelled_grid, raw_grid
from harness.metrics.recon import reconstruction_error, summed_squared_error
from harness.priors import build_prior

D = 6


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _images(n, c=1, size=28, seed=0):
    return torch.randint(0, 256, (n, c, size, size), generator=_gen(seed), dtype=torch.uint8)


def _model(c=1, size=28, d=D):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(c * size * size, d))
    dec = nn.Sequential(nn.Linear(d, c * size * size), nn.Sigmoid(), nn.Unflatten(1, (c, size, size)))
    return AutoEncoder(enc, dec).eval()


def _cfg(prior="sphere"):
    cfg = RunConfig()
    cfg.model.latent_dim, cfg.model.prior = D, prior
    cfg.eval.artifacts.tsne_points = 30
    return cfg


def _build(name, data, prior_name="sphere", run_dir=None, cfg=None):
    cfg = cfg or _cfg(prior_name)
    return build_evaluator(name, make_context(cfg, data, build_prior(prior_name, D), "cpu", run_dir))


# ---------------------------------------------------------------- reconstruction error


def test_summed_squared_error_by_hand():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 1.0]]])
    x_hat = torch.tensor([[[1.0, 0.0], [3.0, 3.0]], [[1.0, 1.0], [0.0, 1.0]]])
    assert summed_squared_error(x, x_hat).tolist() == [4.0 + 1.0, 1.0 + 1.0]


@pytest.mark.parametrize("prior_name", ["sphere", "gaussian"])
def test_recon_evaluator_matches_a_hand_computation(prior_name):
    test = _images(7, seed=1)
    data = DataBundle("rand", _images(5), test)
    model = _model()
    out = _build("recon", data, prior_name)(model, 0)
    assert set(out) == {"test_recon"}
    xs = test.double().numpy() / 255.0
    total = 0.0
    with torch.no_grad():
        for i in range(7):
            h = model.encoder(test[i : i + 1].float() / 255)
            z = F.normalize(h, dim=-1) if prior_name == "sphere" else h
            x_hat = model.decoder(z)[0].double().numpy()
            total += sum(float(v) ** 2 for v in (xs[i] - x_hat).ravel())
    assert out["test_recon"] == pytest.approx(total / 7, rel=1e-5)
    prior = build_prior(prior_name, D)
    small_batches = reconstruction_error(model, test, data.to_float, prior.project, "cpu", batch_size=2)
    assert small_batches == pytest.approx(out["test_recon"], rel=1e-6)


# ---------------------------------------------------------------- artifacts


def _size(path):
    with Image.open(path) as im:
        return im.size  # (width, height)


def _grid_part(path, cols, rows, size):
    """The image area of a labelled grid: the bottom-right (cols, rows) cells, enlarged."""
    s = grid_scale(size)
    gw, gh = (cols * (size + 2) + 2) * s, (rows * (size + 2) + 2) * s
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"))
    h, w = a.shape[:2]
    assert w >= gw + LABEL_GAP + 20 and h >= gh + LABEL_GAP + 20  # room for labels and the title
    return a[h - LABEL_GAP - gh : h - LABEL_GAP, w - LABEL_GAP - gw : w - LABEL_GAP]


def test_grid_scale_makes_digits_large_enough():
    assert (grid_scale(28), grid_scale(32), grid_scale(64), grid_scale(128)) == (4, 3, 2, 1)


def test_final_artifacts_files_and_sizes(tmp_path):
    labels = torch.arange(40) % 4
    data = DataBundle("rand", _images(20), _images(40, seed=2), torch.arange(20) % 4, labels)
    ev = _build("artifacts", data, run_dir=tmp_path)
    assert ev(_model(), 3, final=False) == {}  # every_eval is off: nothing yet
    assert not any(tmp_path.iterdir())
    assert ev(_model(), 5, final=True) == {}
    model = _model()
    expected = raw_grid(ev._decode(model, ev.z), 8).repeat(4, 0).repeat(4, 1)  # nearest ×4
    assert np.array_equal(_grid_part(tmp_path / "samples.png", 8, 8, 28), expected)
    _grid_part(tmp_path / "reconstructions.png", 8, 8, 28)  # 4 × (originals, recons)
    _grid_part(tmp_path / "interpolations.png", 12, 8, 28)  # 8 pairs, 10 steps + ends
    assert set(ev.take_images()) == {"samples", "reconstructions", "interpolations"} and ev.take_images() == {}
    assert _size(tmp_path / "tsne.png")[0] > 100
    with open(tmp_path / "tsne.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30
    assert [int(r["label"]) for r in rows] == labels[:30].tolist()
    assert all(np.isfinite(float(r["x"])) and np.isfinite(float(r["y"])) for r in rows)
    assert not (tmp_path / "artifacts").exists()


def test_every_eval_writes_epoch_suffixed_grids_and_handles_rgb(tmp_path):
    data = DataBundle("rgb", _images(10, c=3, size=32), _images(12, c=3, size=32, seed=3))
    cfg = _cfg()
    cfg.eval.artifacts.every_eval, cfg.eval.artifacts.at_end = True, False
    ev = _build("artifacts", data, cfg=cfg, run_dir=tmp_path)
    ev(_model(3, 32), 2)
    folder = tmp_path / "artifacts"
    assert sorted(p.name for p in folder.iterdir()) == [
        "interpolations_epoch0002.png", "reconstructions_epoch0002.png", "samples_epoch0002.png",
    ]
    _grid_part(folder / "reconstructions_epoch0002.png", 8, 2, 32)  # 8 of 12 test images
    _grid_part(folder / "interpolations_epoch0002.png", 12, 6, 32)  # 6 pairs
    assert not (tmp_path / "samples.png").exists()  # at_end is off; no labels: no t-SNE
    ev(_model(3, 32), 4, final=True)
    assert not (tmp_path / "samples.png").exists() and (folder / "samples_epoch0004.png").exists()


@pytest.mark.parametrize("prior_name", ["sphere", "gaussian"])
def test_interpolation_rows_start_and_end_at_the_pair(prior_name):
    data = DataBundle("rand", _images(4), _images(16, seed=4))
    ev = _build("artifacts", data, prior_name)
    model = _model()
    rows = ev.interpolations(model).reshape(8, 12, 1, 28, 28)
    xa, xb = data.test_x[ev.pairs[0::2]], data.test_x[ev.pairs[1::2]]
    assert torch.equal(rows[:, 0], xa.float() / 255) and torch.equal(rows[:, -1], xb.float() / 255)
    with torch.no_grad():  # t = 0 and t = 1 decode the pair's own latents
        za, zb = ev.encode(model, xa), ev.encode(model, xb)
        assert torch.allclose(rows[:, 1], model.decoder(za), atol=1e-6)
        assert torch.allclose(rows[:, -2], model.decoder(zb), atol=1e-6)
        mid = ev.prior.interpolate(za, zb, torch.tensor(4 / 9))
        assert torch.allclose(rows[:, 5], model.decoder(mid), atol=1e-6)


def test_labels_are_drawn_left_of_rows_and_above_columns():
    """Row labels darken the margin left of their row only; column labels the band above."""
    images = torch.zeros(4, 1, 28, 28)  # black images on a white page
    bare = np.asarray(labelled_grid(images, 2, "t", ["", ""]))
    labelled = np.asarray(labelled_grid(images, 2, "t", ["reconstruction", ""], ["input a", "input b"]))
    h, w = labelled.shape[:2]
    assert w > bare.shape[1] and h > bare.shape[0]  # room for the longer row label and the column line
    gh = (2 * 30 + 2) * 4
    margin = labelled[h - LABEL_GAP - gh :, : w - LABEL_GAP - (2 * 30 + 2) * 4]  # left of the images
    ink = (margin < 128).any(axis=(1, 2))
    first_row = slice(2 * 4, 30 * 4)
    assert ink[first_row].any() and not ink[30 * 4 + 8 :].any()  # only the first row is labelled
    band = labelled[h - LABEL_GAP - gh - 20 : h - LABEL_GAP - gh - 2, w - LABEL_GAP - (2 * 30 + 2) * 4 :]
    assert (band < 128).any()  # the column labels


def test_no_run_dir_or_vectors(tmp_path):
    data = DataBundle("rand", _images(4), _images(16, seed=4))
    assert _build("artifacts", data)(_model(), 1, final=True) == {}  # no folder: nothing to write
    vec = DataBundle("vec", torch.randn(10, 5), torch.randn(30, 5), None, torch.arange(30) % 3)
    torch.manual_seed(0)
    vmodel = AutoEncoder(nn.Linear(5, D), nn.Linear(D, 5)).eval()
    _build("artifacts", vec, run_dir=tmp_path)(vmodel, 1, final=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tsne.csv", "tsne.png"]  # no image grids
