"""The domain feature network ``lenet`` (harness/metrics/lenet.py, harness/evaluators/lenet_training.py)
and the domain FID.

Fast tests train on scikit-learn's digits (offline, 1,500 images) with a short recipe; the
MNIST recipe (>= 99% test accuracy) is checked by a slow test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config import ConfigError, DataConfig, RunConfig, config_from_dict
from harness.datasets import load_dataset
from harness.evaluators import feature_cache as C
from harness.evaluators import lenet_training as T
from harness.metrics import fid as M
from harness.metrics import lenet as L

SHORT = {**T.RECIPE, "steps": 40, "batch_size": 64}


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"), seed=0)


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """(cache root, network, notices): the short recipe trained once into a fresh cache."""
    root, notices = tmp_path_factory.mktemp("cache_root"), []
    before = torch.get_rng_state()
    net = _train(digits, root, notices)
    assert torch.equal(torch.get_rng_state(), before)  # the run's random streams are untouched
    return root, net, notices


def _train(digits, root, notices, recipe=SHORT, train_y=None):
    return T.load_or_train("digits", digits.train_x, digits.train_y if train_y is None else train_y,
                           digits.test_x, digits.test_y, recipe=recipe, notice=notices.append, root=root)


def test_lenet_features_shape_and_resizing():
    net = L.LeNet(in_channels=3, num_classes=4)
    for side in (8, 28, 32):
        assert net.features(torch.rand(2, 3, side, side)).shape == (2, L.FEATURE_DIMS)
    assert net(torch.rand(2, 3, 28, 28)).shape == (2, 4)


def test_cache_is_content_addressed_reused_verified_and_retrained_deterministically(digits, trained, tmp_path):
    root, first, first_notices = trained
    assert len(first_notices) == 1 and "is missing; training it" in first_notices[0]
    assert "\n" not in first_notices[0]
    assert first.test_accuracy > 0.8  # 10 classes: chance is 0.1
    path = first.weights_path
    assert path.parent == root / C.NETS_SUBDIR and path.name.startswith(f"lenet-digits-{first.key[:16]}-w")
    assert path.name.endswith(f"-w{first.weights_sha256[:16]}.pt")  # named by its own content
    record = C.record_path(root, "lenet", "digits", first.key)
    info = json.loads(record.read_text())
    assert info["weights_sha256"] == M.sha256_file(path) == first.weights_sha256
    assert info["key"] == first.key == C.content_key(info["determinants"])
    assert info["test_accuracy"] == first.test_accuracy and info["determinants"]["n_train"] == len(digits.train_x)

    # A copy of the cache is reused: no notice, same weights, same features.
    (tmp_path / C.NETS_SUBDIR).mkdir()
    for f in (path, record):
        (tmp_path / C.NETS_SUBDIR / f.name).write_bytes(f.read_bytes())
    notices: list[str] = []
    second = _train(digits, tmp_path, notices)
    assert notices == [] and second.weights_sha256 == first.weights_sha256
    x = digits.test_x[:7]
    np.testing.assert_array_equal(L.lenet_features(x, first.net), L.lenet_features(x, second.net))

    # One flipped byte: the hash check catches it and the network is retrained, identically.
    copy = second.weights_path
    blob = bytearray(copy.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    copy.write_bytes(bytes(blob))
    third = _train(digits, tmp_path, notices)
    assert len(notices) == 1 and "corrupt" in notices[0] and "\n" not in notices[0]
    assert third.weights_sha256 == first.weights_sha256  # deterministic training
    assert _train(digits, tmp_path, notices).weights_sha256 == first.weights_sha256 and len(notices) == 1

    # Another recipe, other training pixels or other labels are another cache entry.
    keys = {first.key}
    for recipe, x, y in [({**SHORT, "steps": 61}, digits.train_x, digits.train_y),
                         (SHORT, 255 - digits.train_x, digits.train_y),
                         (SHORT, digits.train_x, (digits.train_y + 1) % 10)]:
        keys.add(C.content_key(T.determinants("digits", x, y, digits.test_x, digits.test_y, recipe)))
    assert len(keys) == 4


def test_the_cache_goes_to_moca_cache_dir_or_the_user_cache_never_the_data_root(digits, tmp_path, monkeypatch):
    """Issue 19.4: the data root may be a shared copy; nothing is written there."""
    data_root = tmp_path / "data"
    data_root.mkdir()
    monkeypatch.delenv("MOCA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.cache_root() == tmp_path / "xdg" / "moca-harness"
    monkeypatch.setenv("MOCA_CACHE_DIR", str(tmp_path / "mine"))
    assert C.cache_root() == tmp_path / "mine"
    cfg = config_from_dict({"data": {"name": "digits", "root": str(data_root)},
                            "eval": {"metrics": ["fid"], "fid": {"features": "lenet"}}})
    monkeypatch.setattr(T, "RECIPE", {**SHORT, "steps": 3})
    from harness.evaluators import prepare_feature_nets

    notices: list[str] = []
    (net,) = prepare_feature_nets(cfg, digits, notices.append)
    assert net.weights_path.parent == tmp_path / "mine" / C.NETS_SUBDIR and len(notices) == 1
    assert list(data_root.iterdir()) == []
    # nowhere to write: one line that says what to set
    monkeypatch.setenv("MOCA_CACHE_DIR", "/proc/no-such-folder")
    with pytest.raises(OSError) as err:
        _train(digits, None, notices, recipe={**SHORT, "steps": 4})
    assert "MOCA_CACHE_DIR" in str(err.value) and "\n" not in str(err.value)


def test_lenet_features_are_uint8_only(digits, trained):
    net = trained[1]
    with pytest.raises(TypeError):
        L.lenet_features(digits.test_x.float(), net.net)
    feats = L.lenet_features(digits.test_x, net.net, batch_size=50)
    assert feats.dtype == np.float64 and feats.shape == (len(digits.test_x), 128) and (feats >= 0).all()
    expected = net.net.features(digits.test_x[:3].float() / 255).double().detach().numpy()
    np.testing.assert_allclose(feats[:3], expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- the fid evaluator


class _Decoder(torch.nn.Module):
    """Decodes z to fixed test images: z's first coordinate picks the image."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.images = images.float() / 255

    def forward(self, z):
        idx = ((z[:, 0] + 1) / 2 * (len(self.images) - 1)).round().long()
        return self.images[idx]


def test_domain_fid_evaluator(digits, trained, tmp_path, monkeypatch):
    from harness.evaluators.fid import PROVENANCE_FILE
    from harness.evaluators import build_evaluator, make_context
    from harness.priors import build_prior

    monkeypatch.setattr(T, "RECIPE", SHORT)
    root, net, _ = trained  # the evaluator finds it in the cache (MOCA_CACHE_DIR)
    monkeypatch.setenv("MOCA_CACHE_DIR", str(root))
    cfg = config_from_dict({"data": {"name": "digits"},
                            "eval": {"metrics": ["fid"], "fid": {"features": "lenet", "num_samples": 200,
                                                                  "reference_samples": 250, "kid_subsets": 3,
                                                                  "cache_dir": str(tmp_path / "fid")}}})
    prior = build_prior("sphere", 4)
    ev = build_evaluator("fid", make_context(cfg, digits, prior, "cpu", tmp_path / "run"))
    prov = json.loads((tmp_path / "run" / PROVENANCE_FILE).read_text())
    assert prov["features"] == "lenet" and prov["dims"] == 128 and prov["n_reference"] == 250
    assert prov["weights_sha256"] == net.weights_sha256 and prov["test_accuracy"] == net.test_accuracy
    assert net.weights_sha256[:12] in prov["caption"] and "lenet" in prov["caption"]

    model = torch.nn.Module()
    model.decoder = _Decoder(digits.test_x)
    out = ev(model, epoch=1)
    gen = ev.generate(model)
    fg = M.FeatureStats.from_features(L.lenet_features(gen, net.net))
    fr = M.FeatureStats.from_features(L.lenet_features(digits.test_x[:250], net.net))
    assert out["fid"] == pytest.approx(M.frechet_distance(fg, fr), rel=1e-9) and out["fid_n"] == 200

    # Samples that miss half the classes are farther from the test set than real test images.
    model.decoder = _Decoder(digits.test_x[digits.test_y < 5])
    assert ev(model, epoch=2)["fid"] > 2 * out["fid"]


def _cfg(tree_eval, data=None):
    return config_from_dict({"data": data or {"name": "digits"}, "eval": tree_eval})


def test_bad_feature_settings_are_refused_at_config_validation():
    bad = [({"metrics": ["fid"], "fid": {"features": "lenett"}}, None,
            r"^eval\.fid\.features: got 'lenett' \(did you mean 'lenet'\?\); allowed: inception, lenet$"),
           ({"metrics": ["fid"], "fid": {"features": "lenet"}}, {"name": "celeba"},
            r"^eval\.fid\.features: 'lenet' is trained on class labels and celeba has none"),
           ({"metrics": ["fid"]}, {"name": "synthetic"},
            r"^eval\.metrics: 'fid' needs an image dataset; synthetic holds vectors$"),
           ({"metrics": ["fid"], "fid": {"reference_samples": 1}}, None, r"^eval\.fid\.reference_samples: got 1")]
    for tree, data, pattern in bad:
        with pytest.raises(ConfigError, match=pattern) as err:
            _cfg(tree, data)
        assert "\n" not in str(err.value)
    cfg = _cfg({"metrics": ["fid"], "fid": {"features": "lenet"}})
    assert cfg.eval.fid.features == "lenet" and isinstance(cfg, RunConfig)


@pytest.mark.slow
def test_mnist_recipe_reaches_99_percent(tmp_path):
    data = load_dataset(DataConfig(name="mnist", root=str(Path(__file__).resolve().parents[1] / "data")))
    net = T.load_or_train("mnist", data.train_x, data.train_y, data.test_x, data.test_y, root=tmp_path)
    assert net.test_accuracy >= 0.99


def test_captions_name_the_feature_network_and_refuse_mixed_spaces(tmp_path):
    import pandas as pd

    from harness.figures.generic import metric_notes
    from harness.figures.results import ItemDataError, SweepResults
    from harness.sweep.identity import run_dir

    def sweep(spaces):
        ids = [f"{i:012x}" for i in range(len(spaces))]
        runs = pd.DataFrame({"id": ids, "status": "done"})
        configs = {}
        for i, (features, sha, acc) in enumerate(spaces):
            folder = run_dir(tmp_path / f"s{len(spaces)}{spaces[0][1][:4]}", ids[i])
            folder.mkdir(parents=True)
            (folder / "fid_provenance.json").write_text(json.dumps(
                {"features": features, "dims": 128, "weights_sha256": sha, "test_accuracy": acc}))
            configs[ids[i]] = {"eval.fid.features": features, "eval.every": 1}
        return SweepResults("s", tmp_path / f"s{len(spaces)}{spaces[0][1][:4]}", "run folders", [], runs,
                            pd.DataFrame(), configs)

    one = sweep([("lenet", "ab" * 32, 0.9917), ("lenet", "ab" * 32, 0.9917)])
    (note,) = metric_notes([one], ["fid"])
    assert "eval.fid.features = lenet" in note and "lenet-128 (sha256 abababababab, test accuracy 99.17%)" in note
    mixed = sweep([("lenet", "cd" * 32, 0.99), ("lenet", "ef" * 32, 0.98)])
    with pytest.raises(ItemDataError, match="fid: the runs were measured in 2 feature spaces"):
        metric_notes([mixed], ["fid"])
    with pytest.raises(ItemDataError, match="several|eval.fid.features = inception, lenet"):
        metric_notes([one, sweep([("inception", "12" * 32, None)])], ["kid"])
