"""CelebA-HQ (Karras et al., 2018): 30,000 high-resolution faces, split 27k/3k, resized.

The paper trains on CelebA-HQ at 256×256 and smaller (Figs. 5, 9, Table 4) with a 27k/3k
split. There is no torchvision class and no automatic download: put the images (any of
torchvision's image extensions, flat or in sub-folders as for ``ImageFolder``) under
``<data root>/celeba_hq/`` (:func:`harness.datasets.data_root`).

Split rule: files are sorted by their path relative to that folder; with the full 30,000
images (or more) the first 27,000 are training and the rest test, as in the paper. A smaller
folder keeps the same 9:1 ratio: ``floor(0.9 n)`` training images (at least one image on each
side), so CPU-scale copies behave like the full set. Images are centre-cropped to a square
(a no-op for CelebA-HQ) and resized with antialiasing to ``data.image_size`` (default 256).
There are no labels.

Each split is decoded once and cached as a uint8 tensor in
``<data.root>/celeba_hq_cache/<split>_<n>files_<size>px_<count>.pt``; the number of files in
the key rebuilds the cache when the folder changes size.
"""

from __future__ import annotations

from pathlib import Path

from harness.datasets._base import DATASETS, DataBundle, DatasetKind, DatasetMissing, data_root, offline_hint, square_images
from harness.datasets._images import (
    IMAGE_EXTENSIONS,
    cached,
    count_key,
    decode_files,
    first,
    load_cache,
    make_bundle,
)

FOLDER = "celeba_hq"
FULL_SIZE, FULL_TRAIN = 30_000, 27_000
DEFAULT_SIZE = 256


def split_sizes(n: int) -> tuple[int, int]:
    """(train, test) sizes for a folder of ``n`` images: 27,000 / rest for the full set, 9:1 below."""
    if n < 2:
        raise ValueError(f"need at least 2 images for a train/test split, got {n}")
    n_train = FULL_TRAIN if n >= FULL_SIZE else min(max(n * 9 // 10, 1), n - 1)
    return n_train, n - n_train


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, hidden entries skipped), sorted by relative path."""
    files = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def cache_path(root: Path, split: str, n_files: int, size: int, count: str) -> Path:
    return root / f"{FOLDER}_cache" / f"{split}_{n_files}files_{size}px_{count}.pt"


def _load_split(root: Path, split: str, files: list[Path], n_files: int, limit: int | None, size: int):
    n = len(files) if limit is None else min(limit, len(files))
    for count in ("all", count_key(n, len(files))):  # a cache of the whole split serves every limit
        obj = load_cache(cache_path(root, split, n_files, size, count))
        if obj is not None:
            return first(obj["images"], n)

    def build() -> dict:
        return {"images": decode_files(files[:n], size, desc=f"CelebA-HQ {split}")}

    return cached(cache_path(root, split, n_files, size, count_key(n, len(files))), build)["images"]


@DATASETS.register("celeba_hq", kind=DatasetKind(image=True, class_labels=False, shape=square_images(3, DEFAULT_SIZE)))
def load_celeba_hq(data_cfg, seed: int = 0) -> DataBundle:
    root, size = data_root(data_cfg), data_cfg.image_size or DEFAULT_SIZE
    folder = root / FOLDER
    files = list_images(folder) if folder.is_dir() else []
    if len(files) < 2:
        raise DatasetMissing(
            f"CelebA-HQ not found: {len(files)} image files under {folder} (need at least 2); there is no "
            f"automatic download: put the CelebA-HQ images (e.g. 00000.png ... 29999.png) in that folder, or "
            + offline_hint(f"a folder holding {FOLDER}/", lead=False)
        )
    n_train, _ = split_sizes(len(files))
    train_x = _load_split(root, "train", files[:n_train], len(files), data_cfg.train_limit, size)
    test_x = _load_split(root, "test", files[n_train:], len(files), data_cfg.test_limit, size)
    return make_bundle("celeba_hq", data_cfg, train_x, test_x)
