"""Acceptance: the whole pipeline learns. Training the tiny demo config on 2 generated frames with the
real training loop and evaluating those frames with the real evaluation reaches PQ >= 80.

Single CPU process, fixed seed, 500 iterations: about 3 minutes on a 2-core machine.
"""
import os

import pytest
import yaml

from tests.conftest import DEMO_CONFIG

OVERFIT_ITERS = 500


def _overfit_config(tmp_path, data_root):
    """Demo config restricted to the 2 frames: no augmentation, both images in every batch, and
    evaluation on the training split itself."""
    train_tf = [
        {"type": "PanopticRandomPaddingCrop", "crop_size": [257, 129], "im_padding_value": 127.5,
         "label_padding_value": 0},
        {"type": "Normalize"},
    ]
    cfg = {
        "_base_": DEMO_CONFIG,
        "batch_size": 2,
        "iters": OVERFIT_ITERS,
        "seed": 0,
        "train_dataset": {"dataset_root": data_root, "transforms": train_tf},
        "val_dataset": {"dataset_root": data_root, "mode": "train"},
    }
    path = tmp_path / "overfit.yml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.slow
def test_training_overfits_two_frames_to_pq_80(tmp_path):
    from paddleseg_ext.core.train import train
    from paddleseg_ext.datasets.demo_dataset import make_demo_dataset

    data_root = str(tmp_path / "data")
    make_demo_dataset(data_root, seed=3, num_train=2, num_val=0)
    config = _overfit_config(tmp_path, data_root)

    result = train(config, save_dir=str(tmp_path / "out"), save_interval=OVERFIT_ITERS, do_eval=True,
                   log_iters=50, device="cpu")

    assert result["iteration"] == OVERFIT_ITERS
    metrics = result["metrics"]
    assert metrics["num_images"] == 2
    pq = metrics["panoptic"]["All"]["pq"]
    print("overfit PQ {:.2f}, things {:.2f}, stuff {:.2f}, mIoU {:.2f}".format(
        100 * pq, 100 * metrics["panoptic"]["Things"]["pq"], 100 * metrics["panoptic"]["Stuff"]["pq"],
        100 * metrics["semantic"]["mIoU"]))
    assert pq >= 0.80, metrics["panoptic"]
    # the checkpoint the loop wrote is the model that was evaluated
    assert os.path.isfile(os.path.join(str(tmp_path / "out"), "iter_{}".format(OVERFIT_ITERS), "model.pdparams"))
