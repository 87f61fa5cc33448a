"""Transforms keep image and segment-id label aligned (PaddleSeg's and the panoptic ones)."""
import numpy as np
import pytest
from paddleseg.cvlibs import manager
from paddleseg.transforms import Normalize, RandomDistort, RandomHorizontalFlip, ResizeStepScaling

from paddleseg_ext.transforms import PanopticPadding, PanopticRandomPaddingCrop
from paddleseg_ext.utils import UserInputError

BIG_ID = 256 ** 3 - 2  # COCO ids reach 256^3 - 1: they must survive resizing exactly


def coordinate_sample(h, w):
    """img channels = (row, col, 0) and label = row * w + col + 1 (>= 1, so 0 marks padding)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([yy, xx, np.zeros_like(yy)], -1).astype(np.float32)
    label = (yy * w + xx + 1).astype(np.int32)
    return {"img": img, "label": label, "gt_fields": ["label"], "trans_info": []}


def assert_aligned(data, w):
    img, label = data["img"], data["label"]
    assert img.shape[:2] == label.shape
    real = label != 0
    expected = img[..., 0].astype(np.int64) * w + img[..., 1].astype(np.int64) + 1
    np.testing.assert_array_equal(label[real], expected[real])
    return real


def test_registered():
    for name in ("PanopticRandomPaddingCrop", "PanopticPadding", "PanopticTargetGenerator"):
        assert name in manager.TRANSFORMS.components_dict
    assert "instance_numbers" not in manager.TRANSFORMS.components_dict  # a helper of the target generator


def test_random_crop_inside_image_is_aligned():
    np.random.seed(0)
    for _ in range(10):
        data = PanopticRandomPaddingCrop(crop_size=[21, 13])(coordinate_sample(30, 40))
        assert data["img"].shape == (13, 21, 3) and data["label"].dtype == np.int32
        assert assert_aligned(data, 40).all()  # no padding needed


def test_crop_larger_than_image_pads_at_random_positions():
    np.random.seed(1)
    tops, lefts = set(), set()
    for _ in range(40):
        data = PanopticRandomPaddingCrop(crop_size=[15, 11], im_padding_value=127.5)(coordinate_sample(6, 9))
        assert data["img"].shape == (11, 15, 3)
        real = assert_aligned(data, 9)
        assert real.sum() == 6 * 9  # the whole image is inside the crop
        assert (data["img"][~real] == 127.5).all() and (data["label"][~real] == 0).all()
        ys, xs = np.nonzero(real)
        tops.add(ys.min())
        lefts.add(xs.min())
        assert ys.max() - ys.min() == 5 and xs.max() - xs.min() == 8
    assert len(tops) > 2 and len(lefts) > 2  # not only bottom/right padding


def test_crop_one_dim_larger():
    np.random.seed(2)
    data = PanopticRandomPaddingCrop(crop_size=[7, 12], im_padding_value=[1.0, 2.0, 3.0])(coordinate_sample(8, 20))
    assert data["img"].shape == (12, 7, 3)
    real = assert_aligned(data, 20)
    assert real.sum() == 8 * 7
    np.testing.assert_array_equal(data["img"][~real], np.tile([1.0, 2.0, 3.0], ((~real).sum(), 1)))


def test_odd_full_size_crop():
    np.random.seed(3)
    data = PanopticRandomPaddingCrop(crop_size=[2049, 1025])(coordinate_sample(1024, 2048))
    assert data["img"].shape == (1025, 2049, 3) and data["label"].shape == (1025, 2049)
    real = assert_aligned(data, 2048)
    assert real.sum() == 1024 * 2048


def test_padding_bottom_right():
    data = PanopticPadding(target_size=[2049, 1025])(coordinate_sample(1024, 2048))
    assert data["img"].shape == (1025, 2049, 3)
    real = assert_aligned(data, 2048)
    assert real[:1024, :2048].all() and not real[1024].any() and not real[:, 2048].any()
    assert (data["img"][1024] == 127.5).all()
    assert data["trans_info"] == [("padding", (1024, 2048))]


def test_padding_noop_and_error():
    sample = coordinate_sample(5, 7)
    label = sample["label"].copy()
    data = PanopticPadding(target_size=[7, 5])(sample)
    np.testing.assert_array_equal(data["label"], label)
    with pytest.raises(UserInputError, match="larger than target_size"):
        PanopticPadding(target_size=[6, 5])(coordinate_sample(5, 7))


def test_bad_crop_size():
    with pytest.raises(UserInputError, match="crop_size"):
        PanopticRandomPaddingCrop(crop_size=[1, 2, 3])


def test_paddleseg_resize_step_scaling_keeps_ids():
    np.random.seed(4)
    data = coordinate_sample(20, 30)
    data["label"][data["label"] == 31] = BIG_ID
    ids = set(np.unique(data["label"]).tolist())
    for _ in range(5):
        d = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in data.items()}
        out = ResizeStepScaling(0.5, 2.0, 0.1)(d)
        lab = out["label"]
        assert lab.dtype == np.int32 and lab.shape == out["img"].shape[:2]
        assert set(np.unique(lab).tolist()) <= ids  # nearest: no interpolated ids
    out = ResizeStepScaling(2.0, 2.0, 0)(data)
    assert out["label"].shape == (40, 60)
    assert (out["label"] == BIG_ID).sum() == 4
    # the label of an output pixel comes from a source pixel within one pixel of the bilinear image
    src = np.where(out["label"] == BIG_ID, 31, out["label"]) - 1
    sy, sx = src // 30, src % 30
    assert np.abs(sy - out["img"][..., 0]).max() <= 1.0 and np.abs(sx - out["img"][..., 1]).max() <= 1.0


def test_paddleseg_flip_distort_normalize_keep_alignment():
    np.random.seed(5)
    data = RandomHorizontalFlip(prob=1.0)(coordinate_sample(6, 9))
    assert data["label"].dtype == np.int32
    assert assert_aligned(data, 9).all()
    assert data["label"][0, 0] == 9  # the old top-right pixel
    label = data["label"].copy()
    rgb = {"img": np.random.uniform(0, 255, (6, 9, 3)).astype(np.float32), "label": label.copy(),
           "gt_fields": ["label"]}
    before = rgb["img"].copy()
    out = RandomDistort(brightness_prob=1, contrast_prob=1, saturation_prob=1, hue_prob=1)(rgb)
    np.testing.assert_array_equal(out["label"], label)
    assert out["img"].dtype == np.float32 and not np.allclose(out["img"], before)
    out = Normalize()(out)
    np.testing.assert_array_equal(out["label"], label)
    assert out["img"].min() >= -1.0 and out["img"].max() <= 1.0


def test_yaml_style_build():
    t = manager.TRANSFORMS["PanopticRandomPaddingCrop"](**{"crop_size": [65, 33], "label_padding_value": 0})
    out = t(coordinate_sample(10, 10))
    assert out["img"].shape == (33, 65, 3)
