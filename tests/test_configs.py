"""Every shipped config parses with paddleseg's Config, builds through SegBuilder and runs."""
import glob
import os

import paddle
import paddle.base.unique_name as unique_name
import pytest
from paddleseg.cvlibs import Config, SegBuilder, manager

import paddleseg_ext  # noqa: F401
from tests.conftest import CONFIG_DIR

CFG_DIR = CONFIG_DIR
CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(CFG_DIR, "*.yml")))
R50_OS32 = {
    "panoptic_deeplab_resnet50_os32_cityscapes_1025x513_bs8_90k_lr00005.yml": (8, [1025, 513]),
    "panoptic_deeplab_resnet50_os32_cityscapes_2049x1025_bs1_90k_lr00005.yml": (1, [2049, 1025]),
}
POSTPROCESS_KEYS = {"threshold", "nms_kernel", "top_k", "stuff_area"}


def load(name):
    return Config(os.path.join(CFG_DIR, name))


def test_expected_configs_exist():
    for name in list(R50_OS32) + ["panoptic_deeplab_demo_cpu.yml"]:
        assert name in CONFIGS
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("name", CONFIGS)
def test_config_sections(name):
    cfg = load(name)
    train, val = cfg.train_dataset_cfg, cfg.val_dataset_cfg
    assert val["mode"] == "val" and train["mode"] == "train"
    dataset_cls = manager.DATASETS[train["type"]]
    assert cfg.model_cfg["num_classes"] == dataset_cls.NUM_CLASSES
    assert set(cfg.dic["postprocess"]) == POSTPROCESS_KEYS
    # coefficients per source (docs/config_audit.md): PaddleSeg 0.001 with per-element offset
    # normalisation, bowenc0221 / detectron2 / the demo 0.01 per pixel.
    assert cfg.dic["loss"]["coef"] in ([1, 200, 0.01], [1, 200, 0.001])
    val_types = [t["type"] for t in val["transforms"]]
    assert "PanopticPadding" in val_types[:2]
    if train["type"] == "CityscapesPanoptic" and "demo" not in name:
        assert val["transforms"][0]["target_size"] in ([2049, 1025], [2048, 1024])
        assert train["dataset_root"] == "data/cityscapes"
    if "demo" in name:
        assert train["dataset_root"] == "data/demo_cityscapes"


@pytest.mark.parametrize("name", sorted(R50_OS32))
def test_released_r50_os32_recipe(name):
    batch, crop = R50_OS32[name]
    cfg = load(name)
    assert cfg.batch_size == batch and cfg.iters == 90000
    assert cfg.optimizer_cfg["type"] == "Adam"
    lr = cfg.lr_scheduler_cfg
    assert (lr["type"], lr["learning_rate"], lr["power"], lr["end_lr"]) == ("PolynomialDecay", 5e-5, 0.9, 0.0)
    # PaddleSeg's own RandomPaddingCrop (bottom/right padding), as in its released configs
    crop_t = [t for t in cfg.train_dataset_cfg["transforms"] if t["type"] == "RandomPaddingCrop"]
    assert crop_t[0]["crop_size"] == crop
    scale_t = [t for t in cfg.train_dataset_cfg["transforms"] if t["type"] == "ResizeStepScaling"]
    assert (scale_t[0]["min_scale_factor"], scale_t[0]["max_scale_factor"], scale_t[0]["scale_step_size"]) == (
        0.5, 2.0, 0.25)
    assert cfg.dic["loss"]["coef"] == [1, 200, 0.001]
    model = cfg.model_cfg
    assert model["align_corners"] is True and model["aspp_ratios"] == [1, 3, 6, 9]
    backbone = model["backbone"]
    assert (backbone["type"], backbone["output_stride"]) == ("ResNet50_vd", 32)
    assert backbone["pretrained"] == "https://bj.bcebos.com/paddleseg/dygraph/resnet50_vd_ssld_v2.tar.gz"


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_and_trains_one_step(name):
    """SegBuilder builds model + losses; forward/backward on an odd 65x129 input on CPU."""
    cfg = load(name)
    cfg.dic["model"]["backbone"]["pretrained"] = None  # tests run offline
    builder = SegBuilder(cfg)
    # PaddleSeg's MobileNetV2 uses fixed parameter names: a fresh name scope allows rebuilding it.
    with unique_name.guard():
        model = builder.model
    assert {type(t).__name__ for t in builder.loss["types"]} == {
        "TopKCrossEntropyLoss", "WeightedMSELoss", "WeightedL1Loss"}
    model.train()
    out = model(paddle.randn([1, 3, 65, 129]))
    n = cfg.model_cfg["num_classes"]
    assert [o.shape for o in out] == [[1, n, 65, 129], [1, 1, 65, 129], [1, 2, 65, 129]]
    sum(o.mean() for o in out).backward()
    grads = [p.grad for p in model.parameters() if not p.stop_gradient]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
