"""Semantic mIoU: a hand count, and equality with cityscapesscripts' pixel-level evaluation."""
import copy

import cv2
import numpy as np
import pytest

from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_pix
from cityscapesscripts.helpers.labels import trainId2label

from panoptic_metrics import SemanticEvaluator, UserInputError


def test_hand_counted_iou():
    label = np.array([[0, 0, 1, 1],
                      [0, 2, 1, 255]])
    pred = np.array([[0, 1, 1, 1],
                     [0, 7, 0, 1]])
    # class 0: tp 2 (0,0),(1,0); fn 1 (0,1)->1; fp 1 (1,2) -> IoU 2/4
    # class 1: tp 2 (0,2),(0,3); fn 1 (1,2)->0; fp 1 (0,1); (1,3) is ignored -> IoU 2/4
    # class 2: tp 0, fn 1 (pred 7 is out of range: a false negative) -> IoU 0
    # class 3: no GT, no prediction -> NaN, left out of the mean
    ev = SemanticEvaluator(num_classes=4, ignore_index=255)
    ev.update(pred, label)
    r = ev.evaluate()
    np.testing.assert_allclose(r["IoU"], [0.5, 0.5, 0.0, np.nan])
    assert r["mIoU"] == pytest.approx(1 / 3)
    assert r["pixel_acc"] == pytest.approx(4 / 7)
    assert r["mean_acc"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert r["per_class"][1] == {"iou": 0.5, "tp": 2, "fp": 1, "fn": 1}


def test_class_only_predicted_counts_with_iou_zero():
    ev = SemanticEvaluator(num_classes=3)
    ev.update(np.array([[0, 2]]), np.array([[0, 0]]))
    r = ev.evaluate()
    np.testing.assert_allclose(r["IoU"], [0.5, np.nan, 0.0])
    assert r["mIoU"] == pytest.approx(0.25)


def test_batch_and_merge_equal_one_shot():
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 5, size=(3, 16, 16))
    labels = np.where(rng.random((3, 16, 16)) < 0.1, 255, rng.integers(0, 5, size=(3, 16, 16)))
    whole = SemanticEvaluator(5)
    whole.update(preds, labels)
    merged = SemanticEvaluator(5)
    for p, l in zip(preds, labels):
        part = SemanticEvaluator(5)
        part.update(p, l)
        merged.merge(part.state())
    np.testing.assert_array_equal(merged.confusion, whole.confusion)
    assert whole.confusion.sum() == (labels != 255).sum()
    whole.all_reduce()  # one rank: unchanged
    np.testing.assert_array_equal(merged.confusion, whole.confusion)


def test_bad_label_values_are_reported():
    with pytest.raises(UserInputError, match="9"):
        SemanticEvaluator(4).update(np.zeros((2, 2)), np.array([[0, 9], [1, 255]]))


def test_equals_cityscapesscripts_pixel_level(tmp_path):
    rng = np.random.default_rng(3)
    train_to_label = np.zeros(256, dtype=np.uint8)  # ignore (255) -> label 0 'unlabeled'
    for t, l in trainId2label.items():
        if 0 <= t < 255:
            train_to_label[t] = l.id
    args = copy.copy(cs_pix.args)
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    conf = cs_pix.generateMatrix(args)
    ev = SemanticEvaluator(19)
    for i in range(3):
        label = rng.integers(0, 18, size=(32, 64))
        label[rng.random(label.shape) < 0.1] = 255
        label[:, :8] = 3 if i else 255  # class 3 only in some images
        pred = np.where(rng.random(label.shape) < 0.6, label, rng.integers(0, 18, size=label.shape))
        pred[pred == 255] = 0
        gt_file, pred_file = str(tmp_path / "gt{}.png".format(i)), str(tmp_path / "pred{}.png".format(i))
        cv2.imwrite(gt_file, train_to_label[label])
        cv2.imwrite(pred_file, train_to_label[pred])
        cs_pix.evaluatePair(pred_file, gt_file, conf, {}, {}, args)
        ev.update(pred, label)
    ours = ev.evaluate()
    want = np.array([cs_pix.getIouScoreForLabel(trainId2label[t].id, conf, args) for t in range(19)])
    np.testing.assert_allclose(ours["IoU"], want, rtol=0, atol=1e-12, equal_nan=True)
    want_mean = cs_pix.getScoreAverage({t: v for t, v in enumerate(want)}, args)
    assert ours["mIoU"] == pytest.approx(want_mean, abs=1e-12)
    assert np.isnan(ours["IoU"][18])  # bicycle: never in GT nor predicted
