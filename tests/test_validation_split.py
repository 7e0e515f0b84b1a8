"""The validation split (data.val_size / data.val_seed) and eval.split (harness/datasets/_base.py)."""

from __future__ import annotations

import pytest
import torch

from harness.config import ConfigError, config_from_dict
from harness.datasets import DataBundle, load_dataset
from harness.datasets._base import hold_out_validation
from harness.metrics.recon import reconstruction_error
from harness.trainer import Trainer


def bundle(n=50) -> DataBundle:
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    return DataBundle("t", train_x=x, test_x=-x[:10], train_y=torch.arange(n), test_y=torch.zeros(10))


def test_hold_out_is_disjoint_seeded_and_keeps_the_training_order():
    b = hold_out_validation(bundle(), 12, seed=3)
    train, val = b.train_x[:, 0].long().tolist(), b.val_x[:, 0].long().tolist()
    assert len(val) == 12 and len(train) == 38 and sorted(train + val) == list(range(50))
    assert train == sorted(train) and b.train_y.tolist() == train and b.val_y.tolist() == val
    assert b.test_x.shape == (10, 3)  # the test split is untouched
    again = hold_out_validation(bundle(), 12, seed=3)
    assert torch.equal(again.val_x, b.val_x)
    other = hold_out_validation(bundle(), 12, seed=4)
    assert not torch.equal(other.val_x, b.val_x)
    assert hold_out_validation(bundle(), 0, seed=3).val_x is None
    with pytest.raises(ConfigError, match="data.val_size: got 50; allowed: fewer than the 50 training items"):
        hold_out_validation(bundle(), 50, seed=0)


def test_the_split_does_not_depend_on_the_run_seed(tiny_tree):
    tiny_tree["data"]["val_size"] = 30
    a = load_dataset(config_from_dict(tiny_tree).data, seed=0)
    b = load_dataset(config_from_dict(tiny_tree).data, seed=7)
    assert torch.equal(a.val_x, b.val_x) and len(a.train_x) == 160 - 30


def test_eval_split_val_evaluates_on_the_held_out_items(tiny_tree):
    tiny_tree["data"]["val_size"] = 30
    tiny_tree["eval"] = {"metrics": ["recon"], "split": "val"}
    cfg = config_from_dict(tiny_tree)
    trainer = Trainer(cfg)
    got = trainer.evaluate()["test_recon"]
    data = trainer.data
    on_val = reconstruction_error(trainer.model, data.val_x, data.to_float, trainer.prior.project, trainer.device)
    on_test = reconstruction_error(trainer.model, data.test_x, data.to_float, trainer.prior.project, trainer.device)
    assert got == pytest.approx(on_val) and got != pytest.approx(on_test)


@pytest.mark.parametrize("change,message", [
    ({"eval": {"split": "val"}}, "eval.split: got 'val'; allowed: test, or val together with data.val_size >= 1"),
    ({"eval": {"split": "valid"}}, "eval.split: got 'valid'"),
    ({"data": {"val_size": -1}}, "data.val_size: got -1; allowed: an integer >= 0"),
    ({"data": {"val_size": 100, "train_limit": 100}}, "data.val_size: got 100; allowed: an integer below data.train_limit"),
])
def test_bad_split_settings_are_config_errors(tiny_tree, change, message):
    for section, values in change.items():
        tiny_tree.setdefault(section, {}).update(values)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_from_dict(tiny_tree)
