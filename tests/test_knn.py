"""kNN accuracy of latents (harness/metrics/knn.py, harness/evaluators/knn.py)."""

from __future__ import annotations

import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from harness.config import ConfigError, config_from_dict
from harness.metrics.knn import knn_accuracy, knn_predict


@pytest.mark.parametrize("k", [1, 4, 10])
def test_predictions_equal_scikit_learn(k):
    g = torch.Generator().manual_seed(k)
    train, labels, test = torch.randn(300, 5, generator=g), torch.randint(0, 4, (300,), generator=g), torch.randn(200, 5, generator=g)
    expected = KNeighborsClassifier(k, algorithm="brute").fit(train.numpy(), labels.numpy()).predict(test.numpy())
    assert knn_predict(train, labels, test, k, chunk=33).tolist() == expected.tolist()


def test_hand_made_clusters():
    train = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0], [5.0, 5.2]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    test = torch.tensor([[0.05, 0.1], [4.9, 5.1]])
    assert knn_accuracy(train, labels, test, torch.tensor([0, 1]), k=2) == 1.0
    assert knn_accuracy(train, labels, test, torch.tensor([1, 1]), k=2) == 0.5
    assert knn_predict(train, labels, test, k=5).tolist() == [1, 1]  # the majority of all five
    assert knn_predict(train[:4], labels[:4], test, k=4).tolist() == [0, 0]  # a 2-2 tie: smallest label


def test_evaluator_and_config_checks(tmp_path):
    from harness.datasets import load_dataset
    from harness.evaluators import build_evaluator, make_context
    from harness.priors import build_prior

    cfg = config_from_dict({"data": {"name": "digits"}, "eval": {"metrics": ["knn"], "knn": {"k": 3, "num_train": 500}}})
    data = load_dataset(cfg.data)
    prior = build_prior("sphere", 64)
    model = torch.nn.Module()
    model.encoder = torch.nn.Flatten()  # pixels as latents (projected onto the sphere)
    ev = build_evaluator("knn", make_context(cfg, data, prior, "cpu", None))
    acc = ev(model, 1)["knn_acc"]
    z = lambda x: torch.nn.functional.normalize(x.float().flatten(1) / 255, dim=1)  # noqa: E731
    assert acc == pytest.approx(knn_accuracy(z(data.train_x[:500]), data.train_y[:500], z(data.test_x), data.test_y, 3))
    assert acc > 0.9  # digits are well clustered even in pixel space

    for tree, pattern in [({"name": "synthetic"}, r"^eval\.metrics: 'knn' needs a dataset with class labels"),
                          ({"name": "celeba"}, r"^eval\.metrics: 'knn' needs a dataset with class labels"),
                          ({"name": "digits", "train_limit": 20}, r"^eval\.knn\.k: got 30; allowed: 1 to 20")]:
        with pytest.raises(ConfigError, match=pattern) as err:
            config_from_dict({"data": tree, "eval": {"metrics": ["knn"], "knn": {"k": 30 if "train_limit" in tree else 10}}})
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"^eval\.knn\.k: got 0"):
        config_from_dict({"data": {"name": "digits"}, "eval": {"knn": {"k": 0}}})
