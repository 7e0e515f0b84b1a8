"""FID and KID on pytorch-fid's Inception features, with cached reference statistics.

* **FID** (Heusel et al. 2017; the paper's Tables 1-5 and Figs. 4, 9, 10): the Fréchet
  distance between Gaussians fitted to the 2048-d pool features of the FID Inception network
  of generated and reference images. The network is pytorch-fid's
  ``InceptionV3([block], use_fid_inception=True)``, and :func:`inception_features` follows its
  ``get_activations`` step for step (uint8 → float32 ``/255`` as ``ToTensor`` does for a PNG,
  the network resizes to 299×299 bilinearly and rescales to [−1, 1], spatial average pooling
  for the smaller ``dims``, float64 array), so the numbers equal those of
  ``python -m pytorch_fid`` on the same images saved as PNG files (tests/test_fid.py). The
  distance itself is :func:`frechet_distance_arrays`, pytorch-fid's formula with the trace
  term from symmetric eigendecompositions instead of ``scipy.linalg.sqrtm`` (same value within
  1e-6 relative, 20-60× faster at 2048 dimensions, and independent of SciPy's ``disp``).
* **KID** (Bińkowski et al. 2018, "Demystifying MMD GANs", Eq. 4): the unbiased estimate of
  MMD² with the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³ on the same features,
  averaged (mean and standard deviation) over random subsets, as in their reference code.
* **Reference statistics** (:class:`FeatureStats`: mean, covariance and the features KID
  needs) of a dataset split are cached, content-addressed and verified on load, by the
  evaluator side (:mod:`harness.evaluators.feature_cache`); this module only computes.

Weights: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``, from a local file
(``eval.fid.weights``, sha256-checked) or from torch hub's cache
``$TORCH_HOME/hub/checkpoints/`` (downloaded there if missing, as pytorch-fid does). Either
way it is read with ``torch.load(..., weights_only=True)`` and handed to pytorch-fid's own
constructor. Missing or wrong weights raise :class:`FIDWeightsError`, one line naming the file.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from harness.atomic import hash_file

if TYPE_CHECKING:
    from pytorch_fid.inception import InceptionV3

# pytorch-fid's FID_WEIGHTS_URL and InceptionV3.BLOCK_INDEX_BY_DIM written out, so that importing the metric does
# not import pytorch-fid and torchvision (start-up time of every command); tests/test_fid.py checks they stay equal
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_FILE = FID_WEIGHTS_URL.rsplit("/", 1)[-1]  # pt_inception-2015-12-05-6726825d.pth
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
FID_DIMS = (64, 192, 768, 2048)  # 64, 192, 768, 2048 (pytorch-fid's --dims)


class FIDWeightsError(RuntimeError):
    """The FID Inception weights are missing or are not the expected file (one-line message)."""


# ---------------------------------------------------------------------------- weights


def sha256_file(path: str | Path) -> str:
    return hash_file(path, "sha256")


def hub_weights_path() -> Path:
    """Where pytorch-fid's download puts the weights: ``<torch hub dir>/checkpoints/``
    (``$TORCH_HOME/hub/checkpoints/`` when TORCH_HOME is set)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


def resolve_fid_weights(weights: str | Path | None = None,
                        expected_sha256: str = FID_WEIGHTS_SHA256) -> tuple[Path, str]:
    """Path and sha256 of the weights file to use.

    ``weights`` given: that file, whose sha256 must equal ``expected_sha256`` (a parameter so
    tests can check the rejection and acceptance with their own files). ``None``: the torch
    hub cache file, downloaded from pytorch-fid's URL if missing; like pytorch-fid, a file
    already in the cache is trusted (its name carries the hash prefix), and a download is
    checked against ``expected_sha256``.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FIDWeightsError(
                f"eval.fid.weights: {path} does not exist; download {FID_WEIGHTS_URL} there, "
                f"or set eval.fid.weights to null to use {hub_weights_path()}")
        digest = sha256_file(path)
        if digest != expected_sha256:
            raise FIDWeightsError(
                f"eval.fid.weights: {path} has sha256 {digest}, expected {expected_sha256} "
                f"(pytorch-fid's {FID_WEIGHTS_FILE})")
        return path, digest
    path = hub_weights_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(FID_WEIGHTS_URL, str(path), hash_prefix=expected_sha256,
                                           progress=False)
        except (OSError, RuntimeError) as err:  # URLError/HTTPError/timeouts, or a bad hash
            lines = str(getattr(err, "reason", err)).strip().splitlines()
            raise FIDWeightsError(
                f"FID Inception weights missing: {path} does not exist and downloading "
                f"{FID_WEIGHTS_URL} failed ({lines[0] if lines else type(err).__name__}); "
                f"put {FID_WEIGHTS_FILE} there (set TORCH_HOME to move it) or set eval.fid.weights"
            ) from None
    return path, sha256_file(path)


_CONSTRUCT_LOCK = threading.Lock()


def build_fid_inception(state_dict: dict, dims: int = 2048) -> "InceptionV3":
    """pytorch-fid's ``InceptionV3`` (FID variant, output block of ``dims``) with ``state_dict``.

    ``fid_inception_v3()`` always fetches its weights through the module-level
    ``load_state_dict_from_url`` (a pickle load, ``weights_only=False``) and has no argument for
    a local file, so for the duration of the constructor that name is pointed at the state dict
    already loaded with ``weights_only=True``; pytorch-fid then builds and loads the network
    itself (strictly: a wrong architecture fails here).
    """
    from pytorch_fid import inception as pfid_inception
    from pytorch_fid.inception import InceptionV3

    if dims not in InceptionV3.BLOCK_INDEX_BY_DIM:
        raise ValueError(f"dims must be one of {FID_DIMS}, got {dims}")
    with _CONSTRUCT_LOCK:
        original = pfid_inception.load_state_dict_from_url
        pfid_inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict
        try:
            net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]], use_fid_inception=True)
        finally:
            pfid_inception.load_state_dict_from_url = original
    return net.eval()


@dataclass
class FIDNetwork:
    """The feature network and what identifies it (for cache keys and provenance)."""

    net: InceptionV3
    dims: int
    weights_path: Path
    weights_sha256: str


def load_fid_network(weights: str | Path | None = None, dims: int = 2048,
                     device: str | torch.device = "cpu",
                     expected_sha256: str = FID_WEIGHTS_SHA256) -> FIDNetwork:
    path, digest = resolve_fid_weights(weights, expected_sha256)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which one, in one line
        raise FIDWeightsError(f"FID Inception weights {path} cannot be read ({type(err).__name__}); "
                              f"delete it and download {FID_WEIGHTS_URL} again") from None
    net = build_fid_inception(state_dict, dims).to(device)
    return FIDNetwork(net, dims, path, digest)


def save_random_fid_weights(path: str | Path, seed: int = 0) -> Path:
    """Write random weights of the FID Inception architecture to ``path``.

    Only for tests and benchmarks on machines without the real weights: values computed with
    them are not comparable with published FIDs. pytorch-fid's FID blocks only override
    ``forward``, so torchvision's ``inception_v3(num_classes=1008, aux_logits=False)`` has
    exactly its parameter names and shapes. Convolutions get He-normal weights (variance
    preserving through ReLUs, so features stay O(1)); batch norms stay at identity.
    """
    import torchvision

    g = torch.Generator().manual_seed(seed)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008,
                                          init_weights=False)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            fan_in = m.weight[0].numel()
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


# ---------------------------------------------------------------------------- features


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Float images as they would be saved to PNG: clamp to [0, 1], ×255, round, uint8."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8)


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    """N×1×H×W → N×3×H×W by repeating the channel (PIL's ``convert('RGB')`` of a grey PNG)."""
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] != 3:
        raise ValueError(f"FID needs 1- or 3-channel images, got shape {tuple(images.shape)}")
    return images


def inception_features(images: torch.Tensor, network: FIDNetwork, batch_size: int = 200,
                       device: str | torch.device = "cpu") -> np.ndarray:
    """Pool features (N × dims, float64) of uint8 N×C×H×W images, as ``get_activations``."""
    if images.dtype != torch.uint8:
        raise TypeError(f"inception_features takes uint8 images (see quantize), got {images.dtype}")
    out = np.empty((len(images), network.dims))
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = as_rgb(images[start : start + batch_size]).to(device)
            batch = batch.to(torch.get_default_dtype()).div(255)  # torchvision's ToTensor
            pred = network.net(batch)[0]
            if pred.size(2) != 1 or pred.size(3) != 1:
                pred = F.adaptive_avg_pool2d(pred, output_size=(1, 1))
            out[start : start + len(batch)] = pred.squeeze(3).squeeze(2).cpu().numpy()
    return out


# ---------------------------------------------------------------------------- statistics


@dataclass
class FeatureStats:
    """Mean and covariance (as pytorch-fid: ``np.mean``, ``np.cov(rowvar=False)``) and the
    features themselves (for KID)."""

    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FeatureStats":
        return cls(np.mean(features, axis=0), np.cov(features, rowvar=False), features)


def sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix through its eigendecomposition
    (eigenvalues below 0, which are rounding errors of a PSD covariance, count as 0)."""
    w, u = np.linalg.eigh((sigma + sigma.T) / 2)
    return (u * np.sqrt(np.clip(w, 0, None))) @ u.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr √(Σ₁Σ₂) for symmetric PSD Σ₁, Σ₂, from two symmetric eigendecompositions.

    Σ₁Σ₂ is similar to the symmetric PSD matrix A = √Σ₁ Σ₂ √Σ₁ (A = √Σ₁ (Σ₁Σ₂) √Σ₁⁻¹ where Σ₁ is
    invertible, and by continuity otherwise), so both have the same non-negative eigenvalues λᵢ
    and tr √(Σ₁Σ₂) = Σᵢ √λᵢ. No general (Schur-based) matrix square root is needed, which is
    what makes this fast and exact for singular covariances (N ≤ d features).
    """
    s1 = sqrt_psd(sigma1)
    a = s1 @ sigma2 @ s1
    lam = np.linalg.eigvalsh((a + a.T) / 2)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def frechet_distance_arrays(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                            sigma2: np.ndarray) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (Heusel et al. 2017, FID):

        ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂)

    in float64 with :func:`trace_sqrt_product`. The value of pytorch-fid's
    ``calculate_frechet_distance`` (which takes ``scipy.linalg.sqrtm(Σ₁Σ₂, disp=False)``, an
    argument SciPy 1.18 removes, and costs 20-95 s at 2048 dimensions on this CPU) within
    1e-6 relative (tests/test_fid.py), in about a second at 2048 dimensions (bench/README.md).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"mismatching shapes: mu {mu1.shape}, {mu2.shape}; sigma {sigma1.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two feature sets (:func:`frechet_distance_arrays` of their statistics)."""
    return frechet_distance_arrays(a.mu, a.sigma, b.mu, b.sigma)


# ---------------------------------------------------------------------------- KID


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² (Bińkowski et al. 2018, Eq. 4) with k(a, b) = (aᵀb/d + 1)³:
    mean of k over distinct pairs within x, plus the same within y, minus twice the mean of
    k over all (x, y) pairs.

    The kernel matrices are formed in float32 (torch, in place) and summed in float64: about
    2.7× faster than float64 numpy on one core (bench/domain_fid.py: it is most of a domain-FID
    evaluation), with an absolute error of each kernel mean below ~1e-6 of the kernel's size,
    far below the spread over subsets that KID reports (tests/test_fid.py checks it against a
    float64 double loop).
    """
    d = x.shape[1]
    m, n = len(x), len(y)
    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    yt = torch.as_tensor(np.ascontiguousarray(y), dtype=torch.float32)

    def kernel_sum(a: torch.Tensor, b: torch.Tensor, off_diagonal: bool) -> float:
        k = a @ b.T
        k.div_(d).add_(1.0).pow_(3)
        total = float(k.sum(dtype=torch.float64))
        return total - float(k.diagonal().sum(dtype=torch.float64)) if off_diagonal else total

    return (kernel_sum(xt, xt, True) / (m * (m - 1)) + kernel_sum(yt, yt, True) / (n * (n - 1))
            - 2 * kernel_sum(xt, yt, False) / (m * n))


def kernel_inception_distance(x: np.ndarray, y: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float, int]:
    """KID: mean and standard deviation of :func:`polynomial_mmd2_unbiased` over ``subsets``
    pairs of random subsets (without replacement) of size m = min(subset_size, |x|, |y|).
    Returns ``(mean, std, m)``.

    When m equals both set sizes every "subset" is the whole set in another order and the
    estimate is permutation invariant, so it is computed once (std 0).
    """
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError(f"KID needs at least 2 items per set, got {len(x)} and {len(y)}")
    if m == len(x) == len(y):
        return polynomial_mmd2_unbiased(x, y), 0.0, m
    rng = np.random.default_rng(seed)
    values = [polynomial_mmd2_unbiased(x[rng.choice(len(x), m, replace=False)],
                                       y[rng.choice(len(y), m, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values)), m
