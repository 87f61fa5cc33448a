"""`PanopticEvaluators` (`evaluation.suite`): every metric of one validation run (PQ, mIoU, instance AP per
score mode) from what the pipeline gives (panoptic and semantic maps, instance ids and scores)."""
import json
import types

import numpy as np
import pytest

from paddleseg_ext.evaluation import PanopticEvaluator, PanopticPredictionWriter, build_evaluators
from paddleseg_ext.utils import read_panoptic_png
from tests.conftest import VOID
from tests.panoptic_metrics.conftest import CATEGORIES, hand_case

DATASET = types.SimpleNamespace(num_classes=19, thing_ids=list(range(11, 19)), label_divisor=1000, ignore_index=255,
                                class_names=[c["name"] for c in CATEGORIES])


def _instances(pred):
    """Panoptic ids of the thing instances of `pred` and random [M, 2] scores."""
    ids = np.unique(pred[(pred != VOID) & (pred % 1000 > 0) & np.isin(pred // 1000, DATASET.thing_ids)])
    scores = np.random.default_rng(0).random((ids.size, 2)).astype(np.float32)
    return ids, scores


def test_evaluation_suite_for_the_validation_loop(tmp_path):
    pred, gt, info = hand_case()
    suite = build_evaluators(DATASET)
    assert suite.void_label == VOID  # the dataset's ignore_index * label_divisor
    pred_semantic = np.where(pred == VOID, 0, pred // 1000)
    ids, scores = _instances(pred)
    assert ids.size == 4  # person, two cars, a train
    suite.update(pred_panoptic=pred, pred_semantic=pred_semantic, gt_segment_ids=gt, gt_segments_info=info,
                 instance_ids=ids, instance_scores=scores, record={"image_id": "x"})
    m = suite.evaluate()
    json.dumps(m)  # json-ready
    alone = PanopticEvaluator(CATEGORIES)
    alone.update(pred, gt, info)
    assert m["panoptic"]["All"] == pytest.approx(alone.evaluate()["All"])
    assert m["panoptic"]["per_class"][13]["name"] == "car"
    # semantic GT: road 30, car 10 + crowd car 10, person 5; prediction road 33 (0 on void pixels too)
    assert 0.0 < m["semantic"]["mIoU"] < 1.0
    assert set(m["instance"]) == {"semantic", "semantic_x_instance"}
    # the only GT car object (10 px < 100) is too small for Cityscapes AP: no class has objects
    assert all(np.isnan(v["AP"]) for v in m["instance"]["semantic"]["per_class"].values())

    writer = PanopticPredictionWriter(str(tmp_path), DATASET)
    writer.add({"image_id": "x"}, pred)
    path = writer.finish()
    with open(path) as f:
        ann = json.load(f)["annotations"][0]
    seg = read_panoptic_png(str(tmp_path / "panoptic" / ann["file_name"]))
    again = PanopticEvaluator(CATEGORIES)
    again.update_segments(seg, ann["segments_info"], gt, info, gt_area_from_json=False)
    np.testing.assert_array_equal(again.stats, alone.stats)


def test_score_modes_name_the_instance_metrics():
    """One AP per column of `instance_scores`, named by the model's `score_modes`; no modes, no AP."""
    pred, gt, info = hand_case()
    ids, scores = _instances(pred)
    suite = build_evaluators(DATASET, score_modes=("confidence",))
    suite.update(pred, np.where(pred == VOID, 0, pred // 1000), gt, info, instance_ids=ids,
                 instance_scores=scores[:, :1])
    assert set(suite.evaluate()["instance"]) == {"confidence"}
    suite = build_evaluators(DATASET, score_modes=())
    suite.update(pred, np.where(pred == VOID, 0, pred // 1000), gt, info, instance_ids=ids, instance_scores=scores)
    assert suite.evaluate()["instance"] == {}


def test_image_without_predicted_instances():
    """An image whose prediction has no thing instance (M = 0) still counts for every metric."""
    pred, gt, info = hand_case()
    stuff_only = np.where(pred % 1000 > 0, 0, pred)
    suite = build_evaluators(DATASET)
    suite.update(stuff_only, np.where(stuff_only == VOID, 0, stuff_only // 1000), gt, info,
                 instance_ids=np.zeros([0], np.int64), instance_scores=np.zeros([0, 2], np.float32))
    m = suite.evaluate()
    assert m["panoptic"]["Things"]["pq"] == 0.0 and set(m["instance"]) == {"semantic", "semantic_x_instance"}
