"""MNIST (LeCun et al.): 60,000 training and 10,000 test digits, 1×28×28 uint8, labels 0-9.

The paper uses it for the t-SNE comparison with the hyperspherical VAE (Fig. 7). Looked for
in ``<data root>/MNIST/raw`` (:func:`harness.datasets.data_root`: ``data.root``, else
``$MOCA_DATA_ROOT``, else ``./data``), in this order:

1. the uncompressed idx files: read by ``torchvision.datasets.MNIST`` (its ``.data`` tensor);
2. the four original ``.gz`` files: checked against the md5s in ``MNIST.resources`` and
   decoded in memory. Nothing is written, so a read-only or shared copy
   (``MOCA_DATA_ROOT=../shared/data``) works as it is;
3. neither, with ``data.download`` (the default): torchvision downloads the ``.gz`` files
   from its mirrors (progress bar, md5-checked) and extracts them there, once.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import MNIST
from torchvision.datasets.utils import check_integrity

from harness.datasets._base import DATASETS, DataBundle, DatasetKind, DatasetMissing, data_root, offline_hint, square_images
from harness.datasets._images import make_bundle, one_line

GZ_NAMES = ", ".join(name for name, _ in MNIST.resources)
IDX_UBYTE = 0x08


def read_idx_gz(path: Path) -> torch.Tensor:
    """A gzip-compressed idx file of unsigned bytes (magic ``0 0 0x08 ndim``, big-endian
    uint32 dims, then the data) as a uint8 tensor."""
    blob = gzip.decompress(path.read_bytes())
    zero, kind, ndim = struct.unpack(">HBB", blob[:4])
    if zero != 0 or kind != IDX_UBYTE or not 1 <= ndim <= 3:
        raise ValueError(f"{path}: not an idx file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", blob[4 : 4 + 4 * ndim])
    data = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} bytes of data for shape {shape} (truncated?)")
    return torch.from_numpy(data.reshape(shape).copy())


def load_gz(raw: Path) -> tuple[dict[str, torch.Tensor] | None, list[str]]:
    """(arrays by idx name, or None unless all four ``.gz`` are present with torchvision's md5;
    names of those present whose md5 differs)."""
    present = [(name, md5) for name, md5 in MNIST.resources if (raw / name).is_file()]
    bad = [name for name, md5 in present if not check_integrity(str(raw / name), md5)]
    if bad or len(present) < len(MNIST.resources):
        return None, bad
    return {name[: -len(".gz")]: read_idx_gz(raw / name) for name, _ in MNIST.resources}, []


def _missing(raw: Path, download: bool, bad: list[str], error: BaseException | None) -> DatasetMissing:
    corrupt = f" ({', '.join(bad)} present but md5 differs from torchvision's)" if bad else ""
    where = f"a folder holding MNIST/raw/ with the four files ({GZ_NAMES})"
    if download:
        return DatasetMissing(f"MNIST not found under {raw}{corrupt} and the download failed ({one_line(error)}); "
                              + offline_hint(where))
    return DatasetMissing(f"MNIST not found under {raw}{corrupt}; set data.download=true to fetch it on first use "
                          f"(needs internet), or {offline_hint(where, lead=False)}")


@DATASETS.register("mnist", kind=DatasetKind(image=True, class_labels=True, shape=square_images(1, 28)))
def load_mnist(data_cfg, seed: int = 0) -> DataBundle:
    root = data_root(data_cfg)
    raw = root / "MNIST" / "raw"
    plain = all((raw / name[: -len(".gz")]).is_file() for name, _ in MNIST.resources)
    bad: list[str] = []
    if not plain:
        arrays, bad = load_gz(raw) if raw.is_dir() else (None, [])
        if arrays is not None:
            return make_bundle("mnist", data_cfg, arrays["train-images-idx3-ubyte"].unsqueeze(1),
                               arrays["t10k-images-idx3-ubyte"].unsqueeze(1),
                               arrays["train-labels-idx1-ubyte"].long(), arrays["t10k-labels-idx1-ubyte"].long())
        if not data_cfg.download:
            raise _missing(raw, False, bad, None)
    try:
        train = MNIST(str(root), train=True, download=data_cfg.download and not plain)
        test = MNIST(str(root), train=False, download=False)
    except (RuntimeError, OSError) as e:
        raise _missing(raw, data_cfg.download, bad, e) from None
    return make_bundle(
        "mnist", data_cfg, train.data.unsqueeze(1), test.data.unsqueeze(1), train.targets, test.targets
    )
