"""Each loss convention against numpy written from its source's formula.

Sources (read, formulas restated here):
- PaddleSeg 2.8 ``paddleseg/models/losses/cross_entropy_loss.py`` ``CrossEntropyLoss`` (``loss = CE *
  mask * semantic_weights``; ``k = int(p * loss.numel())`` over *all* pixels; ``mean(top k) /
  (mean(class weight of the selected) + 1e-8)``; at p = 1 ``mean(loss) / (mean(mask) + 1e-8)``) and
  PaddleSeg's ``contrib/PanopticDeepLab/core/train.py:loss_computation`` (centre: ``sum(MSE * w) /
  sum(w)``; offset: ``sum(L1 * w_expanded) / sum(w_expanded)``, the weight expanded to both channels;
  coefficients from its ``_base_/cityscapes_panoptic.yml``: 1, 200, 0.001).
- bowenc0221/panoptic-deeplab ``DeepLabCE`` and detectron2 ``projects/DeepLab`` ``DeepLabCE``:
  ``pixel = CE * w`` (0 on ignored pixels), ``mean(top int(p * numel))``, plain mean at p = 1;
  their Panoptic-DeepLab centre / offset losses divide by ``sum(w)`` over pixels.
- This project's default (the demo configs): top-k among the valid pixels only.
"""
import os

import numpy as np
import paddle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paddleseg.cvlibs import Config, SegBuilder

import paddleseg_ext  # noqa: F401
from paddleseg_ext.losses import TopKCrossEntropyLoss, WeightedL1Loss, WeightedMSELoss
from paddleseg_ext.models.panoptic_deeplab import PanopticDeepLab
from paddleseg_ext.transforms import PanopticTargetGenerator
from paddleseg_ext.utils import UserInputError
from tests.conftest import CONFIG_DIR

IGNORE = 255


def batch(seed, n=2, c=5, h=9, w=11, ignored=0.2, all_ignored=False):
    """Random logits [n, c, h, w], labels with ignored pixels, weights in {0, 1, 3}."""
    rng = np.random.RandomState(seed)
    logit = rng.randn(n, c, h, w).astype("float32") * 2
    label = rng.randint(0, c, (n, h, w))
    label[rng.rand(n, h, w) < ignored] = IGNORE
    if all_ignored:
        label[:] = IGNORE
    weights = rng.choice([0.0, 1.0, 3.0], size=(n, h, w), p=[0.1, 0.7, 0.2]).astype("float32")
    return logit, label, weights


def np_ce(logit, label):
    """Per-pixel softmax cross-entropy in float64, 0 on ignored pixels."""
    x = logit.astype("float64")
    logp = x - x.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    safe = np.where(label == IGNORE, 0, label)
    ce = -np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    return np.where(label == IGNORE, 0.0, ce)


def paddleseg_ce(logit, label, w, p):
    mask = (label != IGNORE).astype("float64")
    loss = (np_ce(logit, label) * mask * w).ravel()
    if p == 1.0:
        return loss.mean() / (mask.mean() + 1e-8)
    k = int(p * loss.size)
    return np.sort(loss)[::-1][:k].mean() / (1.0 + 1e-8)


def deeplab_ce(logit, label, w, p):
    pixel = (np_ce(logit, label) * w).ravel()
    if p == 1.0:
        return pixel.mean()
    return np.sort(pixel)[::-1][:int(p * pixel.size)].mean()


def valid_top_k(logit, label, w, p, weighting="before_top_k", normalize="selected_count"):
    valid = (label != IGNORE).ravel()
    ce, w = np_ce(logit, label).ravel()[valid], w.astype("float64").ravel()[valid]
    if ce.size == 0:
        return 0.0
    k = max(1, int(np.floor(p * ce.size)))
    order = np.argsort(-(ce * w if weighting == "before_top_k" else ce), kind="stable")[:k]
    total = (ce[order] * w[order]).sum()
    if normalize == "selected_count":
        return total / k
    return total / w[order].sum() if w[order].sum() > 0 else 0.0


def run_ce(logit, label, w, **kw):
    loss = TopKCrossEntropyLoss(IGNORE, **kw)
    return float(loss(paddle.to_tensor(logit), paddle.to_tensor(label), paddle.to_tensor(w)))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("p", [0.2, 0.37, 1.0])
def test_top_k_over_all_pixels_is_paddleseg_and_deeplab_ce(seed, p):
    logit, label, w = batch(seed)
    ours = run_ce(logit, label, w, top_k_percent_pixels=p, top_k_over="all")
    assert ours == pytest.approx(deeplab_ce(logit, label, w, p), rel=1e-5)
    if p < 1.0:  # at p = 1 PaddleSeg averages over valid pixels (top_k_over="valid" below)
        assert ours == pytest.approx(paddleseg_ce(logit, label, w, p), rel=1e-5)
    else:
        valid = run_ce(logit, label, w, top_k_percent_pixels=1.0, top_k_over="valid")
        assert valid == pytest.approx(paddleseg_ce(logit, label, w, 1.0), rel=1e-5)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10 ** 6), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7),
       st.floats(0.01, 1.0), st.floats(0.0, 1.0))
def test_top_k_over_all_pixels_any_shape(seed, n, h, w, p, ignored):
    """DeepLabCE's formula for any size, fraction and share of ignored pixels (k >= 1 here where
    int(p * numel) would be 0, which the references cannot evaluate)."""
    logit, label, wt = batch(seed, n=n, h=h, w=w, ignored=ignored)
    pixel = np.sort((np_ce(logit, label) * wt).ravel())[::-1]
    expected = pixel[:max(1, int(p * pixel.size))].mean()
    ours = run_ce(logit, label, wt, top_k_percent_pixels=p, top_k_over="all")
    assert ours == pytest.approx(expected, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("weighting", ["before_top_k", "after_top_k"])
@pytest.mark.parametrize("normalize", ["selected_count", "selected_weight"])
def test_top_k_over_valid_pixels_options(seed, weighting, normalize):
    logit, label, w = batch(seed, ignored=0.3)
    ours = run_ce(logit, label, w, top_k_percent_pixels=0.25, weighting=weighting, normalize=normalize)
    assert ours == pytest.approx(valid_top_k(logit, label, w, 0.25, weighting, normalize), rel=1e-5)


@pytest.mark.parametrize("over", ["valid", "all"])
def test_top_k_ce_without_valid_pixels_is_zero(over):
    logit, label, w = batch(0, all_ignored=True)
    for normalize in ("selected_count", "selected_weight"):
        assert run_ce(logit, label, w, top_k_over=over, normalize=normalize) == 0.0


def test_selected_weight_with_zero_weights_is_zero():
    logit, label, _ = batch(1)
    assert run_ce(logit, label, np.zeros(label.shape, "float32"), normalize="selected_weight") == 0.0


@pytest.mark.parametrize("key, value", [("top_k_over", "valid_pixels"), ("weighting", "before"),
                                        ("normalize", "mean")])
def test_unknown_option_names_the_key(key, value):
    with pytest.raises(UserInputError, match=key):
        TopKCrossEntropyLoss(**{key: value})
    if key == "normalize":
        with pytest.raises(UserInputError, match="WeightedL1Loss.normalize"):
            WeightedL1Loss(normalize=value)


def regression_batch(seed, channels, empty=False):
    rng = np.random.RandomState(seed)
    pred = rng.randn(2, channels, 7, 10).astype("float32")
    target = rng.randn(2, channels, 7, 10).astype("float32")
    w = rng.choice([0.0, 1.0, 3.0], size=(2, 7, 10)).astype("float32")
    return pred, target, (np.zeros_like(w) if empty else w)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("empty", [False, True])
def test_offset_l1_per_pixel_and_per_channel_element(seed, empty):
    pred, target, w = regression_batch(seed, 2, empty)
    err = np.abs(pred.astype("float64") - target) * w[:, None]
    # bowenc0221 / detectron2: divided by the weighted pixels; PaddleSeg: by the weight expanded
    # to both channels (expand_as), "offset_weights.sum() > 0" else 0.
    ref = {"pixel": err.sum() / w.sum() if w.sum() > 0 else 0.0,
           "channel_element": err.sum() / (2 * w.sum()) if w.sum() > 0 else 0.0}
    for normalize, expected in ref.items():
        ours = float(WeightedL1Loss(normalize=normalize)(
            paddle.to_tensor(pred), paddle.to_tensor(target), paddle.to_tensor(w)))
        assert ours == pytest.approx(expected, rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("normalize", ["pixel", "channel_element"])
def test_center_mse_is_the_same_for_both_normalisations(normalize):
    pred, target, w = regression_batch(4, 1)
    err = (pred.astype("float64") - target) ** 2 * w[:, None]
    ours = float(WeightedMSELoss(normalize=normalize)(
        paddle.to_tensor(pred), paddle.to_tensor(target), paddle.to_tensor(w)))
    assert ours == pytest.approx(err.sum() / w.sum(), rel=1e-5)


# ---------------------------------------------------------------- acceptance: R50 OS32 = PaddleSeg

R50_OS32 = ["panoptic_deeplab_resnet50_os32_cityscapes_1025x513_bs8_90k_lr00005.yml",
            "panoptic_deeplab_resnet50_os32_cityscapes_2049x1025_bs1_90k_lr00005.yml"]


def generated_batch(seed=0, h=65, w=129):
    """Reference targets (PaddleSeg's generator settings) of a generated frame with a void strip,
    and random network outputs."""
    rng = np.random.RandomState(seed)
    pan = np.full((h, w), 1, np.int64)  # stuff: road (train id 0)
    pan[h // 2:, :] = 2  # stuff: sidewalk (train id 1)
    segs = [{"id": 1, "category_id": 0, "iscrowd": 0}, {"id": 2, "category_id": 1, "iscrowd": 0}]
    for i, (y, x, hh, ww, cls) in enumerate([(5, 10, 20, 30, 13), (30, 60, 30, 50, 11),
                                             (8, 90, 12, 15, 13), (40, 5, 20, 20, 12)]):
        pan[y:y + hh, x:x + ww] = 10 + i
        segs.append({"id": 10 + i, "category_id": cls, "iscrowd": 0})
    pan[:, :6] = 0  # void strip
    t = PanopticTargetGenerator(IGNORE, list(range(11, 19)), sigma=8, small_instance_area=4096,
                                small_instance_weight=3)(pan, segs)
    outputs = [rng.randn(2, 19, h, w).astype("float32") * 3, rng.rand(2, 1, h, w).astype("float32"),
               rng.randn(2, 2, h, w).astype("float32") * 20]
    targets = {k: np.stack([v, v]) for k, v in t.items()}
    return outputs, targets


def paddleseg_loss_computation(outputs, t, coef=(1, 200, 0.001)):
    sem = paddleseg_ce(outputs[0], t["semantic"], t["semantic_weights"].astype("float64"), 0.2)
    cw = t["center_weights"][:, None].astype("float64")
    c = (outputs[1] - t["center"]) ** 2 * cw
    center = c.sum() / cw.sum() if c.sum() > 0 else 0.0
    ow = np.broadcast_to(t["offset_weights"][:, None], outputs[2].shape).astype("float64")
    o = np.abs(outputs[2].astype("float64") - t["offset"]) * ow
    offset = o.sum() / ow.sum() if ow.sum() > 0 else 0.0
    return {"semantic": coef[0] * sem, "center": coef[1] * center, "offset": coef[2] * offset}


@pytest.mark.parametrize("name", R50_OS32)
def test_r50_os32_weighted_terms_equal_paddleseg_recipe(name):
    losses = SegBuilder(Config(os.path.join(CONFIG_DIR, name))).loss
    outputs, t = generated_batch()
    sample = {k: paddle.to_tensor(v) for k, v in t.items()}
    ours = PanopticDeepLab.loss(None, [paddle.to_tensor(o) for o in outputs], sample, losses)
    ref = paddleseg_loss_computation(outputs, t)
    got = {k: float(v) for k, v in ours.items()}
    print(name, {k: (round(got[k], 6), round(ref[k], 6)) for k in ref})
    assert (t["semantic"] == IGNORE).any() and got["offset"] > 0
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-5), k


@pytest.mark.parametrize("seed", range(2))
def test_top_k_over_all_equals_paddleseg_cross_entropy_layer(seed):
    """PaddleSeg's own CrossEntropyLoss (the layer its released config names) on the same batch,
    used directly and through compute_panoptic_loss's PaddleSeg-type path."""
    from paddleseg.models.losses import CrossEntropyLoss
    logit, label, w = batch(seed)
    args = [paddle.to_tensor(a) for a in (logit, label, w)]
    theirs = float(CrossEntropyLoss(ignore_index=IGNORE, top_k_percent_pixels=0.2)(*args))
    ours = run_ce(logit, label, w, top_k_percent_pixels=0.2, top_k_over="all")
    assert ours == pytest.approx(theirs, rel=1e-5)
    from paddleseg_ext.losses.panoptic_losses import _term_loss
    via_cfg = float(_term_loss(CrossEntropyLoss(ignore_index=IGNORE, top_k_percent_pixels=0.2), *args))
    assert via_cfg == pytest.approx(theirs, rel=1e-5)


@pytest.mark.parametrize("seed", range(2))
def test_all_and_valid_agree_without_ignored_pixels(seed):
    logit, label, w = batch(seed, ignored=0.0)
    assert run_ce(logit, label, w, top_k_over="all") == pytest.approx(
        run_ce(logit, label, w, top_k_over="valid"), rel=1e-6)
