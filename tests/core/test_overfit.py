"""Acceptance: the whole pipeline learns. Training a demo config on 2 generated frames with the real
training loop and evaluating those frames with the real evaluation reaches PQ >= 80.

The protocol is `tools/sweep_demo.py --overfit`: 2 frames of dataset seed 3, both in every batch, preprocessed
as for evaluation. `python tools/sweep_demo.py --overfit --seeds 0 1 2` runs it for 3 seeds; the suite runs seed 0 of each model: Panoptic-DeepLab here,
PanopticFCN in `tests/models/panoptic_fcn/test_overfit.py` (two files, so that parallel workers,
which keep each file on one worker (pytest.ini), can run the two long trainings side by side).
"""
import os

import pytest

from paddleseg_ext.core.train import train
from paddleseg_ext.datasets.demo_dataset import make_demo_dataset
from tests.conftest import DEMO_CONFIG, ROOT, load_script

SWEEP = load_script(os.path.join(ROOT, "tools", "sweep_demo.py"))
OVERFIT, overfit_config = SWEEP.OVERFIT, SWEEP.overfit_config


def check_overfit(tmp_path, base):
    """Train `base` (a demo config path) with the overfit protocol, seed 0, and assert PQ >= 80 on its 2
    frames and a checkpoint of the evaluated model."""
    data_root = str(tmp_path / "data")
    make_demo_dataset(data_root, seed=OVERFIT["dataset_seed"], num_train=OVERFIT["num_train"], num_val=0)
    config = overfit_config(str(tmp_path / "overfit.yml"), data_root, base, seed=0)
    iters = OVERFIT["iters"]

    result = train(config, save_dir=str(tmp_path / "out"), save_interval=iters, do_eval=True, log_iters=50,
                   device="cpu")

    assert result["iteration"] == iters
    metrics = result["metrics"]
    assert metrics["num_images"] == 2
    pq = metrics["panoptic"]["All"]["pq"]
    print("overfit PQ {:.2f}, things {:.2f}, stuff {:.2f}, mIoU {:.2f}".format(
        100 * pq, 100 * metrics["panoptic"]["Things"]["pq"], 100 * metrics["panoptic"]["Stuff"]["pq"],
        100 * metrics["semantic"]["mIoU"]))
    assert pq >= OVERFIT["min_pq"], metrics["panoptic"]
    # the checkpoint the loop wrote is the model that was evaluated
    assert os.path.isfile(os.path.join(str(tmp_path / "out"), "iter_{}".format(iters), "model.pdparams"))


@pytest.mark.slow
def test_panoptic_deeplab_overfits_two_frames_to_pq_80(tmp_path):
    check_overfit(tmp_path, DEMO_CONFIG)
