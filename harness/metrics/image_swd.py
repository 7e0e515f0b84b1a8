"""Image-space sliced Wasserstein distance of Laplacian-pyramid patches (the paper's Fig. 2 right).

Karras et al. (2018, "Progressive Growing of GANs", appendix D and their
``metrics/sliced_wasserstein.py``) compare two image sets through local patches: build a
Laplacian pyramid of every image, take random 7×7 neighbourhoods (128 per image) at each level,
normalise each colour channel of the descriptors to zero mean and unit variance over the set,
and average, over 512 random directions, the 1-D Wasserstein-1 distance between the projected
descriptors of the two sets (the mean absolute difference of the sorted projections). Values
are multiplied by 1e3; one value per pyramid level and their mean.

Two modes, because the MoCA paper measured with a re-implementation whose scale differs:

``pggan``   the reference conventions: patch positions drawn independently for every patch of
            every image; directions of unit L2 length (4 repeats of 128 in the original; the
            mean over all 512 is the same); pyramid ``pyr_down``/``pyr_up`` as cv2 with the
            5×5 binomial kernel, mirror borders, zero-insertion upsampling (kernel × 4);
            descriptor std with ddof = 0; any channel count (descriptors have C·49 components).
``swd_pytorch``  koshian2/swd-pytorch (``swd.py``), the package the paper used: one set of 128
            positions per level shared by all images of both sets; each direction scaled so its
            components have unit (unbiased) standard deviation, i.e. length ≈ sqrt(147) ≈ 12
            instead of 1, so **values are about 12× those of ``pggan``**; zero-padded
            convolutions and nearest-neighbour upsampling in the pyramid; unbiased descriptor
            std; exactly 3 channels (grayscale images are repeated to 3 channels).

Pyramid depth: levels at resolutions H, ceil(H/2), ... down to 16 (``pggan``: while ≥ 16;
``swd_pytorch``: rint(log2(H // 16)) + 1 levels). The two rules agree on 32 (32, 16), 64
(64, 32, 16) and 256 (256 ... 16). 28×28 (MNIST) is not a power of 2 and its next level, 14,
is below 16, so both rules give a single level: the 28×28 image itself (no Laplacian band).
Images smaller than 16 pixels also get that one level. The last level is the low-pass
(Gaussian) image, the others are band-pass differences, as in both references.

Both references add nothing / 1e-8 to the descriptor std; here 1e-8 is added in both modes so
that a set of constant images (a decoder at initialisation) gives finite values.

SWD depends on the number of images (see swd-pytorch's README): compare sets of the same,
fixed size; :func:`image_swd` requires equal sizes. Memory: descriptors are built one pyramid
level at a time from chunks of images, and projected in chunks of directions, so the peak is
one level's descriptors of both sets (10,000 32×32 RGB images: 2 × 10,000·128 × 147 float32
≈ 1.5 GB) plus a few hundred MB of projections. All randomness comes from ``seed`` through
:func:`harness.seeding.derive_seed` and does not depend on the chunk sizes.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from harness.metrics.latent import sort_rows
from harness.seeding import make_generator

MODES = ("pggan", "swd_pytorch")
PATCH = 7  # neighbourhood size (both references)
PATCHES_PER_IMAGE = 128
DIRECTIONS = 512  # 4 × 128 (pggan) = 128 × 4 (swd-pytorch)
MIN_RESOLUTION = 16
EPS = 1e-8


def pyramid_resolutions(size: int, mode: str = "pggan") -> list[int]:
    """Side lengths of the pyramid levels of a ``size``×``size`` image (see module docstring)."""
    _check_mode(mode)
    if mode == "swd_pytorch":
        depth = int(np.rint(np.log2(size // MIN_RESOLUTION))) if size >= MIN_RESOLUTION else 0
        out = [size]
        for _ in range(depth):
            out.append(math.ceil(out[-1] / 2))
        return out
    out, r = [], size
    while r >= MIN_RESOLUTION:
        out.append(r)
        r = math.ceil(r / 2)
    return out or [size]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 exactly as torchvision's ``save_image`` quantises."""
    return images.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------- pyramid


def _kernel(channels: int, device, scale: float = 1.0) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device)
    k = torch.outer(k, k) / 256.0 * scale
    return k.expand(channels, 1, 5, 5).contiguous()


def _blur(x: torch.Tensor, mode: str, scale: float = 1.0, stride: int = 1) -> torch.Tensor:
    """Depthwise 5×5 binomial filter; mirror borders (scipy ``mode='mirror'`` = torch
    ``reflect``) for pggan, zero padding for swd_pytorch."""
    c = x.shape[1]
    if mode == "pggan":
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), _kernel(c, x.device, scale), stride=stride, groups=c)
    return F.conv2d(x, _kernel(c, x.device, scale), padding=2, stride=stride, groups=c)


def pyr_down(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Blur and keep every other pixel (ceil(H/2) × ceil(W/2))."""
    return _blur(x, mode, stride=2)


def pyr_up(x: torch.Tensor, mode: str, size: tuple[int, int]) -> torch.Tensor:
    """Upsample to ``size`` (≤ 2× each side) and blur: pggan inserts zeros and scales the kernel
    by 4 (cv2.pyrUp); swd_pytorch repeats pixels (nearest) and blurs with the plain kernel."""
    n, c, h, w = x.shape
    if mode == "pggan":
        up = x.new_zeros(n, c, *size)
        up[:, :, ::2, ::2] = x
        return _blur(up, mode, scale=4.0)
    up = F.interpolate(x, scale_factor=2, mode="nearest")[:, :, : size[0], : size[1]]
    return _blur(up, mode)


def laplacian_pyramid(x: torch.Tensor, num_levels: int, mode: str = "pggan") -> list[torch.Tensor]:
    """Band-pass levels G_l − up(G_{l+1}) for l < num_levels − 1, then the low-pass G_last."""
    gauss = [x]
    for _ in range(num_levels - 1):
        gauss.append(pyr_down(gauss[-1], mode))
    out = [g - pyr_up(g2, mode, g.shape[-2:]) for g, g2 in zip(gauss[:-1], gauss[1:])]
    return out + [gauss[-1]]


# ---------------------------------------------------------------------------- descriptors


def _patches(level: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """7×7 neighbourhoods with top-left corners (ys, xs), each (n, P) or (1, P) (shared):
    returns (n·P, C, 7, 7)."""
    n, c = level.shape[:2]
    ys, xs = ys.expand(n, -1), xs.expand(n, -1)
    off = torch.arange(PATCH, device=level.device)
    iy = (ys[:, :, None] + off)[:, :, :, None]  # (n, P, 7, 1)
    ix = (xs[:, :, None] + off)[:, :, None, :]  # (n, P, 1, 7)
    img = torch.arange(n, device=level.device)[:, None, None, None]
    patches = level[img, :, iy, ix]  # advanced indices first: (n, P, 7, 7, C)
    return patches.permute(0, 1, 4, 2, 3).reshape(-1, c, PATCH, PATCH)


def _corners(mode: str, n: int, h: int, w: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left patch corners. pggan: per image and patch, uniform over the (h−6)(w−6) valid
    positions (their randint(3, S−3) centres); swd_pytorch: randperm of the valid positions,
    first 128, the same for every image."""
    if mode == "pggan":
        ys = torch.randint(0, h - PATCH + 1, (n, PATCHES_PER_IMAGE), generator=generator)
        xs = torch.randint(0, w - PATCH + 1, (n, PATCHES_PER_IMAGE), generator=generator)
        return ys, xs
    idx = torch.randperm((h - PATCH + 1) * (w - PATCH + 1), generator=generator)[:PATCHES_PER_IMAGE]
    return (idx // (w - PATCH + 1))[None], (idx % (w - PATCH + 1))[None]


def _prepare(images: torch.Tensor, mode: str) -> torch.Tensor:
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"image_swd needs square N×C×H×W images, got shape {tuple(images.shape)}")
    c = images.shape[1]
    if mode == "swd_pytorch":
        if c == 1:
            images = images.expand(-1, 3, -1, -1)
        elif c != 3:
            raise ValueError(f"swd_pytorch mode takes 1- or 3-channel images, got {c} channels")
    if images.shape[-1] < PATCH:
        raise ValueError(f"images must be at least {PATCH} pixels wide, got {images.shape[-1]}")
    return images


def _level_descriptors(images, level: int, num_levels: int, mode: str, corners, batch_size: int, device) -> torch.Tensor:
    """Normalised descriptors (n·P, C·49) of pyramid level ``level`` of all ``images``."""
    ys, xs = corners
    per_image, c = ys.shape[1], images.shape[1]
    desc = torch.empty(len(images) * per_image, c, PATCH, PATCH, device=device)
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        for _ in range(level):
            x = pyr_down(x, mode)
        if level < num_levels - 1:
            x = x - pyr_up(pyr_down(x, mode), mode, x.shape[-2:])
        sel = slice(i, i + len(x)) if ys.shape[0] > 1 else slice(None)
        desc[i * per_image : (i + len(x)) * per_image] = _patches(x, ys[sel].to(device), xs[sel].to(device))
    dims = (0, 2, 3)
    if mode == "pggan":
        std, mean = torch.std_mean(desc, dim=dims, keepdim=True, correction=0)
    else:
        std, mean = torch.std_mean(desc, dim=dims, keepdim=True)
    desc.sub_(mean).div_(std + EPS)
    return desc.reshape(len(desc), -1)


def _directions(mode: str, dim: int, generator: torch.Generator) -> torch.Tensor:
    d = torch.randn(dim, DIRECTIONS, generator=generator)
    if mode == "pggan":
        return d / d.norm(dim=0, keepdim=True)
    return d / d.std(dim=0, keepdim=True)


def sorted_projections(x: torch.Tensor, directions: torch.Tensor, max_elements: int = 1 << 24) -> torch.Tensor:
    """(directions, N): row k the sorted projections x·θ_k, computed in chunks of directions as
    :func:`sliced_w1` does (the same values)."""
    directions = directions.to(x.device, x.dtype)
    out = torch.empty(directions.shape[1], len(x), device=x.device, dtype=x.dtype)
    step = _direction_step(directions, len(x), max_elements)
    for j in range(0, directions.shape[1], step):
        out[j : j + step] = sort_rows(directions[:, j : j + step].T @ x.T)
    return out


def _direction_step(directions: torch.Tensor, n: int, max_elements: int) -> int:
    return max(1, min(directions.shape[1], max_elements // max(1, n)))


def sliced_w1(a: torch.Tensor, b: torch.Tensor | None, directions: torch.Tensor, max_elements: int = 1 << 24,
              b_sorted: torch.Tensor | None = None) -> float:
    """Mean over directions (columns) of the mean |sorted(a·θ) − sorted(b·θ)|, i.e. the average
    1-D Wasserstein-1 distance between equal-size uniform point sets; directions are processed
    in chunks so that a chunk's projections hold at most ``max_elements`` values per set.
    ``b_sorted``: b's :func:`sorted_projections` computed before (``b`` is then not used); the
    value is bitwise the same as from ``b``."""
    if b_sorted is None and a.shape != b.shape:
        raise ValueError(f"descriptor sets differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if b_sorted is not None and b_sorted.shape != (directions.shape[1], len(a)):
        raise ValueError(f"b_sorted has shape {tuple(b_sorted.shape)}; expected {(directions.shape[1], len(a))}")
    directions = directions.to(a.device, a.dtype)
    step = _direction_step(directions, len(a), max_elements)
    total = 0.0
    for j in range(0, directions.shape[1], step):
        d = directions[:, j : j + step]
        pa = sort_rows(d.T @ a.T)  # (k, M): a row per direction
        pb = sort_rows(d.T @ b.T) if b_sorted is None else b_sorted[j : j + step]
        total += float(pa.sub_(pb).abs_().sum(dtype=torch.float64))
        del pa, pb
    return total / (len(a) * directions.shape[1])


def image_swd(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    mode: str = "pggan",
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    reference: ReferenceCache | None = None,
) -> dict[str, float]:
    """Laplacian-pyramid sliced Wasserstein distance ×1e3 between two equal-size image sets.

    ``images_*``: N×C×H×W, uint8 in [0, 255] or float in [0, 1], square, C = 1 or 3 (any C in
    ``pggan`` mode). Returns ``{"res<H>": value per level, ..., "mean": mean over levels}``.
    ``seed`` fixes patch positions and directions (the same seed gives the same numbers);
    ``batch_size`` (images per pyramid chunk) and ``device`` (default: that of ``images_a``)
    change memory and speed, not the value beyond float rounding. See the module docstring for
    the two modes (``swd_pytorch`` values are about 12× those of ``pggan``).

    ``reference``: a :class:`ReferenceCache` kept by a caller that compares many sets with one
    ``images_b`` (an evaluator, every epoch): ``images_b``'s sorted projections are computed on
    the first call and reused, which halves the work of the later calls; the values are bitwise
    those computed without it.
    """
    _check_mode(mode)
    if images_a.shape != images_b.shape:
        raise ValueError(
            f"image_swd compares sets of the same size and shape (SWD depends on the count): "
            f"{tuple(images_a.shape)} vs {tuple(images_b.shape)}"
        )
    device = torch.device(device) if device is not None else images_a.device
    a, b = _prepare(images_a, mode), _prepare(images_b, mode)
    n, _, h, _ = a.shape
    sizes = pyramid_resolutions(h, mode)
    cached = reference.levels(images_b, mode, seed, device) if reference is not None else None
    out = {}
    with torch.no_grad():
        for level, size in enumerate(sizes):
            g = lambda *names: make_generator(seed, "image_swd", mode, level, *names)  # noqa: E731
            if mode == "pggan":
                corners_a = _corners(mode, n, size, size, g("positions", "a"))
                corners_b = _corners(mode, n, size, size, g("positions", "b"))
            else:
                corners_a = corners_b = _corners(mode, n, size, size, g("positions"))
            da = _level_descriptors(a, level, len(sizes), mode, corners_a, batch_size, device)
            b_sorted = cached.get(level) if cached is not None else None
            db = None if b_sorted is not None else _level_descriptors(b, level, len(sizes), mode, corners_b,
                                                                     batch_size, device)
            dirs = _directions(mode, da.shape[1], g("directions"))
            if cached is not None and b_sorted is None and reference.fits(len(db) * DIRECTIONS * db.element_size()):
                b_sorted = cached[level] = sorted_projections(db, dirs)
            out[f"res{size}"] = 1e3 * sliced_w1(da, db, dirs, b_sorted=b_sorted)
            del da, db
    out["mean"] = float(np.mean([out[f"res{s}"] for s in sizes]))
    return out


class ReferenceCache:
    """The sorted projections of one reference image set, per pyramid level, kept between
    :func:`image_swd` calls (see its ``reference``). Each call checks that ``images_b``, the mode,
    the seed and the device are those the cache holds (a SHA-256 of the images' bytes) and starts
    afresh when not, so a stale cache can only cost time, never change a value. At most
    ``max_bytes`` are kept (default 512 MiB: 500 MNIST images take 131 MB; the paper's 10,000
    CIFAR-10 images, 2.6 GB a level, are recomputed every call)."""

    def __init__(self, max_bytes: int = 512 << 20):
        self.max_bytes = max_bytes
        self._key: tuple | None = None
        self._levels: dict[int, torch.Tensor] = {}

    def levels(self, images: torch.Tensor, mode: str, seed: int, device: torch.device) -> dict[int, torch.Tensor]:
        data = images.detach().cpu().contiguous()
        digest = hashlib.sha256(data.numpy().tobytes()).hexdigest()
        key = (digest, tuple(data.shape), str(data.dtype), mode, int(seed), str(device))
        if key != self._key:
            self._key, self._levels = key, {}
        return self._levels

    def fits(self, nbytes: int) -> bool:
        return sum(t.numel() * t.element_size() for t in self._levels.values()) + nbytes <= self.max_bytes


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown image SWD mode {mode!r}; allowed: {', '.join(MODES)}")
