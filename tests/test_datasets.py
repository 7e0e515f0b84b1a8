"""Image datasets: shapes, dtypes, values against torchvision / hand computations, limits,
resizing, caches, and the one-line DatasetMissing errors.

No network and no dataset downloads: MNIST uses the real ``.gz`` files under ``$MOCA_DATA_ROOT``
when they exist (read in place; tests/conftest.py points the variable at ``../shared/data``) and
idx files the test writes otherwise; the download path runs against a fake downloader; CIFAR-10 and CelebA use tiny
datasets written here in torchvision's formats. torchvision verifies md5s of those files
against constants on its classes (``CIFAR10.train_list``/``test_list``/``meta``,
``CelebA.file_list``, ``MNIST.resources``); the tests monkeypatch those class attributes with
the md5s of the files they wrote, which keeps every other check of torchvision's real code
path in place.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.datasets import CIFAR10, MNIST, CelebA
from torchvision.transforms import v2

from harness.config import ConfigError, DataConfig, config_from_dict
from harness.datasets import DATA_ROOT_ENV, DATASETS, DatasetMissing, data_root, load_dataset
from harness.datasets import celeba_hq as hq
from harness.datasets import mnist as mnist_module
from harness.datasets import _files as files_module
from harness.datasets._files import MIRROR_ENV, DataFileError
from harness.datasets.digits import digits_uint8
from tests.mirror import closed_port, serve_folder

SHARED_MNIST = Path(os.environ.get(DATA_ROOT_ENV, "data")) / "MNIST" / "raw"
MNIST_GZ = [name for name, _ in MNIST.resources]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def cfg(name: str, root: Path | str = "data", **kw) -> DataConfig:
    kw.setdefault("download", False)  # tests never touch the network unless a test fakes it
    c = DataConfig(name=name, root=str(root), **kw)
    c.check("data")
    return c


def missing_message(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, f"DatasetMissing must be one line, got {msg!r}"
    return msg


def ref_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize through torch's float path (reference for the uint8 one)."""
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)


def assert_close_uint8(a: torch.Tensor, b: torch.Tensor, atol: int = 1) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype == torch.uint8
    assert (a.int() - b.int()).abs().max().item() <= atol


def test_registered_names():
    assert {"mnist", "cifar10", "celeba", "celeba_hq", "digits"} <= set(DATASETS.names())


def test_bad_dataset_name_suggests_cifar10():
    with pytest.raises(ConfigError) as e:
        DataConfig(name="cifar").check("data")
    assert "data.name" in str(e.value) and "cifar10" in str(e.value) and "\n" not in str(e.value)


def test_config_from_dict_rejects_cifar():
    with pytest.raises(ConfigError, match=r"data\.name: got 'cifar' \(did you mean 'cifar10'\?\)"):
        config_from_dict({"data": {"name": "cifar"}})


# ------------------------------------------------------------------------------- MNIST


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """Write a uint8 array in the idx format (magic 0x0000 0x08 ndim, big-endian dims)."""
    blob = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        blob = gzip.compress(blob)
    path.write_bytes(blob)


def fake_mnist(root: Path, compress: bool, n_train: int = 12, n_test: int = 5) -> dict:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        write_idx(raw / name, a, compress)
    return arrays


@pytest.fixture
def patched_mnist_md5(monkeypatch):
    """Point the known MNIST md5s (harness.datasets.mnist.FILES) at the files the test wrote
    (``.gz`` or uncompressed, whichever is there)."""

    def patch(raw: Path) -> None:
        files = {name: (md5(raw / f"{name}.gz") if (raw / f"{name}.gz").is_file() else gz_md5,
                        md5(raw / name) if (raw / name).is_file() else idx_md5, shape)
                 for name, (gz_md5, idx_md5, shape) in mnist_module.FILES.items()}
        monkeypatch.setattr(mnist_module, "FILES", files)

    return patch


@pytest.fixture
def http_mirror(monkeypatch):
    """A local HTTP server serving a folder, as ``$MOCA_DATA_MIRROR`` (the real download path,
    no network): ``http_mirror(folder)`` starts it and returns its URL."""
    servers = []

    def serve(folder: Path) -> str:
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")  # a proxy of the environment must not see it
        url = serve_folder(folder, servers)
        monkeypatch.setenv(MIRROR_ENV, url)
        return url

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_mnist_real_gz_read_in_place(tmp_path):
    """The shared real .gz files load straight from a read-only copy: md5-checked, decoded in
    memory, nothing written next to them, no network."""
    if not all((SHARED_MNIST / n).is_file() for n in MNIST_GZ):
        pytest.skip(f"real MNIST .gz files not in {SHARED_MNIST}; test_mnist_generated_gz covers decoding")
    before = sorted(p.name for p in SHARED_MNIST.iterdir())
    data = load_dataset(cfg("mnist", SHARED_MNIST.parents[1]))
    assert sorted(p.name for p in SHARED_MNIST.iterdir()) == before
    assert data.train_x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    assert data.train_y[:3].tolist() == [5, 0, 4] and data.test_y[:3].tolist() == [7, 2, 1]
    assert torch.bincount(data.train_y).tolist()[1] == 6742  # the well-known count of ones
    raw = tmp_path / "MNIST" / "raw"  # torchvision's own reader of the extracted files as the reference
    raw.mkdir(parents=True)
    for name in MNIST_GZ:
        (raw / name[:-3]).write_bytes(gzip.decompress((SHARED_MNIST / name).read_bytes()))
    ref = MNIST(str(tmp_path), train=True)
    for i in (0, 123, 59999):
        img, label = ref[i]
        assert np.array_equal(np.asarray(img), data.train_x[i, 0].numpy()) and label == data.train_y[i]


def test_mnist_generated_gz(tmp_path, patched_mnist_md5):
    arrays = fake_mnist(tmp_path, compress=True)
    patched_mnist_md5(tmp_path / "MNIST" / "raw")
    data = load_dataset(cfg("mnist", tmp_path))
    assert data.item_shape == (1, 28, 28) and data.is_image
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert torch.equal(data.test_x[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert data.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.test_y.dtype == torch.int64 and data.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(MNIST_GZ)  # nothing written


def test_data_root_order(tmp_path, monkeypatch):
    """data.root, else $MOCA_DATA_ROOT, else ./data: one setting points every run at a copy."""
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert data_root(DataConfig()) == Path("data")
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert data_root(DataConfig()) == tmp_path
    assert data_root(DataConfig(root="elsewhere")) == Path("elsewhere")


def test_mnist_through_env_var(tmp_path, monkeypatch, patched_mnist_md5):
    arrays = fake_mnist(tmp_path, compress=True)
    patched_mnist_md5(tmp_path / "MNIST" / "raw")
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    c = DataConfig(name="mnist", download=False)
    c.check("data")
    data = load_dataset(c)
    assert torch.equal(data.test_x[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))


def test_mnist_downloaded_on_first_use(tmp_path, http_mirror, patched_mnist_md5):
    """With data.download (the default) the missing files are fetched from the mirror
    ($MOCA_DATA_MIRROR, here a local HTTP server), md5-checked, and read; the second use
    downloads nothing."""
    served = tmp_path / "served"
    arrays = fake_mnist(served, compress=True, n_train=3, n_test=2)
    patched_mnist_md5(served / "MNIST" / "raw")
    http_mirror(served / "MNIST" / "raw")
    root = tmp_path / "root"
    c = DataConfig(name="mnist", root=str(root))
    assert c.download is True  # the default
    data = load_dataset(c)
    raw = root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{n}.gz" for n in arrays)  # no .part left
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    for p in (served / "MNIST" / "raw").iterdir():
        p.unlink()  # the mirror is empty now: a second use must not need it
    assert load_dataset(c).train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_mnist_download_from_a_mirror_with_another_file_is_refused(tmp_path, http_mirror):
    """A mirror serving files whose md5 differs: nothing is kept under the real names."""
    served = tmp_path / "served"
    fake_mnist(served, compress=True)  # md5s differ from MNIST's
    http_mirror(served / "MNIST" / "raw")
    with pytest.raises(DatasetMissing) as e:
        load_dataset(cfg("mnist", tmp_path / "root", download=True))
    assert "download failed" in missing_message(e)
    assert not any((tmp_path / "root" / "MNIST" / "raw").iterdir())


def test_mnist_limits_and_resize(tmp_path, patched_mnist_md5):
    arrays = fake_mnist(tmp_path, compress=False)  # uncompressed idx files only
    patched_mnist_md5(tmp_path / "MNIST" / "raw")
    data = load_dataset(cfg("mnist", tmp_path, train_limit=5, test_limit=3, image_size=14))
    assert data.train_x.shape == (5, 1, 14, 14) and data.test_x.shape == (3, 1, 14, 14)
    assert data.train_y.shape == (5,) and data.test_y.shape == (3,)
    assert data.train_x.is_contiguous() and data.train_x.dtype == torch.uint8
    expected = ref_resize(torch.from_numpy(arrays["train-images-idx3-ubyte"][:5]).unsqueeze(1), 14)
    assert_close_uint8(data.train_x, expected)
    big = load_dataset(cfg("mnist", tmp_path, train_limit=1000))  # a limit above the size keeps all
    assert len(big.train_x) == 12


def test_mnist_missing_is_one_line(tmp_path):
    with pytest.raises(DatasetMissing) as e:
        load_dataset(cfg("mnist", tmp_path))
    msg = missing_message(e)
    assert str(tmp_path / "MNIST" / "raw") in msg and "data.download=true" in msg
    assert "MOCA_DATA_ROOT" in msg and "data.root" in msg


def test_mnist_bad_md5_is_reported(tmp_path):
    fake_mnist(tmp_path, compress=True)  # md5s differ from torchvision's
    with pytest.raises(DatasetMissing) as e:
        load_dataset(cfg("mnist", tmp_path))
    assert "md5" in missing_message(e)
    assert not (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()


def test_mnist_failed_download_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{closed_port()}/")  # nothing listens there
    with pytest.raises(DatasetMissing) as e:
        load_dataset(cfg("mnist", tmp_path, download=True))
    msg = missing_message(e)
    assert "download failed" in msg and str(tmp_path / "MNIST" / "raw") in msg
    assert "MOCA_DATA_ROOT" in msg and "data.root" in msg and MIRROR_ENV in msg
    assert all(name in msg for name in MNIST_GZ)


def real_mnist_copy(root: Path) -> Path:
    """A writable copy of the real MNIST .gz files under ``root``; its raw folder."""
    if not all((SHARED_MNIST / n).is_file() for n in MNIST_GZ):
        pytest.skip(f"real MNIST .gz files not in {SHARED_MNIST}")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_GZ:
        shutil.copyfile(SHARED_MNIST / name, raw / name)
    return raw


def _truncated_gz(raw: Path) -> Path:
    path = raw / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _not_gzip(raw: Path) -> Path:
    path = raw / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"<html>404 Not Found</html>\n")  # what a proxy may serve instead
    return path


def _garbage_idx(raw: Path) -> Path:
    (raw / "train-labels-idx1-ubyte.gz").unlink()
    path = raw / "train-labels-idx1-ubyte"  # an uncompressed idx file with a garbage header
    path.write_bytes(b"\xde\xad\xbe\xef" + bytes(60004))
    return path


def _truncated_idx(raw: Path) -> Path:
    blob = gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes())
    (raw / "t10k-images-idx3-ubyte.gz").unlink()
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(blob[:-784])
    return path


def _swapped_splits(raw: Path) -> Path:
    path = raw / "train-images-idx3-ubyte.gz"  # the test images under the training images' name
    shutil.copyfile(raw / "t10k-images-idx3-ubyte.gz", path)
    return path


CORRUPTIONS = {"truncated gz": _truncated_gz, "not gzip": _not_gzip, "garbage idx": _garbage_idx,
               "truncated idx": _truncated_idx, "swapped splits": _swapped_splits}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_mnist_corrupt_file_is_one_line_naming_it(tmp_path, case):
    """Each damaged file is found by its md5 before anything is read: one line naming the
    file and what to do; the file is left as it is (no download over it, no extraction)."""
    raw = real_mnist_copy(tmp_path)
    bad = CORRUPTIONS[case](raw)
    before = sorted(p.name for p in raw.iterdir())
    for download in (False, True):
        with pytest.raises(DataFileError) as e:
            load_dataset(cfg("mnist", tmp_path, download=download))
        msg = missing_message(e)
        assert msg.startswith(f"{bad.resolve()}: md5 ") and "differs from the known" in msg
        assert ("delete it to download it again" if download else "replace it with the original") in msg
    assert sorted(p.name for p in raw.iterdir()) == before


def test_mnist_md5_is_checked_once_then_stamped_outside_the_data_root(tmp_path, monkeypatch):
    raw = real_mnist_copy(tmp_path / "data")
    monkeypatch.setenv("MOCA_CACHE_DIR", str(tmp_path / "cache"))
    hashed = []
    real_md5 = files_module.md5_file
    monkeypatch.setattr(files_module, "md5_file", lambda p: hashed.append(Path(p).name) or real_md5(p))
    c = cfg("mnist", tmp_path / "data")
    mnist_module.mnist_files(c)
    assert sorted(hashed) == sorted(MNIST_GZ)
    assert len(list((tmp_path / "cache" / "verified").iterdir())) == 4
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_GZ)  # no stamp in the data root
    hashed.clear()
    mnist_module.mnist_files(c)
    assert hashed == []  # size and mtime unchanged: trusted
    target = raw / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(target.read_bytes())
    blob[-1] ^= 0xFF  # same size, one byte changed, new mtime
    target.write_bytes(bytes(blob))
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    with pytest.raises(DataFileError, match="t10k-labels-idx1-ubyte.gz: md5"):
        mnist_module.mnist_files(c)
    assert hashed == ["t10k-labels-idx1-ubyte.gz"]


# ---------------------------------------------------------------------------- CIFAR-10


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """A CIFAR-10 folder with 5 train batches of 2 images and a test batch of 3, in
    torchvision's pickle format; CIFAR10's md5 table is patched to these files."""
    folder = tmp_path / CIFAR10.base_folder
    folder.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name, n in [(f"data_batch_{i}", 2) for i in range(1, 6)] + [("test_batch", 3)]:
        batches[name] = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batches[name]))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(folder / "batches.meta")})
    return tmp_path, batches


def test_cifar10_values(fake_cifar):
    root, batches = fake_cifar
    data = load_dataset(cfg("cifar10", root))
    # a CIFAR row is 1024 red, 1024 green, 1024 blue values, each a row-major 32×32 plane
    train = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert data.train_x.shape == (10, 3, 32, 32) and data.test_x.shape == (3, 3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.train_x.is_contiguous()
    assert torch.equal(data.train_x, torch.from_numpy(train))
    assert torch.equal(data.test_x, torch.from_numpy(batches["test_batch"]["data"].reshape(-1, 3, 32, 32)))
    assert data.train_y.dtype == torch.int64
    assert data.train_y.tolist() == sum((batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert data.test_y.tolist() == batches["test_batch"]["labels"]


def test_cifar10_limits_and_resize(fake_cifar):
    root, batches = fake_cifar
    data = load_dataset(cfg("cifar10", root, train_limit=4, test_limit=1, image_size=16))
    assert data.train_x.shape == (4, 3, 16, 16) and data.test_x.shape == (1, 3, 16, 16)
    first4 = np.concatenate([batches["data_batch_1"]["data"], batches["data_batch_2"]["data"]]).reshape(-1, 3, 32, 32)
    assert_close_uint8(data.train_x, ref_resize(torch.from_numpy(first4), 16))


def test_cifar10_missing_and_corrupted(tmp_path):
    with pytest.raises(DatasetMissing) as e:
        load_dataset(cfg("cifar10", tmp_path))
    msg = missing_message(e)
    assert f"not found under {tmp_path / 'cifar-10-batches-py'}" in msg and "data.download=true" in msg
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not the real file")
    with pytest.raises(DatasetMissing) as e:
        load_dataset(cfg("cifar10", tmp_path))
    assert "corrupted" in missing_message(e)


def test_cifar10_failed_download_is_one_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading cifar-10-python.tar.gz:\nTried https://...\n<urlopen error>")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    with pytest.raises(DatasetMissing) as e:
        load_dataset(cfg("cifar10", tmp_path, download=True))
    msg = missing_message(e)
    assert "download" in msg and "Error downloading cifar-10-python.tar.gz" in msg
    assert "<urlopen error>" in msg  # the reason, torchvision's last line, is kept
    assert "MOCA_DATA_ROOT" in msg and "data.root" in msg


# ------------------------------------------------------------------------------ CelebA

ATTRS = ["Smiling", "Young", "Male"]  # the real file has 40 columns; the loader passes all through


@pytest.fixture
def fake_celeba(tmp_path, monkeypatch):
    """Seven 178×218 aligned-size JPEGs (partitions 3 train, 2 valid, 2 test: torchvision's
    CelebA cannot hold a one-image split) and the five annotation files in CelebA's text
    formats; CelebA.file_list gets their md5s."""
    base = tmp_path / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    partition = [0, 0, 0, 1, 1, 2, 2]
    rng = np.random.default_rng(2)
    names = [f"{i + 1:06d}.jpg" for i in range(len(partition))]
    yy, xx = np.mgrid[0:218, 0:178]
    attr = rng.choice([-1, 1], size=(len(names), len(ATTRS)))
    for i, name in enumerate(names):
        img = np.stack([(xx + 20 * i) % 256, (yy * 2) % 256, (xx + yy) % 256], -1) + rng.integers(0, 20, (218, 178, 3))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(base / "img_align_celeba" / name, quality=90)
    n = len(names)
    files = {
        "list_eval_partition.txt": "".join(f"{f} {p}\n" for f, p in zip(names, partition)),
        "identity_CelebA.txt": "".join(f"{f} {100 + i}\n" for i, f in enumerate(names)),
        "list_bbox_celeba.txt": f"{n}\nimage_id x_1 y_1 width height\n"
        + "".join(f"{f} 95 71 226 313\n" for f in names),
        "list_landmarks_align_celeba.txt": f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
        "leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n" + "".join(f"{f} 69 109 106 113 77 142 73 152 108 154\n" for f in names),
        "list_attr_celeba.txt": f"{n}\n{' '.join(ATTRS)} \n"
        + "".join(f"{f} " + " ".join(f"{v:2d}" for v in row) + "\n" for f, row in zip(names, attr)),
    }
    for fname, text in files.items():
        (base / fname).write_text(text)
    file_list = [(fid, md5(base / fn) if (base / fn).is_file() else h, fn) for fid, h, fn in CelebA.file_list]
    monkeypatch.setattr(CelebA, "file_list", file_list)
    return tmp_path, (attr + 1) // 2


def celeba_reference(root: Path, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's own per-item CelebA path with the paper's transform (crop 140, resize)."""
    tf = v2.Compose([v2.PILToTensor(), v2.CenterCrop(140), v2.Resize(size, antialias=True)])
    ds = CelebA(str(root), split=split, target_type="attr", transform=tf)
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def test_celeba_values_and_cache(fake_celeba, monkeypatch):
    root, attr01 = fake_celeba
    data = load_dataset(cfg("celeba", root))
    ref_train, ref_valid, ref_test = (celeba_reference(root, s, 64) for s in ("train", "valid", "test"))
    # train = torchvision's train + valid partitions, test = its test partition
    assert data.train_x.shape == (5, 3, 64, 64) and data.test_x.shape == (2, 3, 64, 64)
    assert torch.equal(data.train_x, torch.cat([ref_train[0], ref_valid[0]]))
    assert torch.equal(data.test_x, ref_test[0])
    assert data.train_y.dtype == torch.int64 and data.train_y.shape == (5, len(ATTRS))
    assert data.train_y.tolist() == attr01[:5].tolist() and data.test_y.tolist() == attr01[5:].tolist()
    cache = root / "celeba" / "moca_cache"
    assert sorted(p.name for p in cache.iterdir()) == ["test_crop140_64px_all.pt", "train_crop140_64px_all.pt"]
    # the cache alone serves later runs (images gone), limits included
    shutil.rmtree(root / "celeba" / "img_align_celeba")
    again = load_dataset(cfg("celeba", root, train_limit=3))
    assert torch.equal(again.train_x, data.train_x[:3]) and torch.equal(again.test_x, data.test_x)
    assert torch.equal(again.train_y, data.train_y[:3])


def test_celeba_limit_and_size(fake_celeba):
    root, _ = fake_celeba
    data = load_dataset(cfg("celeba", root, train_limit=2, test_limit=1, image_size=32))
    assert data.train_x.shape == (2, 3, 32, 32) and data.test_x.shape == (1, 3, 32, 32)
    assert torch.equal(data.train_x, celeba_reference(root, "train", 32)[0][:2])
    names = sorted(p.name for p in (root / "celeba" / "moca_cache").iterdir())
    assert names == ["test_crop140_32px_first1.pt", "train_crop140_32px_first2.pt"]  # only 3 images decoded


def test_celeba_missing_is_one_line(tmp_path):
    with pytest.raises(DatasetMissing) as e:
        load_dataset(cfg("celeba", tmp_path))
    msg = missing_message(e)
    assert str(tmp_path / "celeba") in msg and "data.download=true" in msg


def test_celeba_failed_download_is_one_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("To download files from GDrive, 'gdown' is required.\nsecond line")

    monkeypatch.setattr("torchvision.datasets.celeba.download_file_from_google_drive", offline)
    with pytest.raises(DatasetMissing) as e:
        load_dataset(cfg("celeba", tmp_path, download=True))
    msg = missing_message(e)
    assert "download" in msg and "gdown" in msg and str(tmp_path / "celeba") in msg


# --------------------------------------------------------------------------- CelebA-HQ


def write_pngs(folder: Path, names: list[str], h: int = 30, w: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    out = {}
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        out[name] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(out[name]).save(folder / name)
    return out


def test_celeba_hq_split_sizes():
    assert hq.split_sizes(30000) == (27000, 3000)
    assert hq.split_sizes(31000) == (27000, 4000)
    assert hq.split_sizes(1000) == (900, 100)
    assert hq.split_sizes(10) == (9, 1)
    assert hq.split_sizes(5) == (4, 1)
    assert hq.split_sizes(2) == (1, 1)
    with pytest.raises(ValueError):
        hq.split_sizes(1)


def test_celeba_hq_folder(tmp_path, monkeypatch):
    names = [f"{i:05d}.png" for i in range(9, -1, -1)]  # written in reverse; loaded sorted
    arrays = write_pngs(tmp_path / "celeba_hq", names)
    (tmp_path / "celeba_hq" / "notes.txt").write_text("not an image")
    data = load_dataset(cfg("celeba_hq", tmp_path, image_size=16))
    assert data.train_x.shape == (9, 3, 16, 16) and data.test_x.shape == (1, 3, 16, 16)
    assert data.train_y is None and data.test_y is None
    # centre square crop of a 30×40 image = columns 5..34, then an antialiased resize
    ordered = np.stack([arrays[f"{i:05d}.png"] for i in range(10)])[:, :, 5:35].transpose(0, 3, 1, 2)
    expected = ref_resize(torch.from_numpy(np.ascontiguousarray(ordered)), 16)
    assert_close_uint8(torch.cat([data.train_x, data.test_x]), expected)
    # the cache serves the next run: decoding is no longer needed
    monkeypatch.setattr(hq, "decode_files", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    again = load_dataset(cfg("celeba_hq", tmp_path, image_size=16, train_limit=4))
    assert torch.equal(again.train_x, data.train_x[:4]) and torch.equal(again.test_x, data.test_x)


def test_celeba_hq_nested_default_size(tmp_path):
    write_pngs(tmp_path / "celeba_hq", ["b/1.png", "a/2.png", "a/1.png"], h=20, w=20)
    assert [p.relative_to(tmp_path / "celeba_hq").as_posix() for p in hq.list_images(tmp_path / "celeba_hq")] == [
        "a/1.png",
        "a/2.png",
        "b/1.png",
    ]
    data = load_dataset(cfg("celeba_hq", tmp_path))
    assert data.train_x.shape == (2, 3, 256, 256) and data.test_x.shape == (1, 3, 256, 256)


def test_celeba_hq_missing_is_one_line(tmp_path):
    with pytest.raises(DatasetMissing) as e:
        load_dataset(cfg("celeba_hq", tmp_path))
    assert str(tmp_path / "celeba_hq") in missing_message(e)


# ------------------------------------------------------------------------------ digits


def test_digits_split_is_seeded_and_complete():
    images, labels = digits_uint8()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.uint8
    assert images.max().item() == 255 and images.min().item() == 0  # 16 -> 255, 0 -> 0
    a, b, c = (load_dataset(cfg("digits"), seed=s) for s in (0, 0, 1))
    assert a.train_x.shape == (1500, 1, 8, 8) and a.test_x.shape == (297, 1, 8, 8)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    # every (image, label) pair is one of load_digits' pairs, each used exactly once
    key = lambda x, y: (x.numpy().tobytes(), int(y))  # noqa: E731
    full = sorted(key(x, y) for x, y in zip(images, labels))
    split = sorted(key(x, y) for x, y in zip(torch.cat([a.train_x, a.test_x]), torch.cat([a.train_y, a.test_y])))
    assert split == full


def test_digits_pixel_scaling_and_resize():
    from sklearn.datasets import load_digits

    raw = load_digits().images
    images, _ = digits_uint8()
    assert np.array_equal(images[:, 0].numpy(), np.rint(raw * 255 / 16).astype(np.uint8))
    assert raw[0, 0, 2] == 5 and images[0, 0, 0, 2].item() == 80  # 5 * 255 / 16 = 79.69
    data = load_dataset(cfg("digits", image_size=16, train_limit=10, test_limit=7))
    assert data.train_x.shape == (10, 1, 16, 16) and data.test_x.shape == (7, 1, 16, 16)
    full = load_dataset(cfg("digits"))
    assert_close_uint8(data.train_x, ref_resize(full.train_x[:10], 16))


def test_the_image_extensions_are_torchvisions():
    """harness.datasets._images writes torchvision's list out (no torchvision import at start-up)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from harness.datasets._images import IMAGE_EXTENSIONS
    assert IMAGE_EXTENSIONS == tuple(IMG_EXTENSIONS)
