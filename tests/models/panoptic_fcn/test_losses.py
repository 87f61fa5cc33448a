"""PanopticFCN losses: focal and dice against numpy formulas and Paddle's focal loss; the model's
loss terms (normalisation, coefficients, empty ground truth, gradients to every parameter)."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddleseg.cvlibs import manager

from paddleseg_ext.models.panoptic_fcn import PanopticFCNDiceLoss, PanopticFCNFocalLoss, PanopticFCNTargetGenerator
from paddleseg_ext.utils import UserInputError, log

THINGS = list(range(11, 19))


def np_focal(x, t, alpha=0.25, gamma=2.0):
    p = 1 / (1 + np.exp(-x))
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    a_t = alpha * t + (1 - alpha) * (1 - t)
    return a_t * ce * (1 - p_t) ** gamma


def test_focal_against_numpy_and_paddle():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, size=(2, 3, 5, 7))
    t_soft = rng.uniform(0, 1, size=x.shape) * (rng.uniform(size=x.shape) < 0.5)
    t_bin = (rng.uniform(size=x.shape) < 0.2).astype(np.float64)
    loss = PanopticFCNFocalLoss(alpha=0.25, gamma=2.0)
    for t in (t_soft, t_bin):
        got = loss(paddle.to_tensor(x, dtype="float64"), paddle.to_tensor(t, dtype="float64")).numpy()
        np.testing.assert_allclose(got, np_focal(x, t), rtol=1e-10, atol=1e-12)
        ref = F.sigmoid_focal_loss(paddle.to_tensor(x, dtype="float64"), paddle.to_tensor(t, dtype="float64"),
                                   alpha=0.25, gamma=2.0, reduction="none").numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    # float32 and extreme logits stay finite
    big = paddle.to_tensor([[-80.0, 80.0]])
    assert np.isfinite(loss(big, paddle.to_tensor([[1.0, 0.0]])).numpy()).all()


def test_weighted_dice_against_numpy():
    rng = np.random.default_rng(1)
    logit = rng.normal(0, 2, size=(3, 4, 20))
    target = rng.uniform(0, 1, size=(3, 20)) * (rng.uniform(size=(3, 20)) < 0.6)
    w = rng.uniform(0, 1, size=(3, 4))
    w[2] = 0  # no candidate: contributes 0
    p = 1 / (1 + np.exp(-logit))
    dice = 1 - 2 * (p * target[:, None]).sum(-1) / ((p ** 2).sum(-1) + (target[:, None] ** 2).sum(-1))
    expected = (dice * w / np.maximum(w.sum(-1, keepdims=True), 1e-8)).sum(-1)
    got = PanopticFCNDiceLoss()(paddle.to_tensor(logit), paddle.to_tensor(target), paddle.to_tensor(w)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert got[2] == 0
    plain = PanopticFCNDiceLoss()(paddle.to_tensor(logit[:, :1]), paddle.to_tensor(target)).numpy()
    np.testing.assert_allclose(plain, dice[:, 0], rtol=1e-10)
    # empty target and a prediction of 0 everywhere: denominator clamped to eps -> loss 1, finite
    zero = PanopticFCNDiceLoss()(paddle.full([1, 1, 5], -1e4, dtype="float64"), paddle.zeros([1, 5], dtype="float64"))
    assert zero.numpy()[0] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- the model's terms

def tiny_model(dcn=False, **kw):
    bb = manager.BACKBONES["MobileNetV3_small_x0_35"](pretrained=None)
    args = dict(num_classes=19, thing_ids=THINGS, backbone=bb, fpn_channels=16, head_channels=16, head_num_convs=1,
                semantic_fpn_channels=16, encoder_channels=8, encoder_num_convs=1, norm_groups=4,
                position_use_dcn=dcn, kernel_use_dcn=dcn, encoder_use_dcn=dcn, pos_num=3, max_instances=10)
    args.update(kw)
    return manager.MODELS["PanopticFCN"](**args)


def loss_cfg(c_pos=1.0, c_mask=3.0):
    return {"types": [PanopticFCNFocalLoss(), PanopticFCNDiceLoss()], "coef": [c_pos, c_mask]}


def make_batch(samples):
    return {k: paddle.to_tensor(np.stack([np.asarray(s[k]) for s in samples])) for k in samples[0]}


def synthetic_sample(h=64, w=128, boxes=((8, 8, 40, 40), (20, 60, 60, 120)), stuff=((0, 0), (32, 5))):
    seg = np.zeros((h, w), np.int32)
    info = []
    for i, (y0, cls) in enumerate(stuff):
        seg[y0:] = 1 + i
        info.append({"id": 1 + i, "category_id": cls})
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        seg[y0:y1, x0:x1] = 10 + i
        info.append({"id": 10 + i, "category_id": THINGS[i % 8]})
    sample = PanopticFCNTargetGenerator(THINGS, max_instances=10)(seg, info)
    sample["img"] = np.random.default_rng(h + w).normal(0, 1, size=(3, h, w)).astype(np.float32)
    return sample


def test_loss_terms_names_coefficients_and_thing_normalisation():
    paddle.seed(0)
    model = tiny_model()
    batch = make_batch([synthetic_sample(), synthetic_sample(boxes=((0, 0, 30, 30),))])
    out = model(batch["img"])
    terms = model.loss(out, batch, loss_cfg(1.0, 1.0))
    assert sorted(terms) == ["mask_stuff", "mask_thing", "position_stuff", "position_thing"]
    scaled = model.loss(out, batch, loss_cfg(2.0, 5.0))
    for name, c in [("position_thing", 2.0), ("position_stuff", 2.0), ("mask_thing", 5.0), ("mask_stuff", 5.0)]:
        assert float(scaled[name]) == pytest.approx(c * float(terms[name]), rel=1e-6)
    # position_thing = sum of the focal loss over all levels / (instance, level) pairs, in numpy
    n_pairs = float(batch["fcn_levels"].sum())
    assert n_pairs == 5  # 32x32 and 40x60 boxes (side 32 and 49): P3 + P4; 30x30 box: P3
    total = sum(np_focal(out[i].numpy().astype(np.float64), batch["fcn_center_l{}".format(i)].numpy()).sum()
                for i in range(5))
    assert float(terms["position_thing"]) == pytest.approx(total / n_pairs, rel=1e-4)
    # position_stuff = per-pixel mean per (image, level, channel), summed, / images
    assert all(np.isfinite(float(v)) and float(v) > 0 for v in terms.values())


def test_no_ground_truth_gives_zero_mask_terms_with_the_graph_connected():
    model = tiny_model()
    empty = PanopticFCNTargetGenerator(THINGS, max_instances=10)(np.zeros((64, 128), np.int32), [])
    empty["img"] = np.zeros((3, 64, 128), np.float32)
    batch = make_batch([empty])
    terms = model.loss(model(batch["img"]), batch, loss_cfg())
    assert float(terms["mask_thing"]) == 0.0 and float(terms["mask_stuff"]) == 0.0
    assert all(np.isfinite(float(v)) for v in terms.values())
    # the position terms still penalise false positives (as the original): finite and positive
    assert float(terms["position_thing"]) > 0 and float(terms["position_stuff"]) > 0
    for name in ("mask_thing", "mask_stuff"):
        assert not terms[name].stop_gradient
    sum(terms.values()).backward()
    assert model.thing_embed.weight.grad is not None and model.stuff_embed.weight.grad is not None


def test_every_parameter_gets_a_gradient():
    paddle.seed(1)
    model = tiny_model(dcn=True)
    batch = make_batch([synthetic_sample(), synthetic_sample(boxes=((0, 0, 30, 30), (40, 0, 64, 20)))])
    terms = model.loss(model(batch["img"]), batch, loss_cfg())
    sum(terms.values()).backward()
    missing = [n for n, p in model.named_parameters() if not p.stop_gradient and p.grad is None]
    assert missing == []
    # and not only zeros: the thing embedding learns from the mask loss through the k positives
    assert float(paddle.abs(model.thing_embed.weight.grad).sum()) > 0
    assert float(paddle.abs(model.position_head.out_inst.weight.grad).sum()) > 0


def test_wrong_loss_block_and_mismatched_targets_are_user_errors():
    model = tiny_model()
    batch = make_batch([synthetic_sample()])
    out = model(batch["img"])
    with pytest.raises(UserInputError, match="PanopticFCNFocalLoss"):
        model.loss(out, batch, {"types": [PanopticFCNDiceLoss(), PanopticFCNFocalLoss()], "coef": [1, 3]})
    other = make_batch([synthetic_sample(h=96)])
    with pytest.raises(UserInputError, match="fcn_center_l0"):
        model.loss(out, other, loss_cfg())


def test_target_classes_checked_on_the_first_batch_and_every_batch_with_verbose():
    """The host-side class check of the targets runs once per model (classes come from the target generator's
    config), and on every batch in verbose (debug) runs."""
    other_things = [10] + THINGS[1:]  # class 10 instead of 11: same number of thing channels, same shapes
    wrong = tiny_model(thing_ids=other_things)
    batch = make_batch([synthetic_sample()])  # instances of classes 11 and 12
    with pytest.raises(UserInputError, match=r"classes \[11\] that are not among the model's thing_ids"):
        wrong.loss(wrong(batch["img"]), batch, loss_cfg())
    model = tiny_model()
    model.loss(model(batch["img"]), batch, loss_cfg())
    seg = np.zeros((64, 128), np.int32)
    seg[8:40, 8:40] = 1
    stray = PanopticFCNTargetGenerator(other_things, max_instances=10)(seg, [{"id": 1, "category_id": 10}])
    stray["img"] = batch["img"].numpy()[0]
    stray = make_batch([stray])
    out = model(stray["img"])
    model.loss(out, stray, loss_cfg())  # checked already: no host copy
    old = log.set_verbose(True)
    try:
        with pytest.raises(UserInputError, match=r"classes \[10\]"):
            model.loss(out, stray, loss_cfg())
    finally:
        log.set_verbose(old)


def test_thing_mask_loss_vanishes_for_oracle_kernels(demo_root):
    """Training-side alignment of positives, kernels and mask targets: with the oracle outputs (exact
    kernels at the mass centres, centre logits +L there and -L elsewhere) of a frame upsampled x4,
    the top-k positives' weights concentrate on the true kernel and the thing dice is ~0."""
    from paddleseg_ext.datasets import CityscapesPanoptic
    from paddleseg_ext.models.panoptic_fcn import ClassLayout
    from tests.models.panoptic_fcn.oracle import oracle_outputs
    from paddleseg_ext.utils import read_panoptic_png

    rec = CityscapesPanoptic(demo_root, [{"type": "Normalize"}], mode="val").records[0]
    gt = read_panoptic_png(rec["label_path"])
    outs, _, _ = oracle_outputs(gt, rec["segments_info"], ClassLayout(19, THINGS))
    scales = [[0, 1e5]] + [[1e6, 1e6]] * 4  # the oracle's peaks are on P3: every instance there only
    big = np.repeat(np.repeat(gt, 4, axis=0), 4, axis=1)
    targets = PanopticFCNTargetGenerator(THINGS, instance_scales=scales)(big, rec["segments_info"])
    batch = {k: paddle.to_tensor(v[None]) for k, v in targets.items()}
    model = tiny_model(instance_scales=scales, pos_num=7)
    terms = model.loss(outs, batch, loss_cfg())
    assert float(batch["fcn_levels"].sum()) >= 3
    assert float(terms["mask_thing"]) < 1e-4
