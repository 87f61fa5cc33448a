"""PanopticFCN targets: dataset-side generator (numpy) and model-side soft maps (paddle), against
hand-computed cases."""
import math

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddleseg_ext.models.panoptic_fcn import assign
from paddleseg_ext.models.panoptic_fcn.layout import ClassLayout
from paddleseg_ext.models.panoptic_fcn.targets import (PanopticFCNTargetGenerator, assign_levels, draw_heatmaps,
                                                       feature_size, gaussian_radius, mass_centers)
from paddleseg_ext.utils import UserInputError

THINGS = list(range(11, 19))


def scene(h, w, boxes, stuff_class=0, crowd=()):
    """Segment map with one stuff segment (id 1) and thing boxes (ids 2..), class 11 + i % 8."""
    seg = np.ones((h, w), np.int32)
    info = [{"id": 1, "category_id": stuff_class, "iscrowd": 0}]
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        seg[y0:y1, x0:x1] = i + 2
        info.append({"id": i + 2, "category_id": 11 + i % 8, "iscrowd": int(i in crowd)})
    return seg, info


def test_gaussian_radius_and_sigma_hand_computed():
    # box 10 x 20, overlap 0.7: the three CornerNet roots, by hand
    h, w, o = 10.0, 20.0, 0.7
    r1 = (30 + math.sqrt(30 ** 2 - 4 * 200 * 0.3 / 1.7)) / 2
    r2 = (60 + math.sqrt(60 ** 2 - 16 * 0.3 * 200)) / 2
    r3 = (-2 * o * 30 + math.sqrt((2 * o * 30) ** 2 + 4 * 4 * o * 0.3 * 200)) / 2
    assert r3 == pytest.approx(3.67797, abs=1e-4) and r3 < r1 and r3 < r2
    assert gaussian_radius(h, w, o) == pytest.approx(r3, rel=1e-9)
    assert gaussian_radius(w, h, o) == pytest.approx(r3, rel=1e-9)  # symmetric
    # r = int(3.678) = 3, sigma = 7 / 3: the drawn window is 7 x 7 with exp(-d^2 / (2 sigma^2))
    heat = draw_heatmaps(2, 15, 15, [1], [[7, 7]], [3], sigma_factor=3)
    sigma = 7.0 / 3.0
    d = np.arange(-3, 4)
    expected = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma ** 2))
    np.testing.assert_allclose(heat[1, 4:11, 4:11], expected, rtol=1e-6)
    assert heat[0].sum() == 0 and np.count_nonzero(heat[1]) == 49


def test_heatmaps_are_max_merged_and_clipped_at_borders():
    heat = draw_heatmaps(1, 6, 6, [0, 0], [[0, 0], [0, 2]], [1, 1], sigma_factor=3)
    g1 = math.exp(-1 / 2.0)  # r = 1 -> sigma = 1, neighbours at distance 1
    assert heat[0, 0, 0] == 1 and heat[0, 0, 2] == 1
    assert heat[0, 0, 1] == pytest.approx(g1)  # max of the two, not their sum
    assert heat[0, 1, 1] == pytest.approx(math.exp(-1.0))
    assert np.count_nonzero(heat) == 2 * 2 + 2 * 3 - 2  # two clipped windows sharing column 1


def test_mass_center_of_l_shape_is_the_mean_of_its_pixels():
    m = np.full((12, 12), -1)
    m[0:10, 0:2] = 0  # vertical bar: rows 0..9, columns 0..1 (20 px)
    m[8:10, 2:10] = 0  # foot: rows 8..9, columns 2..9 (16 px)
    # by hand: sum y = 2 * (0 + ... + 9) + 8 * (8 + 9) = 226, sum x = 10 * 1 + 2 * (2 + ... + 9) = 98
    centers, counts = mass_centers(m, 1)
    assert counts.tolist() == [36]
    np.testing.assert_allclose(centers[0], [226 / 36, 98 / 36])
    assert m[int(226 / 36), int(98 / 36)] == -1  # the mass centre of an L lies outside it
    # a pixel counts once even when several samples (maps) put it in the region
    centers2, counts2 = mass_centers(np.stack([m, m]), 1)
    assert counts2.tolist() == [36] and np.allclose(centers2, centers)


def test_generator_centre_level_and_radius_by_hand():
    # one 48 x 64 box at rows 64..111, columns 32..95 of a 256 x 256 image: sqrt(area) = 55.4 -> P3 and P4
    seg, info = scene(256, 256, [(64, 32, 112, 96)])
    out = PanopticFCNTargetGenerator(THINGS)(seg, info)
    np.testing.assert_array_equal(out["fcn_levels"][:, 0], [1, 1, 0, 0, 0])
    assert out["fcn_classes"][0] == 11 and out["fcn_levels"][:, 1:].sum() == 0
    # stride-4 support: rows i with 4i+1 or 4i+2 in [64, 112) -> 16..27, columns 8..23
    # mass centre (21.5, 15.5) at stride 4 -> P3 (32 x 32 of the 64 x 64 grid): (10, 7)
    # box at P3: 6 x 8 -> CornerNet r3 = (-19.6 + sqrt(19.6^2 + 4 * 2.8 * 14.4)) / 2 = 1.877 -> r = 1, sigma = 1
    r3 = (-2 * 0.7 * 14 + math.sqrt((2 * 0.7 * 14) ** 2 + 4 * 4 * 0.7 * 0.3 * 48)) / 2
    assert int(r3) == 1
    heat = out["fcn_center_l0"]
    assert heat.shape == (8, 32, 32)
    assert heat[0, 10, 7] == 1.0 and heat[1:].sum() == 0
    d = np.arange(-1, 2)
    np.testing.assert_allclose(heat[0, 9:12, 6:9], np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / 2.0), rtol=1e-6)
    assert np.count_nonzero(heat[0]) == 9
    # P4 (16 x 16): centre (floor(21.5 / 4), floor(15.5 / 4)) = (5, 3); box 3 x 4 -> r3 = 0.94 -> r = 0
    r3 = (-2 * 0.7 * 7 + math.sqrt((2 * 0.7 * 7) ** 2 + 4 * 4 * 0.7 * 0.3 * 12)) / 2
    assert int(r3) == 0
    heat = out["fcn_center_l1"]
    assert heat[0, 5, 3] == 1.0 and np.count_nonzero(heat) == 1
    for i in range(2, 5):
        assert out["fcn_center_l{}".format(i)].sum() == 0


@pytest.mark.parametrize("side,expected", [(32, [1, 1, 0, 0, 0]), (64, [1, 1, 1, 0, 0]), (65, [0, 1, 1, 0, 0]),
                                           (128, [0, 1, 1, 1, 0])])
def test_level_assignment_inclusive_at_the_boundaries(side, expected):
    scales = ((1, 64), (32, 128), (64, 256), (128, 512), (256, 2048))
    np.testing.assert_array_equal(assign_levels([side], scales)[:, 0], expected)
    seg, info = scene(256, 256, [(10, 20, 10 + side, 20 + side)])
    out = PanopticFCNTargetGenerator(THINGS, instance_scales=scales)(seg, info)
    np.testing.assert_array_equal(out["fcn_levels"][:, 0], expected)
    for i, on in enumerate(expected):  # a peak of 1 on each level the instance is on
        assert out["fcn_center_l{}".format(i)].max() == on


def test_empty_and_stuff_only_images():
    gen = PanopticFCNTargetGenerator(THINGS, max_instances=5)
    for seg, info in [(np.zeros((64, 96), np.int32), []),  # all void
                      (np.ones((64, 96), np.int32), [{"id": 1, "category_id": 3}])]:  # stuff only
        out = gen(seg, info)
        assert out["fcn_levels"].shape == (5, 5) and out["fcn_levels"].sum() == 0
        assert (out["fcn_instance4"] == 5).all()
        assert all(out["fcn_center_l{}".format(i)].sum() == 0 for i in range(5))
        assert out["fcn_semantic4"].shape == (4, 16, 24)
    assert (gen(np.zeros((64, 96), np.int32), [])["fcn_semantic4"] == 255).all()


def test_crowd_segments_are_not_instances_but_keep_their_class():
    seg, info = scene(64, 64, [(0, 0, 16, 16), (32, 32, 48, 48)], crowd=(1,))
    out = PanopticFCNTargetGenerator(THINGS)(seg, info)
    assert out["fcn_levels"][0].tolist()[:2] == [1, 0]
    assert set(np.unique(out["fcn_instance4"])) == {0, 100}
    assert (out["fcn_semantic4"][:, 8:12, 8:12] == 12).all()  # the crowd box keeps class 12


def test_capacity_keeps_the_first_instances():
    boxes = [(0, 8 * i, 8, 8 * i + 6) for i in range(8)]
    seg, info = scene(32, 64, boxes)
    out = PanopticFCNTargetGenerator(THINGS, max_instances=3)(seg, info)
    assert out["fcn_classes"].tolist() == [11, 12, 13]
    assert out["fcn_levels"][0].tolist() == [1, 1, 1]


def test_unpadded_sample_is_refused():
    with pytest.raises(UserInputError, match="multiple of 32"):
        PanopticFCNTargetGenerator(THINGS)(np.zeros((60, 64), np.int32), [])


def test_feature_sizes_follow_stride2_convolutions():
    x = paddle.zeros([1, 1, 100, 36])
    for stride in (2, 4, 8, 16, 32):
        x = F.conv2d(x, paddle.ones([1, 1, 3, 3]), stride=2, padding=1)
        assert list(x.shape[2:]) == [feature_size(100, stride), feature_size(36, stride)]


def test_model_side_soft_masks_equal_a_bilinear_quarter_resize():
    rng = np.random.default_rng(0)
    seg = rng.integers(0, 4, size=(32, 48)).astype(np.int32)
    seg[:8] = 1  # a larger region too
    info = [{"id": 1, "category_id": 11}, {"id": 2, "category_id": 12}, {"id": 3, "category_id": 0}]
    out = PanopticFCNTargetGenerator(THINGS, size_divisor=16)(seg, info)
    soft = assign.soft_masks4(paddle.to_tensor(out["fcn_instance4"][None]), 2).numpy()[0]
    full = np.stack([seg == 1, seg == 2]).astype(np.float32)[None]
    ref = F.interpolate(paddle.to_tensor(full), size=[8, 12], mode="bilinear", align_corners=False).numpy()[0]
    np.testing.assert_allclose(soft, ref, atol=1e-6)
    # stuff: channel 0 = things (classes 11, 12), channel 1 + k = k-th stuff class; void (id 0) in none
    lay = ClassLayout(19, THINGS)
    st = assign.stuff_soft4(paddle.to_tensor(out["fcn_semantic4"][None]),
                            paddle.to_tensor(lay.stuff_channel_of_class), lay.num_stuff_channels).numpy()[0]
    onehot = np.stack([(seg == 1) | (seg == 2), seg == 3]).astype(np.float32)[None]
    ref = F.interpolate(paddle.to_tensor(onehot), size=[8, 12], mode="bilinear", align_corners=False).numpy()[0]
    np.testing.assert_allclose(st[[0, 1]], ref, atol=1e-6)
    assert np.abs(st[2:]).sum() == 0


def test_stuff_level_target_threshold_at_one_half():
    soft = np.zeros((1, 1, 4, 4), np.float32)
    soft[0, 0, 0:2, 0:2] = [[1, 0], [0, 0]]  # mean 0.25 -> 0
    soft[0, 0, 0:2, 2:4] = [[1, 1], [0, 0]]  # mean 0.5 -> kept (values < 0.5 are zeroed)
    soft[0, 0, 2:4, 0:2] = [[0.75, 0.5], [0.5, 0.2]]  # mean 0.4875 -> 0
    soft[0, 0, 2:4, 2:4] = 1.0
    t = assign.level_stuff_targets(paddle.to_tensor(soft), [2, 2]).numpy()[0, 0]
    np.testing.assert_allclose(t, [[0.0, 0.5], [0.0, 1.0]], atol=1e-7)
    same = assign.level_stuff_targets(paddle.to_tensor(np.full((1, 1, 2, 2), 0.4999, np.float32)), [2, 2])
    assert float(same.sum()) == 0.0


def test_layout_channels():
    lay = ClassLayout(19, [18, 11, 12, 13, 14, 15, 16, 17])
    assert lay.thing_ids.tolist() == list(range(11, 19)) and lay.num_stuff_channels == 12
    assert lay.stuff_channel_of_class[[0, 10, 11, 18, 19]].tolist() == [1, 11, 0, 0, 12]
    assert lay.class_of_stuff_channel[:3].tolist() == [-1, 0, 1]
    coco = ClassLayout(133, range(80))
    assert coco.num_stuff_channels == 54 and coco.thing_channel_of_class[79] == 79
    assert ClassLayout(19, THINGS, with_thing=False).stuff_channel_of_class[11] == 11  # no channel


def test_dataset_collates_generator_samples(demo_root):
    from paddleseg_ext.datasets import CityscapesPanoptic

    ds = CityscapesPanoptic(demo_root, [{"type": "Normalize"}], mode="train",
                            target_generator={"type": "PanopticFCNTargetGenerator", "max_instances": 20})
    batch = paddle.io.dataloader.collate.default_collate_fn([ds[0], ds[1]])
    assert list(batch["fcn_levels"].shape) == [2, 5, 20]
    assert list(batch["fcn_center_l0"].shape) == [2, 8, 16, 32]
    assert list(batch["fcn_instance4"].shape) == [2, 4, 32, 64]
    assert float(batch["fcn_levels"].sum()) > 0
