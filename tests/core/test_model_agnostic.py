"""The loops work with any `PanopticModel`: a second, tiny panoptic model defined here (one 1x1 convolution
giving semantic logits; its post-processing takes the argmax as the semantic map and a stuff-only
panoptic map ``class * label_divisor``, with no instances) is registered under a test-only name, then
trained by the real `core.train.train` from a YAML config written here (demo dataset), evaluated by
`core.val.run_val`, predicted by `core.predict.run_predict` and exported by `core.export.export`, with
no change to the loops."""
import contextlib
import io
import json
import os
import re

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
import yaml
from paddleseg.cvlibs import manager

from paddleseg_ext.core.export import export
from paddleseg_ext.core.predict import OUTPUT_SUFFIXES, run_predict
from paddleseg_ext.core.train import train
from paddleseg_ext.core.val import run_val
from paddleseg_ext.models.base import PanopticModel
from paddleseg_ext.pipeline import StaticPredictor
from paddleseg_ext.utils import UserInputError, read_image, read_panoptic_png
from tests.conftest import VOID

ITERS = 4


class ArgmaxPostprocess(nn.Layer):
    """Semantic logits [1, C, H, W] -> (panoptic = class * label_divisor, semantic = argmax, no instances)
    at the original image size; traceable."""

    def __init__(self, label_divisor):
        super().__init__()
        self.label_divisor = int(label_divisor)

    def forward(self, outputs, valid_hw, ori_hw):
        logits = paddle.slice(outputs[0], axes=[2, 3], starts=[0, 0], ends=valid_hw.astype("int64"))
        logits = F.interpolate(logits, size=ori_hw.astype("int64"), mode="bilinear", align_corners=False)
        semantic = paddle.argmax(logits[0], axis=0)
        return (semantic * self.label_divisor, semantic, paddle.zeros([0], dtype="int64"),
                paddle.zeros([0, 0], dtype="float32"))


class TestOnlyArgmaxSemanticModel(PanopticModel):
    """A 1x1 convolution: semantic segmentation seen as stuff-only panoptic segmentation."""

    __test__ = False  # not a pytest test class

    def __init__(self, num_classes, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, num_classes, 1)

    def forward(self, x):
        return [self.conv(x)]

    def loss(self, outputs, batch, losses):
        (ce,), (coef,) = losses["types"], losses["coef"]
        return {"ce": coef * ce(outputs[0], batch["semantic"])}

    def build_postprocess(self, meta, params):
        assert params == {}  # no post-processing settings
        return ArgmaxPostprocess(meta.label_divisor)


@pytest.fixture(scope="module")
def registered():
    """The model in `manager.MODELS` for this module only."""
    name = TestOnlyArgmaxSemanticModel.__name__
    assert name not in manager.MODELS.components_dict
    manager.MODELS.add_component(TestOnlyArgmaxSemanticModel)
    yield name
    manager.MODELS.components_dict.pop(name)


@pytest.fixture(scope="module")
def trained(registered, demo_root, tmp_path_factory):
    """A config of the tiny model on the demo dataset, trained ITERS iterations with evaluation."""
    tmp = tmp_path_factory.mktemp("agnostic")
    cfg = {
        "batch_size": 2, "iters": ITERS, "seed": 0,
        "train_dataset": {"type": "CityscapesPanoptic", "dataset_root": demo_root, "mode": "train",
                          "transforms": [{"type": "PanopticRandomPaddingCrop", "crop_size": [129, 65]},
                                         {"type": "Normalize"}]},
        "val_dataset": {"type": "CityscapesPanoptic", "dataset_root": demo_root, "mode": "val",
                        "transforms": [{"type": "PanopticPadding", "target_size": [257, 129]}, {"type": "Normalize"}]},
        "optimizer": {"type": "SGD"},
        "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.1, "end_lr": 0.0, "power": 0.9},
        "loss": {"types": [{"type": "TopKCrossEntropyLoss", "top_k_percent_pixels": 1.0}], "coef": [1]},
        "model": {"type": registered, "num_classes": 19},
    }
    path = str(tmp / "tiny.yml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    save = str(tmp / "out")
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        result = train(path, save_dir=save, save_interval=ITERS, do_eval=True, log_iters=2, device="cpu")
    return {"cfg": path, "save": save, "weights": os.path.join(save, "iter_{}".format(ITERS)), "result": result,
            "tmp": tmp, "log": log.getvalue()}


def _check_stuff_only_metrics(metrics):
    assert metrics["num_images"] == 4
    assert metrics["instance"] == {}  # no score modes: no instance AP
    assert metrics["panoptic"]["Things"]["pq"] == 0.0
    for g in ("All", "Things", "Stuff"):
        assert 0.0 <= metrics["panoptic"][g]["pq"] <= 1.0
    assert 0.0 < metrics["semantic"]["mIoU"] <= 1.0


def test_training_loop_sums_logs_and_evaluates_the_model_terms(trained):
    result = trained["result"]
    assert result["iteration"] == ITERS
    # the model's one loss term, logged by name; the total is its sum
    logged = re.findall(r"\[TRAIN\] iter: (\d+)/4, loss: ([0-9.]+) \(ce: ([0-9.]+)\)", trained["log"])
    assert [int(i) for i, _, _ in logged] == [2, 4], trained["log"]
    assert all(total == ce and np.isfinite(float(total)) for _, total, ce in logged)
    assert "[EVAL] iter 4: PQ" in trained["log"]
    _check_stuff_only_metrics(result["metrics"])
    assert os.path.isfile(os.path.join(trained["weights"], "model.pdparams"))
    assert os.path.isfile(os.path.join(trained["save"], "best_model", "model.pdparams"))


def test_evaluation_loop(trained, tmp_path):
    results = str(tmp_path / "metrics.json")
    metrics = run_val(trained["cfg"], trained["weights"], results_file=results, save_predictions=str(tmp_path / "p"),
                      device="cpu")
    _check_stuff_only_metrics(metrics)
    with open(results) as f:
        assert json.load(f)["panoptic"]["All"]["n"] == metrics["panoptic"]["All"]["n"]
    # what the loop never asks of a model that lacks it: oracle substitutions and test-time augmentation
    with pytest.raises(UserInputError, match="cannot substitute semantic"):
        run_val(trained["cfg"], trained["weights"], oracle=("semantic",), device="cpu")
    with pytest.raises(UserInputError, match="does not support test-time augmentation"):
        run_val(trained["cfg"], trained["weights"], scales=(0.5, 1.0), device="cpu")


def test_prediction_and_export_loops(trained, demo_root):
    image = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(demo_root, "leftImg8bit", "val"))
                   for f in fs)[0]
    out = str(trained["tmp"] / "predict")
    (done,) = run_predict(trained["cfg"], trained["weights"], image, out, device="cpu")
    raw = read_panoptic_png(done[1]["panoptic_raw"]).astype(np.int64)
    assert raw.shape == read_image(image).shape[:2]
    assert (raw % 1000 == 0).all() and (raw != VOID).all() and ((raw // 1000) < 19).all()  # stuff only
    assert sorted(done[1]) == sorted(OUTPUT_SUFFIXES)

    files = export(trained["cfg"], trained["weights"], str(trained["tmp"] / "exported"))
    static = StaticPredictor(os.path.dirname(files["deploy"]), use_ir_optim=False)
    assert static.info["model_type"] == TestOnlyArgmaxSemanticModel.__name__
    np.testing.assert_array_equal(static(read_image(image))["panoptic"], raw)
