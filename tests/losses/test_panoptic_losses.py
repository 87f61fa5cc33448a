"""Losses against hand-computed values: top-k CE, weighted MSE / L1, compute_panoptic_loss."""
import math

import numpy as np
import paddle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paddleseg.cvlibs import Config, SegBuilder

import paddleseg_ext  # noqa: F401
from paddleseg_ext.losses import (TopKCrossEntropyLoss, WeightedL1Loss, WeightedMSELoss,
                                  compute_panoptic_loss)
from paddleseg_ext.utils import UserInputError
from tests.conftest import DEMO_CONFIG


def two_class_logits(a):
    """Logits [1, 2, H, W] = (a, 0): CE is log(1 + e^-a) for label 0 and log(1 + e^a) for label 1."""
    a = np.asarray(a, dtype="float32")
    return paddle.to_tensor(np.stack([a, np.zeros_like(a)])[None], stop_gradient=False)


def ce0(a):
    return math.log(1 + math.exp(-a))


def ce1(a):
    return math.log(1 + math.exp(a))


A = [[2.0, -1.0, 0.5, 3.0, 0.0],
     [-2.0, 1.0, 4.0, -0.5, 9.0]]
LABEL = [[0, 0, 1, 1, 255],
         [0, 1, 0, 255, 1]]   # 8 valid pixels; the two ignored ones would be the hardest
WEIGHT = [[1, 1, 1, 3, 1],
          [1, 1, 1, 1, 1]]


def hand_pixel_losses():
    """Weighted CE of the 8 valid pixels, by position."""
    return {
        (0, 0): ce0(2.0), (0, 1): ce0(-1.0), (0, 2): ce1(0.5), (0, 3): 3 * ce1(3.0),
        (1, 0): ce0(-2.0), (1, 1): ce1(1.0), (1, 2): ce0(4.0), (1, 4): ce1(9.0),
    }


def run_ce(p, weights=WEIGHT):
    logit = two_class_logits(A)
    label = paddle.to_tensor([LABEL], dtype="int64")
    w = None if weights is None else paddle.to_tensor([weights], dtype="float32")
    loss = TopKCrossEntropyLoss(ignore_index=255, top_k_percent_pixels=p)(logit, label, w)
    loss.backward()
    return float(loss), logit.grad.numpy()


def test_top_k_ce_keeps_hardest_valid_pixels():
    # hardest weighted losses: 3 * ce1(3) = 9.146 at (0, 3), ce1(9) = 9.0001 at (1, 4), then
    # ce0(-2) = 2.127; the ignored pixels (CE 3.05 and 9.0) must not be counted
    losses = hand_pixel_losses()
    hardest = sorted(losses.values(), reverse=True)
    # p = 0.25 of 8 valid pixels -> k = 2
    value, grad = run_ce(0.25)
    assert value == pytest.approx((3 * ce1(3.0) + ce1(9.0)) / 2, rel=1e-5)
    assert value == pytest.approx(sum(hardest[:2]) / 2, rel=1e-5)
    # only the two selected pixels receive gradient
    nonzero = {tuple(ij) for ij in np.argwhere(np.abs(grad[0]).sum(0) > 0)}
    assert nonzero == {(0, 3), (1, 4)}


def test_top_k_ce_all_valid_pixels_is_weighted_mean():
    value, grad = run_ce(1.0)
    assert value == pytest.approx(sum(hand_pixel_losses().values()) / 8, rel=1e-5)
    assert np.all(grad[0, :, 0, 4] == 0) and np.all(grad[0, :, 1, 3] == 0)  # ignored pixels


def test_top_k_ce_small_instance_weight_changes_selection():
    # p = 0.125 of 8 -> k = 1. Unweighted the hardest is ce1(9) = 9.0001 at (1, 4); with the
    # small-instance weight 3 at (0, 3) it is 3 * ce1(3) = 9.146.
    assert run_ce(0.125, weights=None)[0] == pytest.approx(ce1(9.0), rel=1e-5)
    assert run_ce(0.125)[0] == pytest.approx(3 * ce1(3.0), rel=1e-5)


def test_top_k_ce_keeps_at_least_one_pixel():
    # p = 0.1 of 8 valid pixels -> floor(0.8) = 0 -> at least the hardest one
    assert run_ce(0.1)[0] == pytest.approx(3 * ce1(3.0), rel=1e-5)


def test_top_k_ce_without_valid_pixels_is_zero():
    logit = two_class_logits(A)
    label = paddle.full([1, 2, 5], 255, dtype="int64")
    loss = TopKCrossEntropyLoss(top_k_percent_pixels=0.2)(logit, label, paddle.ones([1, 2, 5]))
    loss.backward()
    assert float(loss) == 0.0
    assert np.all(np.isfinite(logit.grad.numpy())) and np.all(logit.grad.numpy() == 0)


def test_top_k_ce_rejects_bad_fraction():
    with pytest.raises(UserInputError, match="top_k_percent_pixels"):
        TopKCrossEntropyLoss(top_k_percent_pixels=0.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(2, 5),
       st.sampled_from([0.05, 0.2, 0.3, 0.5, 0.7, 1.0]), st.integers(0, 2**31 - 1))
def test_top_k_ce_matches_definition(n, hw, c, p, seed):
    """Against the definition written out with Python lists: sort valid weighted CE, mean of top k."""
    rng = np.random.RandomState(seed)
    logit = rng.randn(n, c, hw, 3).astype("float32") * 3
    label = rng.randint(0, c, size=(n, hw, 3))
    label[rng.rand(n, hw, 3) < 0.3] = 255
    weight = rng.choice([1.0, 3.0], size=(n, hw, 3)).astype("float32")
    values = []
    for idx in np.ndindex(n, hw, 3):
        if label[idx] == 255:
            continue
        z = logit[idx[0], :, idx[1], idx[2]].astype("float64")
        lse = math.log(sum(math.exp(v) for v in z))
        values.append(weight[idx] * (lse - z[label[idx]]))
    if values:
        k = max(1, int(p * len(values)))
        expected = sum(sorted(values, reverse=True)[:k]) / k
    else:
        expected = 0.0
    got = TopKCrossEntropyLoss(top_k_percent_pixels=p)(
        paddle.to_tensor(logit), paddle.to_tensor(label), paddle.to_tensor(weight))
    assert float(got) == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_center_mse_is_normalised_by_weight_sum():
    pred = paddle.to_tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = paddle.to_tensor([[[[0.0, 0.0], [1.0, 0.0]]]])
    weights = paddle.to_tensor([[[1.0, 0.0], [2.0, 1.0]]])
    # (1*1 + 0*4 + 2*(3-1)^2 + 1*16) / (1 + 0 + 2 + 1) = 25 / 4
    assert float(WeightedMSELoss()(pred, target, weights)) == pytest.approx(25 / 4)
    assert float(WeightedMSELoss(ignore_index=255)(pred, target, None)) == pytest.approx((1 + 4 + 4 + 16) / 4)


def test_offset_l1_sums_both_channels_per_weighted_pixel():
    pred = paddle.to_tensor([[[[1.0, -2.0]], [[0.5, 4.0]]]])      # [1, 2, 1, 2]: dy, dx
    target = paddle.to_tensor([[[[0.0, 0.0]], [[0.0, 1.0]]]])
    weights = paddle.to_tensor([[[1.0, 1.0]]])
    # pixel 0: |1| + |0.5| = 1.5; pixel 1: |-2| + |3| = 5; / 2 weighted pixels
    assert float(WeightedL1Loss()(pred, target, weights)) == pytest.approx(6.5 / 2)
    weights = paddle.to_tensor([[[0.0, 1.0]]])
    assert float(WeightedL1Loss()(pred, target, weights)) == pytest.approx(5.0)


def test_offset_loss_without_thing_pixels_is_zero_and_finite():
    pred = paddle.to_tensor(np.full([2, 2, 3, 3], 7.0, "float32"), stop_gradient=False)
    loss = WeightedL1Loss()(pred, paddle.zeros([2, 2, 3, 3]), paddle.zeros([2, 3, 3]))
    loss.backward()
    assert float(loss) == 0.0
    assert np.all(pred.grad.numpy() == 0)
    assert float(WeightedMSELoss()(pred[:, :1], paddle.zeros([2, 1, 3, 3]), paddle.zeros([2, 3, 3]))) == 0.0


def _sample():
    return {
        "semantic": paddle.to_tensor([[[0, 1], [255, 1]]], dtype="int64"),
        "semantic_weights": paddle.ones([1, 2, 2]),
        "center": paddle.to_tensor([[[[1.0, 0.0], [0.0, 0.0]]]]),
        "center_weights": paddle.ones([1, 2, 2]),
        "offset": paddle.zeros([1, 2, 2, 2]),
        "offset_weights": paddle.to_tensor([[[0.0, 1.0], [0.0, 0.0]]]),
    }


def _outputs():
    sem = paddle.zeros([1, 19, 2, 2])  # uniform logits: CE = log(19) at every valid pixel
    ctr = paddle.full([1, 1, 2, 2], 0.5)
    off = paddle.to_tensor([[[[0.0, 3.0], [9.0, 9.0]], [[0.0, -1.0], [9.0, 9.0]]]])
    return [sem, ctr, off]


def test_compute_panoptic_loss_with_the_demo_config_losses():
    cfg = Config(DEMO_CONFIG)
    loss_cfg = SegBuilder(cfg).loss
    assert [type(t).__name__ for t in loss_cfg["types"]] == [
        "TopKCrossEntropyLoss", "WeightedMSELoss", "WeightedL1Loss"]
    assert all(t.ignore_index == 255 for t in loss_cfg["types"])
    total, terms = compute_panoptic_loss(_outputs(), _sample(), loss_cfg)
    sem = math.log(19)                 # 3 valid pixels, top 20% -> k = 1, all equal
    ctr = (0.25 + 0.25 + 0.25 + 0.25) / 4
    off = (3.0 + 1.0) / 1              # one thing pixel
    assert float(terms["semantic"]) == pytest.approx(sem, rel=1e-5)
    assert float(terms["center"]) == pytest.approx(ctr)
    assert float(terms["offset"]) == pytest.approx(off)
    assert float(total) == pytest.approx(1 * sem + 200 * ctr + 0.01 * off, rel=1e-5)


def test_compute_panoptic_loss_accepts_paddleseg_loss_types():
    """PaddleSeg's released config style: CrossEntropyLoss + MSELoss/L1Loss(reduction none)."""
    from paddleseg.models.losses import CrossEntropyLoss, L1Loss, MSELoss
    loss_cfg = {"types": [CrossEntropyLoss(), MSELoss(reduction="none"), L1Loss(reduction="none")],
                "coef": [1, 200, 0.001]}
    total, terms = compute_panoptic_loss(_outputs(), _sample(), loss_cfg)
    assert float(terms["semantic"]) == pytest.approx(math.log(19), rel=1e-5)
    assert float(terms["center"]) == pytest.approx(0.25)
    # PaddleSeg's loss_computation divides the offset L1 by the weight expanded to both channels:
    # (3 + 1) / (2 x 1 weighted pixel).
    assert float(terms["offset"]) == pytest.approx(2.0)
    assert float(total) == pytest.approx(math.log(19) + 200 * 0.25 + 0.001 * 2.0, rel=1e-5)


def test_compute_panoptic_loss_needs_three_terms():
    with pytest.raises(UserInputError, match="loss.types"):
        compute_panoptic_loss(_outputs(), _sample(), {"types": [WeightedMSELoss()], "coef": [1]})
