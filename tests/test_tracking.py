"""TensorBoard logging (``train.tensorboard``), read back through tensorboard's own event reader:
scalars per epoch equal the metrics.jsonl rows, the labelled image grids are there per
evaluation, and the HParams plugin holds the run's hyper-parameters and final metrics. Also
the status lines a run prints off a terminal."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from harness.config import config_from_dict
from harness.tracking import TENSORBOARD_DIR, hparams_of
from harness.train import epoch_line, train_run


def _tree(tiny_tree, tensorboard=True):
    tree = dict(tiny_tree)
    tree["data"] = {"name": "digits", "train_limit": 256, "test_limit": 64}
    tree["model"] = {"arch": "mlp", "hidden": [32], "latent_dim": 8, "prior": "sphere"}
    tree["train"] = dict(tiny_tree["train"], epochs=2, tensorboard=tensorboard)
    tree["eval"] = {"every": 1, "metrics": ["recon", "artifacts"], "num_samples": 64,
                    "artifacts": {"tsne_points": 30}}
    return tree


def _events(run):
    acc = EventAccumulator(str(run / TENSORBOARD_DIR), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_scalars_images_and_hparams(tmp_path, tiny_tree):
    cfg = config_from_dict(_tree(tiny_tree))
    run = tmp_path / "run"
    assert train_run(cfg, run) == "done"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    acc = _events(run)
    tags = acc.Tags()
    # scalars per epoch: the same numbers as metrics.jsonl (float32 in the event file)
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [r["epoch"] for r in rows if "loss" in r] == [1, 2]
    np.testing.assert_allclose([e.value for e in loss], [r["loss"] for r in rows if "loss" in r], rtol=1e-6)
    recon = acc.Scalars("eval/test_recon")
    assert [e.step for e in recon] == [0, 1, 2]  # epoch 0 = the initial model
    np.testing.assert_allclose([e.value for e in recon], [r["test_recon"] for r in rows], rtol=1e-6)
    # the labelled grids of every evaluation
    assert {"grids/samples", "grids/reconstructions", "grids/interpolations"} <= set(tags["images"])
    images = acc.Images("grids/reconstructions")
    assert [i.step for i in images] == [0, 1, 2] and images[-1].width > 8 * 8 * 4
    # HParams: hyper-parameters and final metrics of this run
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["method.tau"].number_value == pytest.approx(0.2)
    assert start.hparams["method.name"].string_value == "moca"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} >= {"final/test_recon", "final/done"}
    final = acc.Scalars("final/test_recon")
    assert final[-1].value == pytest.approx(rows[-1]["test_recon"], rel=1e-6)
    assert acc.Scalars("final/done")[-1].value == 1.0


def test_off_by_default_and_not_part_of_the_run_identity(tmp_path, tiny_tree):
    from harness.sweep.identity import run_id

    on, off = config_from_dict(_tree(tiny_tree)), config_from_dict(_tree(tiny_tree, tensorboard=False))
    assert run_id(on) == run_id(off)
    assert config_from_dict(tiny_tree).train.tensorboard is False
    assert train_run(off, tmp_path / "run") == "done"
    assert not (tmp_path / "run" / TENSORBOARD_DIR).exists()


def test_hparams_are_values_tensorboard_accepts():
    hp = hparams_of({"method": {"name": "moca", "tau": 0.1, "queue_size": 10}, "model": {"hidden": [1, 2]},
                     "seed": 3, "eval": {"every": 1}, "train": {"epochs": 4, "device": "cpu"}})
    assert hp == {"method.name": "moca", "method.tau": 0.1, "method.queue_size": 10.0, "model.hidden": "[1, 2]",
                  "seed": 3.0, "train.epochs": 4.0}


def test_epoch_line_for_logs():
    line = epoch_line({"epoch": 3, "step": 30, "loss": 12.345678, "recon": 11.9, "lr": 0.001, "epoch_time_s": 4.06,
                       "image_swd": 812.0}, 8)
    assert line == "epoch 3/8: loss=12.35 recon=11.9 image_swd=812 (4.1 s)"
