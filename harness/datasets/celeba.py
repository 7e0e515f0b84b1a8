"""CelebA (Liu et al., 2015), aligned faces, centre-cropped to 140×140 and resized to 64×64.

The paper (Sec. 5, Tables 1, 3, 5) follows the WAE preprocessing: a 140×140 centre crop of
the 178×218 aligned images, resized to 64×64, about 180k training / 20k test images.
torchvision's ``CelebA`` has three official partitions (``list_eval_partition.txt``):
train 162,770, valid 19,867, test 19,962. To match the paper's ~180k/20k we train on
**train + valid (182,637 images, in that order)** and test on **test (19,962)**.

Labels (``train_y``/``test_y``) are the 40 binary attributes, int64 N×40 in {0, 1}.

The images are JPEG files, so each part is decoded once (PIL, as torchvision does), cropped
and resized with antialiasing, and cached as a uint8 tensor in
``<data.root>/celeba/moca_cache/<part>_crop140_<size>px_<count>.pt`` (count ``all`` or
``firstN`` when a limit asks for fewer); later runs load the cache without touching the image
files. Delete that folder after changing the images.
"""

from __future__ import annotations

from pathlib import Path

import torch

from harness.datasets._base import DATASETS, DataBundle, DatasetKind, DatasetMissing, data_root, offline_hint, square_images
from harness.datasets._images import (
    cached,
    centre_square,
    count_key,
    decode_files,
    first,
    load_cache,
    make_bundle,
    one_line,
)

CROP = 140
DEFAULT_SIZE = 64
PARTS = {"train": ("train", "valid"), "test": ("test",)}


def cache_path(root: Path, part: str, size: int, count: str) -> Path:
    from torchvision.datasets import CelebA
    return root / CelebA.base_folder / "moca_cache" / f"{part}_crop{CROP}_{size}px_{count}.pt"


def _open(root: Path, split: str, download: bool) -> CelebA:
    from torchvision.datasets import CelebA
    folder = root / CelebA.base_folder
    try:
        return CelebA(str(root), split=split, target_type="attr", download=download)
    except (RuntimeError, OSError) as e:
        if download:
            raise DatasetMissing(
                f"CelebA not found under {folder} and the download failed ({one_line(e)}); "
                + offline_hint(f"a folder holding {CelebA.base_folder}/ (img_align_celeba/ and the annotation files)")
            ) from None
        raise DatasetMissing(
            f"CelebA not found or incomplete under {folder} (needs img_align_celeba/ and the annotation "
            "files with torchvision's md5s); set data.download=true to fetch it on first use (needs internet and "
            f"gdown), or {offline_hint(f'a folder holding {CelebA.base_folder}/ with the extracted dataset', lead=False)}"
        ) from None


def load_part(root: Path, part: str, limit: int | None, size: int, download: bool) -> dict:
    """Images and attributes of ``part`` ('train' = train+valid, 'test'), first ``limit``."""
    from torchvision.datasets import CelebA
    counts = ["all"] if limit is None else ["all", f"first{limit}"]
    for count in counts:  # a cache of the whole part serves every limit
        obj = load_cache(cache_path(root, part, size, count))
        if obj is not None:
            return {"images": first(obj["images"], limit), "attr": first(obj["attr"], limit)}
    datasets = [_open(root, split, download) for split in PARTS[part]]
    files = [Path(ds.root) / ds.base_folder / "img_align_celeba" / name for ds in datasets for name in ds.filename]
    attr = torch.cat([ds.attr for ds in datasets])
    n = len(files) if limit is None else min(limit, len(files))

    def build() -> dict:
        from torchvision.datasets import CelebA
        images = decode_files(files[:n], size, lambda img: centre_square(img, CROP), desc=f"CelebA {part}")
        return {"images": images, "attr": attr[:n].long()}

    return cached(cache_path(root, part, size, count_key(n, len(files))), build)


# class_labels: CelebA has 40 binary attributes per image, not one class
@DATASETS.register("celeba", kind=DatasetKind(image=True, class_labels=False, shape=square_images(3, DEFAULT_SIZE)))
def load_celeba(data_cfg, seed: int = 0) -> DataBundle:
    root, size = data_root(data_cfg), data_cfg.image_size or DEFAULT_SIZE
    train = load_part(root, "train", data_cfg.train_limit, size, data_cfg.download)
    test = load_part(root, "test", data_cfg.test_limit, size, data_cfg.download)
    return make_bundle("celeba", data_cfg, train["images"], test["images"], train["attr"], test["attr"])
