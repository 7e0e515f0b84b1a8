"""Helpers shared by the image datasets.

Every image loader returns uint8 N×C×H×W tensors held in memory (``DataBundle``), so the
training loop only indexes tensors. The helpers here apply the common ``data`` options
(``train_limit``/``test_limit`` keep the first N items, ``image_size`` resizes with
antialiasing), turn third-party errors into the one-line :class:`DatasetMissing`, and decode
folders of image files once into a ``.pt`` cache so later runs load in seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image
from tqdm import tqdm

from harness.atomic import atomic_write
from harness.datasets._base import DataBundle, DatasetMissing

log = logging.getLogger(__name__)

# torchvision.datasets.folder.IMG_EXTENSIONS, written out so that importing the datasets does not import
# torchvision (start-up time of every command; tests/test_datasets.py checks it stays equal)
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def one_line(err: BaseException | str) -> str:
    """An error message on one line: its first non-empty line, and its last when they differ
    (torchvision's download errors say what failed first and why last:
    ``Error downloading x.gz: ... <urlopen error [Errno -2] Name or service not known>``)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__ if isinstance(err, BaseException) else ""
    first, last = lines[0], lines[-1]
    return first if len(lines) == 1 else f"{first.rstrip(':')}: ... {last}"


def first(x: torch.Tensor | None, limit: int | None) -> torch.Tensor | None:
    """The first ``limit`` items of ``x`` (all of them when ``limit`` is None)."""
    if x is None or limit is None:
        return x
    return x[:limit]


def resize_images(x: torch.Tensor, size: int | None, chunk: int = 2048) -> torch.Tensor:
    """Resize a uint8 N×C×H×W batch to size×size with antialiasing (bilinear).

    Works in chunks so that large sets never need a second full-size temporary. Inputs are
    square in every dataset here (CelebA and CelebA-HQ are centre-cropped first), so the
    aspect ratio is kept.
    """
    from torchvision.transforms.v2 import functional as TF
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=x.dtype)
    for start in range(0, x.shape[0], chunk):
        out[start : start + chunk] = TF.resize(x[start : start + chunk], [size, size], antialias=True)
    return out


def make_bundle(
    name: str,
    data_cfg,
    train_x: torch.Tensor,
    test_x: torch.Tensor,
    train_y: torch.Tensor | None = None,
    test_y: torch.Tensor | None = None,
    default_size: int | None = None,
) -> DataBundle:
    """Apply the limits (first N items), then resize to ``data_cfg.image_size`` (or
    ``default_size``), and pack the splits as contiguous tensors."""
    size = data_cfg.image_size or default_size
    train_x = resize_images(first(train_x, data_cfg.train_limit), size).contiguous()
    test_x = resize_images(first(test_x, data_cfg.test_limit), size).contiguous()
    train_y = first(train_y, data_cfg.train_limit)
    test_y = first(test_y, data_cfg.test_limit)
    return DataBundle(
        name=name,
        train_x=train_x,
        test_x=test_x,
        train_y=None if train_y is None else train_y.long().contiguous(),
        test_y=None if test_y is None else test_y.long().contiguous(),
    )


def count_key(n: int, total: int) -> str:
    """The part of a cache file name that says how many items it holds."""
    return "all" if n >= total else f"first{n}"


def load_rgb(path: str | Path) -> torch.Tensor:
    """Decode one image file with PIL (as torchvision's folder datasets do) to uint8 3×H×W."""
    from torchvision.transforms.v2 import functional as TF
    with Image.open(path) as im:
        return TF.pil_to_tensor(im.convert("RGB"))


def centre_square(img: torch.Tensor, side: int | None = None) -> torch.Tensor:
    """Centre crop to side×side (default: the shorter edge)."""
    from torchvision.transforms.v2 import functional as TF
    if side is None:
        side = min(img.shape[-2:])
    return TF.center_crop(img, [side, side])


def decode_files(
    paths: Sequence[str | Path],
    size: int,
    prepare: Callable[[torch.Tensor], torch.Tensor] = centre_square,
    desc: str = "decoding images",
) -> torch.Tensor:
    """Decode image files into one uint8 N×3×size×size tensor, with a progress bar.

    ``prepare`` crops each decoded 3×H×W image to a square; it is then resized to
    size×size with antialiasing. An unreadable file raises a one-line DatasetMissing.
    """
    from torchvision.transforms.v2 import functional as TF
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    for i, path in enumerate(tqdm(paths, desc=desc, unit="img", mininterval=2.0, disable=None)):
        try:
            img = load_rgb(path)
        except OSError as e:
            raise DatasetMissing(f"cannot read image {path} ({one_line(e)}); restore the file from the original dataset") from None
        out[i] = TF.resize(prepare(img), [size, size], antialias=True)
    return out


def load_cache(path: Path) -> dict | None:
    """The dict of tensors saved at ``path`` (``torch.load(..., weights_only=True)``), or
    None when there is none or it cannot be read (it is then rebuilt by the caller)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:  # a foreign or damaged file: rebuild it
        log.warning("ignoring unreadable dataset cache %s (%s); rebuilding it", path, one_line(e))
        return None


def cached(path: Path, build: Callable[[], dict]) -> dict:
    """Load the dict of tensors at ``path``, or build it and save it there atomically.

    A root that cannot be written only costs the cache (a warning is logged).
    """
    obj = load_cache(path)
    if obj is not None:
        return obj
    obj = build()
    try:
        atomic_write(path, lambda f: torch.save(obj, f), mode="wb")
        log.info("cached decoded images to %s", path)
    except OSError as e:
        log.warning("could not write dataset cache %s (%s); the images will be decoded again next time", path, one_line(e))
    return obj
