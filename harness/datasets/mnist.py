"""MNIST (LeCun et al.): 60,000 training and 10,000 test digits, 1×28×28 uint8, labels 0-9.

The paper uses it for the t-SNE comparison with the hyperspherical VAE (Fig. 7). Its four
files are looked for in ``<data root>/MNIST/raw`` (:func:`harness.datasets.data_root`:
``data.root``, else ``$MOCA_DATA_ROOT``, else ``./data``), each as the original ``.gz`` or
as the uncompressed idx file, and checked against the known md5 sums (:data:`FILES`) before
anything is read (:mod:`harness.datasets._files`: once, then a stamp in the cache folder).
Nothing is written next to them, so a read-only or shared copy works as it is. A file that
is missing is downloaded (``data.download``, the default) from torchvision's mirrors, or from
``$MOCA_DATA_MIRROR`` when set; a file that is present but wrong is one line naming it.

:func:`mnist_files` is the dataset's ``prepare`` hook: the sweep calls it once in the
submitting process before any run starts (:mod:`harness.sweep.preflight`).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from harness.datasets._base import DATASETS, DataBundle, DatasetKind, DatasetMissing, data_root, square_images
from harness.datasets._files import DataFileError, download, mirrors, missing_message, verify
from harness.datasets._images import make_bundle

# idx file name: (md5 of the .gz, md5 of the uncompressed idx file, array shape)
FILES = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624", (60000,)),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea", (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637", (10000,)),
}
IDX_UBYTE = 0x08


def read_idx(path: Path) -> torch.Tensor:
    """An idx file of unsigned bytes (magic ``0 0 0x08 ndim``, big-endian uint32 dims, then the
    data), gzip-compressed when its name ends in ``.gz``, as a uint8 tensor."""
    try:
        blob = path.read_bytes()
        if path.suffix == ".gz":
            blob = gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as e:
        raise DataFileError(f"{path}: cannot be decoded ({e}); replace it with the original file") from None
    zero, kind, ndim = struct.unpack(">HBB", blob[:4].ljust(4, b"\xff"))
    if zero != 0 or kind != IDX_UBYTE or not 1 <= ndim <= 3 or len(blob) < 4 + 4 * ndim:
        raise DataFileError(f"{path}: not an idx file of unsigned bytes; replace it with the original file")
    shape = struct.unpack(f">{ndim}I", blob[4 : 4 + 4 * ndim])
    data = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataFileError(f"{path}: {data.size} bytes of data for shape {shape} (truncated?); "
                            "replace it with the original file")
    return torch.from_numpy(data.reshape(shape).copy())


def mnist_files(data_cfg) -> dict[str, Path]:
    """idx name -> the verified file (``.gz`` preferred) under ``<data root>/MNIST/raw``; the
    missing ones are downloaded first when ``data.download``. One-line :class:`DatasetMissing`
    (or :class:`DataFileError` for a wrong file) otherwise."""
    from torchvision.datasets import MNIST
    raw = data_root(data_cfg) / "MNIST" / "raw"
    fix = "delete it to download it again" if data_cfg.download else "replace it with the original MNIST file"
    found: dict[str, Path] = {}
    missing: list[tuple[str, str]] = []
    for name, (gz_md5, idx_md5, _) in FILES.items():
        gz, plain = raw / f"{name}.gz", raw / name
        if gz.is_file():
            verify(gz, gz_md5, fix)
            found[name] = gz
        elif plain.is_file():
            verify(plain, idx_md5, f"delete it (the .gz is read in its place) or {fix}")
            found[name] = plain
        else:
            missing.append((f"{name}.gz", gz_md5))
    if missing:
        names = [n for n, _ in missing]
        if not data_cfg.download:
            raise DatasetMissing(missing_message("MNIST", raw, names, False, None))
        why = download(raw, missing, mirrors(MNIST.mirrors))
        if why is not None:
            raise DatasetMissing(missing_message("MNIST", raw, names, True, why))
        for name, md5 in missing:
            verify(raw / name, md5, fix)
            found[name[: -len(".gz")]] = raw / name
    return found


@DATASETS.register("mnist", kind=DatasetKind(image=True, class_labels=True, shape=square_images(1, 28)),
                   prepare=mnist_files)
def load_mnist(data_cfg, seed: int = 0) -> DataBundle:
    from torchvision.datasets import MNIST
    files = mnist_files(data_cfg)
    arrays = {}
    for name, path in files.items():
        arrays[name] = read_idx(path)
    for split in ("train", "t10k"):  # the md5s rule this out for the real files; a safety net for others
        images, labels = files[f"{split}-images-idx3-ubyte"], files[f"{split}-labels-idx1-ubyte"]
        if len(arrays[images.name.removesuffix(".gz")]) != len(arrays[labels.name.removesuffix(".gz")]):
            raise DataFileError(f"{images} and {labels}: different numbers of items; replace them with the "
                                "original MNIST files")
    return make_bundle("mnist", data_cfg, arrays["train-images-idx3-ubyte"].unsqueeze(1),
                       arrays["t10k-images-idx3-ubyte"].unsqueeze(1),
                       arrays["train-labels-idx1-ubyte"].long(), arrays["t10k-labels-idx1-ubyte"].long())
