"""MNIST (LeCun et al.): 60,000 training and 10,000 test digits, 1×28×28 uint8, labels 0-9.

The paper uses it for the t-SNE comparison with the hyperspherical VAE (Fig. 7). Loaded with
``torchvision.datasets.MNIST`` from ``<data.root>/MNIST/raw``; the images are its ``.data``
tensor (no per-item transform).

torchvision 0.29 reads only the *uncompressed* idx files. When only the original ``.gz``
files are there, they are checked against the md5s in ``MNIST.resources`` and extracted with
torchvision's own ``extract_archive``, even with ``data.download=false``: no network is used.
Extraction goes through a temporary name and a rename, so parallel runs never see a
half-written file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from torchvision.datasets import MNIST
from torchvision.datasets.utils import check_integrity, extract_archive

from harness.datasets._base import DATASETS, DataBundle, DatasetMissing
from harness.datasets._images import make_bundle, one_line

GZ_NAMES = ", ".join(name for name, _ in MNIST.resources)


def extract_offline(raw: Path) -> list[str]:
    """Extract every ``.gz`` in ``raw`` whose md5 matches and whose idx file is missing.

    Returns the names of ``.gz`` files that are present but fail the md5 check.
    """
    bad = []
    for name, md5 in MNIST.resources:
        gz, plain = raw / name, raw / name[: -len(".gz")]
        if plain.is_file() or not gz.is_file():
            continue
        if not check_integrity(str(gz), md5):
            bad.append(name)
            continue
        try:
            tmp = tempfile.mkdtemp(dir=raw, prefix=".extract-")
        except OSError as e:
            raise DatasetMissing(
                f"cannot extract {gz}: {raw} is not writable ({one_line(e)}); copy {raw.parent} "
                "into a writable folder and point data.root at that folder's parent"
            ) from None
        try:
            os.replace(extract_archive(str(gz), tmp), plain)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return bad


@DATASETS.register("mnist")
def load_mnist(data_cfg, seed: int = 0) -> DataBundle:
    root = Path(data_cfg.root)
    raw = root / "MNIST" / "raw"
    bad = extract_offline(raw) if raw.is_dir() else []
    try:
        train = MNIST(str(root), train=True, download=data_cfg.download)
        test = MNIST(str(root), train=False, download=data_cfg.download)
    except (RuntimeError, OSError) as e:
        if data_cfg.download:
            raise DatasetMissing(
                f"MNIST download into {raw} failed ({one_line(e)}); copy the four idx files ({GZ_NAMES}) there instead"
            ) from None
        corrupt = f" ({', '.join(bad)} present but md5 differs from torchvision's)" if bad else ""
        raise DatasetMissing(
            f"MNIST not found under {raw}{corrupt}; set data.download=true on a machine with internet, "
            f"or copy the four idx files ({GZ_NAMES}) there"
        ) from None
    return make_bundle(
        "mnist", data_cfg, train.data.unsqueeze(1), test.data.unsqueeze(1), train.targets, test.targets
    )
