"""Instance AP: equal to cityscapesscripts' evaluateImgLists on generated files; hand cases; COCO."""
import copy
import os

import cv2
import numpy as np
import pytest

from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as cs_inst

from paddleseg_ext.datasets.cityscapes_meta import TRAIN_ID_TO_LABEL_ID
from panoptic_metrics import (CityscapesInstanceEvaluator, CocoInstanceEvaluator, instances_from_panoptic,
                              write_cityscapes_instances)
from panoptic_metrics.instance_ap import average_precision

H, W = 64, 128
# label ids: road 7, sky 23, ego vehicle 1 (void), person 24, rider 25, car 26, bicycle 33, caravan 29
THING_TRAIN = {24: 11, 25: 12, 26: 13, 33: 18}


def make_gt(rng):
    """A Cityscapes *_instanceIds map with instances, a group, a small object, void and an ignored class."""
    gt = np.full((H, W), 7, dtype=np.int64)
    gt[:16] = 23
    gt[-6:] = 1  # ego vehicle: void
    k = {24: 0, 25: 0, 26: 0, 33: 0}
    for _ in range(rng.integers(3, 7)):
        label = int(rng.choice([24, 25, 26, 33]))
        y, x = int(rng.integers(0, H - 20)), int(rng.integers(0, W - 24))
        h, w = int(rng.integers(8, 22)), int(rng.integers(8, 26))
        k[label] += 1
        gt[y:y + h, x:x + w] = label * 1000 + k[label]
    gt[20:26, 2:10] = 26 * 1000 + 99   # a small car (48 px < 100)
    gt[40:52, 100:120] = 26             # a car group
    gt[30:38, 60:70] = 29001            # a caravan (ignored class, not void by its raw id)
    return gt


def make_predictions(gt, rng):
    """Predictions from the ground truth with shifted, duplicated, wrong-class and spurious masks."""
    classes, masks, scores = [], [], []
    ids = [i for i in np.unique(gt) if (i >= 1000 and i // 1000 in THING_TRAIN) or i == 26]
    for i in ids:
        m = gt == i
        label = i // 1000 if i >= 1000 else i
        r = rng.random()
        if r < 0.15:
            continue  # missed
        dy, dx = rng.integers(-3, 4, size=2)
        m = np.roll(np.roll(m, dy, 0), dx, 1)
        if r > 0.85:  # wrong class
            label = 24 if label != 24 else 26
        classes.append(THING_TRAIN[label])
        masks.append(m)
        scores.append(round(float(rng.random()), 2))  # rounded: ties happen
        if rng.random() < 0.3:  # a duplicate, slightly eroded
            classes.append(THING_TRAIN[label])
            masks.append(m & np.roll(m, 1, 0))
            scores.append(round(float(rng.random()), 2))
    for _ in range(rng.integers(1, 4)):  # spurious ones, on road, sky or void
        y, x = int(rng.integers(0, H - 12)), int(rng.integers(0, W - 12))
        m = np.zeros((H, W), dtype=bool)
        m[y:y + int(rng.integers(4, 14)), x:x + int(rng.integers(4, 14))] = True
        classes.append(int(rng.choice([11, 12, 13, 18])))
        masks.append(m)
        scores.append(round(float(rng.random()), 2))
    m = np.zeros((H, W), dtype=bool)
    m[-6:, 10:40] = True  # on void only: ignored
    classes.append(13)
    masks.append(m)
    scores.append(0.9)
    classes.append(13)  # an empty mask: skipped
    masks.append(np.zeros((H, W), dtype=bool))
    scores.append(0.5)
    classes.append(0)  # a stuff class: not evaluated
    masks.append(gt == 7)
    scores.append(0.7)
    return np.array(classes), np.stack(masks), np.array(scores)


def official_ap(tmp_path, monkeypatch, gts, preds):
    """Write the files and run cityscapesscripts' instance evaluation in-process."""
    gt_dir, res_dir = tmp_path / "gt", tmp_path / "results"
    gt_dir.mkdir()
    gt_files, pred_files = [], []
    for i, (gt, (classes, masks, scores)) in enumerate(zip(gts, preds)):
        name = "testcity_000000_{:06d}".format(i)
        f = str(gt_dir / (name + "_gtFine_instanceIds.png"))
        assert cv2.imwrite(f, gt.astype(np.uint16))
        gt_files.append(f)
        pred_files.append(write_cityscapes_instances(str(res_dir), name, classes, masks, scores,
                                                     class_to_label_id=TRAIN_ID_TO_LABEL_ID))
    args = copy.copy(cs_inst.args)
    args.predictionPath = os.path.abspath(str(res_dir))
    args.predictionWalk = None
    args.gtInstancesFile = str(tmp_path / "gtInstances.json")
    args.exportFile = str(tmp_path / "result.json")
    args.JSONOutput = False
    args.quiet = True
    args.instLabels = []
    monkeypatch.chdir(tmp_path)  # the official script writes matches.json into the working directory
    return cs_inst.evaluateImgLists(pred_files, gt_files, args), gt_files


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cityscapes_ap_equals_cityscapesscripts(tmp_path, monkeypatch, seed):
    rng = np.random.default_rng(seed)
    gts = [make_gt(rng) for _ in range(3)]
    preds = [make_predictions(gt, rng) for gt in gts]
    official, gt_files = official_ap(tmp_path, monkeypatch, gts, preds)

    ev = CityscapesInstanceEvaluator()
    for f, (classes, masks, scores) in zip(gt_files, preds):
        gt_read = cv2.imread(f, cv2.IMREAD_UNCHANGED)
        ev.update(classes, masks, scores, gt_read)
    ours = ev.evaluate()
    want = np.array(official["resultApMatrix"][0], dtype=np.float64)
    np.testing.assert_allclose(ours["ap_matrix"], want, rtol=0, atol=1e-9, equal_nan=True)
    assert ours["AP"] == pytest.approx(official["averages"]["allAp"], abs=1e-9)
    assert ours["AP50"] == pytest.approx(official["averages"]["allAp50%"], abs=1e-9)
    for name, v in official["averages"]["classes"].items():
        np.testing.assert_allclose([ours["per_class"][name]["AP"], ours["per_class"][name]["AP50"]],
                                   [v["ap"], v["ap50%"]], atol=1e-9, equal_nan=True)
    assert 0.0 < ours["AP"] < 1.0


def test_index_map_input_equals_mask_input():
    rng = np.random.default_rng(5)
    gt = make_gt(rng)
    pan = np.where(gt >= 1000, (gt // 1000 == 26) * 13000 + (gt // 1000 == 24) * 11000 + gt % 1000, 0)
    pan = np.roll(pan, 2, 1)
    classes, index_map, labels = instances_from_panoptic(pan, thing_ids=[11, 13])
    scores = np.linspace(0.2, 0.9, classes.size)
    masks = index_map[None] == np.arange(1, classes.size + 1)[:, None, None]
    a, b = CityscapesInstanceEvaluator(), CityscapesInstanceEvaluator()
    a.update(classes, masks, scores, gt)
    b.update(classes, index_map, scores, gt)
    np.testing.assert_array_equal(a.ap_matrix(), b.ap_matrix())
    assert set((labels // 1000).tolist()) <= {11, 13}


def test_hand_computed_ap():
    # two cars of 200 px; predictions: a perfect one (score 0.9) and a spurious one (score 0.8);
    # the second car is missed. Points (ascending score): t=0.8 -> p=1/2, r=1/2; t=0.9 -> p=1, r=1/2;
    # artificial (p=1, r=0). Step widths 0.5*(r0-r1)=0, 0.5*(r0-r2)=0.25, 0.5*r1=0.25 -> AP = 0.5.
    gt = np.full((H, W), 7, dtype=np.int64)
    gt[0:10, 0:20] = 26001
    gt[20:30, 0:20] = 26002
    m1 = gt == 26001
    m2 = np.zeros((H, W), dtype=bool)
    m2[40:50, 60:80] = True
    ev = CityscapesInstanceEvaluator()
    ev.update([13, 13], np.stack([m1, m2]), [0.9, 0.8], gt)
    r = ev.evaluate()
    assert r["per_class"]["car"]["AP"] == pytest.approx(0.5)
    assert r["AP"] == pytest.approx(0.5)  # other classes have no ground truth: NaN, left out
    assert np.isnan(r["per_class"]["person"]["AP"])


def test_duplicate_prediction_keeps_best_score_and_counts_a_false_positive():
    # one car, two perfect predictions (0.3 and 0.6): TP at 0.6, FP at 0.3.
    # Points: t=0.3 -> p=1/2, r=1; t=0.6 -> p=1, r=1; artificial (1, 0).
    # widths: 0.5*(1-1)=0, 0.5*(1-0)=0.5, 0.5*1=0.5 -> AP = 0.5*1 + 0.5*1 = 1.0
    gt = np.full((H, W), 7, dtype=np.int64)
    gt[0:10, 0:20] = 26001
    m = gt == 26001
    ev = CityscapesInstanceEvaluator()
    ev.update([13, 13], np.stack([m, m]), [0.3, 0.6], gt)
    assert ev.evaluate()["per_class"]["car"]["AP"] == pytest.approx(1.0)


def test_average_precision_groups_are_independent():
    groups = np.array([0, 0, 1, 1, 1])
    is_true = np.array([True, False, True, True, False])
    scores = np.array([0.9, 0.8, 0.5, 0.4, 0.95])
    ap, entries = average_precision(groups, 2, is_true, scores, np.array([1.0, 0.0]))
    # group 0: as test_hand_computed_ap -> 0.5
    # group 1: ascending 0.4(T) 0.5(T) 0.95(F): t=0.4 p=2/3 r=1; t=0.5 p=1/2 r=1/2; t=0.95 p=0 r=0;
    # artificial (1, 0). widths: 0.5*(1-0.5)=0.25, 0.5*(1-0)=0.5, 0.5*(0.5-0)=0.25, 0.5*0=0
    # AP = 2/3*0.25 + 1/2*0.5 + 0 = 1/6 + 1/4
    np.testing.assert_allclose(ap, [0.5, 1 / 6 + 1 / 4])
    np.testing.assert_array_equal(entries, [2, 3])


def test_state_merge_equals_one_shot():
    rng = np.random.default_rng(7)
    gts = [make_gt(rng) for _ in range(3)]
    preds = [make_predictions(g, rng) for g in gts]
    one, parts = CityscapesInstanceEvaluator(), []
    for g, (c, m, s) in zip(gts, preds):
        one.update(c, m, s, g)
        e = CityscapesInstanceEvaluator()
        e.update(c, m, s, g)
        parts.append(e.state())
    merged = CityscapesInstanceEvaluator()
    for p in parts:
        merged.merge(p)
    np.testing.assert_array_equal(merged.ap_matrix(), one.ap_matrix())


def test_coco_instance_ap():
    gt = np.zeros((H, W), dtype=np.int64)
    gt[0:20, 0:30] = 5
    gt[30:50, 40:80] = 6
    gt[0:10, 100:120] = 7  # a stuff segment: not evaluated
    info = [{"id": 5, "category_id": 1, "iscrowd": 0}, {"id": 6, "category_id": 2, "iscrowd": 0},
            {"id": 7, "category_id": 90, "iscrowd": 0}]
    ev = CocoInstanceEvaluator(thing_category_ids=[1, 2])
    perfect = np.stack([gt == 5, gt == 6])
    ev.update(1, [1, 2], perfect, [0.9, 0.8], gt, info)
    r = ev.evaluate()
    assert r["AP"] == pytest.approx(1.0)
    assert r["AP50"] == pytest.approx(1.0)
    # wrong class on the second object: category 2 has a missed object and category 1 a false
    # positive ranked below the true positive: AP(1) = 1, AP(2) = 0 -> mean 0.5
    ev.reset()
    ev.update(1, [1, 1], perfect, [0.9, 0.8], gt, info)
    assert ev.evaluate()["AP"] == pytest.approx(0.5)
