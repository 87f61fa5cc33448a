"""The pipeline's pieces (`pipeline.predictor`): the valid region of the network input after the val
transforms, `preprocess` (images of any size: every config's val transforms), and the `Predictor` outputs
and timings."""
import glob
import os

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from paddleseg.transforms import Compose

from paddleseg_ext.datasets import build_transforms
from paddleseg_ext.pipeline import build_predictor, preprocess, valid_region
from paddleseg_ext.runtime import build_model, load_config
from paddleseg_ext.transforms import PanopticPadding
from paddleseg_ext.transforms.panoptic_transforms import next_accepted_size
from paddleseg_ext.utils import UserInputError
from tests.conftest import ROOT


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


# ---------------------------------------------------------------- images of any size

@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 5000), target=st.integers(1, 3000), divisor=st.sampled_from([1, 16, 32, 64]))
def test_next_accepted_size(size, target, divisor):
    n = int(next_accepted_size(size, target, divisor))
    # the smallest size that holds the image, is not below the target and has the target's residue
    assert n >= size and n >= target and (n - target) % divisor == 0
    assert n - divisor < max(size, target)
    assert (n == target) == (size <= target)


def _val_transforms_of_every_config():
    """(config names, val transforms as dicts) of every config under configs/ (their _base_ files merged), one
    entry per distinct list of transforms (most configs share the Cityscapes base's)."""
    import json

    from paddleseg.cvlibs import Config

    names = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "[!_]*", "*.yml"))):
        transforms = (Config(path).dic.get("val_dataset") or {}).get("transforms")
        if transforms:
            names.setdefault(json.dumps(transforms, sort_keys=True), []).append(os.path.basename(path))
    return [pytest.param(json.loads(k), id=v[0] if len(v) == 1 else "{}+{}".format(v[0], len(v) - 1))
            for k, v in names.items()]


@pytest.mark.parametrize("transforms", _val_transforms_of_every_config())
def test_every_config_accepts_images_larger_and_smaller_than_its_padding(transforms):
    """Every config's val transforms through `preprocess`: an image smaller than the padding as in val.py
    (the plain transforms), a larger one padded to the next 32k (+1) size; gray and RGBA arrays too."""
    built = build_transforms(transforms)
    pads = [t for t in built if isinstance(t, PanopticPadding)]
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (31, 45, 3), dtype=np.uint8)
    x, valid_hw, ori_hw = preprocess(small, built)
    data = Compose(built, to_rgb=False)({"img": small.astype(np.float32), "trans_info": []})
    np.testing.assert_array_equal(x[0], data["img"])  # exactly what the val transforms give
    assert ori_hw == (31, 45)
    if not pads:  # a resizing config: any size already works
        return
    (pad,) = pads
    # larger than the padding (after the config's own resizes, if any: then the resize decides)
    big_hw = (pad.target_h + 37, pad.target_w + 51)
    for image in (rng.integers(0, 255, big_hw + ((4,) if pad.target_w % 2 else ()), dtype=np.uint8),):  # gray/RGBA
        x, valid_hw, ori_hw = preprocess(image, built)
        assert ori_hw == big_hw and x.shape[:2] == (1, 3)
        if any(op for op in transforms if "Resize" in op["type"]):
            assert x.shape[2:] == (pad.target_h, pad.target_w)  # resized to fit the padding
            continue
        assert valid_hw == big_hw
        assert x.shape[2:] == tuple(next_accepted_size(big_hw, (pad.target_h, pad.target_w)))
        assert (x.shape[2] - pad.target_h) % 32 == 0 and (x.shape[3] - pad.target_w) % 32 == 0
        assert (x[0, :, :big_hw[0], :big_hw[1]] == x[0, 0, 0, 0]).sum() < x[0, :, :big_hw[0], :big_hw[1]].size
        np.testing.assert_allclose(x[0, :, big_hw[0]:], 0.0, atol=1e-6)  # 127.5 normalised
    # the config's transform objects are left as they are: a dataset still refuses the larger image
    with pytest.raises(UserInputError, match="larger than target_size"):
        pad({"img": np.zeros(big_hw + (3,), np.float32), "trans_info": []})


def test_preprocess_long_side_and_channels():
    image = np.random.default_rng(2).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    pad = build_transforms([{"type": "PanopticPadding", "target_size": [97, 65]}, {"type": "Normalize"}])
    x, valid_hw, ori_hw = preprocess(image, pad, long_side=45)
    # resized to 30x45 (PaddleSeg's ResizeByLong), then padded; the maps go back to 60x90
    assert x.shape == (1, 3, 65, 97) and valid_hw == (30, 45) and ori_hw == (60, 90)
    np.testing.assert_allclose(x[0, :, :30, :45], (cv2.resize(image.astype(np.float32), (45, 30)).transpose(
        2, 0, 1) / 255.0 - 0.5) / 0.5, atol=1e-5)
    gray = image[..., 0]
    np.testing.assert_array_equal(preprocess(gray, pad)[0], preprocess(np.stack([gray] * 3, -1), pad)[0])
    rgba = np.concatenate([image, np.zeros((60, 90, 1), np.uint8)], -1)
    np.testing.assert_array_equal(preprocess(rgba, pad)[0], preprocess(image, pad)[0])
    with pytest.raises(UserInputError, match="long_side"):
        preprocess(image, pad, long_side=0)
    with pytest.raises(UserInputError, match="shape"):
        preprocess(np.zeros((4, 5, 2), np.uint8), pad)
