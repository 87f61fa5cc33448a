"""The pipeline's pieces (`pipeline.predictor`): the valid region of the network input after the val
transforms, `preprocess`, and the `Predictor` outputs and timings."""
import numpy as np
import pytest

from paddleseg_ext.datasets import build_transforms
from paddleseg_ext.pipeline import build_predictor, preprocess, valid_region
from paddleseg_ext.runtime import build_model, load_config


@pytest.mark.parametrize("trans_info, input_hw, expected", [
    ([], (64, 96), (64, 96)),                                          # nothing recorded: the whole input
    ([("padding", (40, 50))], (64, 96), (40, 50)),                     # padded bottom/right
    ([("resize", (40, 50))], (64, 96), (64, 96)),                      # resized: all of it is the image
    ([("resize", (40, 50)), ("padding", (30, 60))], (64, 96), (30, 60)),  # resized, then padded
    ([("padding", (40, 50)), ("resize", (64, 80))], (64, 96), (64, 96)),  # padding resized away
    ([("padding", (40, 50)), ("padding", (50, 60))], (64, 96), (40, 50)),  # the first padding counts
])
def test_valid_region(trans_info, input_hw, expected):
    assert valid_region(trans_info, input_hw) == expected


def test_preprocess_pads_or_resizes():
    image = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    pad = build_transforms([{"type": "PanopticPadding", "target_size": [97, 65]}, {"type": "Normalize"}])
    x, valid_hw, ori_hw = preprocess(image, pad)
    assert x.shape == (1, 3, 65, 97) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    assert valid_hw == (50, 70) and ori_hw == (50, 70)
    np.testing.assert_allclose(x[0, :, :50, :70], (image.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5, atol=1e-6)
    resize = build_transforms([{"type": "Resize", "target_size": [40, 30]}, {"type": "Normalize"}])
    x, valid_hw, ori_hw = preprocess(image, resize)
    assert x.shape == (1, 3, 30, 40) and valid_hw == (30, 40) and ori_hw == (50, 70)


def test_predictor_outputs_and_timings(demo):
    cfg = load_config(demo.cfg)
    builder, model = build_model(cfg, demo.cfg, demo.weights)
    predictor = build_predictor(model, cfg, demo.cfg, builder, postprocess={"threshold": 0.0})
    assert predictor.meta.num_classes == 19
    image = np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    out = predictor(image)
    assert set(out) == {"panoptic", "semantic", "instance_ids", "instance_scores"}
    assert out["panoptic"].shape == out["semantic"].shape == (37, 53)
    assert out["panoptic"].dtype == out["semantic"].dtype == out["instance_ids"].dtype == np.int64
    m = out["instance_ids"].size
    assert out["instance_scores"].shape == (m, 2) and out["instance_scores"].dtype == np.float32
    # every listed instance is in the map
    assert np.isin(out["instance_ids"], out["panoptic"]).all()
    assert set(predictor.timings) == {"preprocess", "network", "postprocess"}
    assert all(v > 0 for v in predictor.timings.values())
    predictor.reset_timings()
    assert all(v == 0 for v in predictor.timings.values())
