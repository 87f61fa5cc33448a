"""Panoptic quality (`panoptic_metrics.panoptic_quality`, `panoptic_files`): equal to cityscapesscripts'
evaluatePanoptic on generated files, hand cases, properties."""
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from panoptic_metrics import PanopticEvaluator, UserInputError, evaluate_panoptic_files, read_panoptic_png
from panoptic_metrics.formats import panoptic_to_segments
from tests.conftest import VOID
from tests.panoptic_metrics.conftest import CATEGORIES, assert_same_results, hand_case


def test_file_evaluation_equals_cityscapesscripts(pq_files):
    root, gt_json, gt_dir, pred_json, pred_dir, _, official = pq_files
    ours = evaluate_panoptic_files(gt_json, gt_dir, pred_json, pred_dir, verbose=False, num_workers=2)
    assert_same_results(ours, official)
    # the mistakes make every rule count: not a trivial score
    assert 0.2 < official["All"]["pq"] < 0.9
    # 8 GT classes (road, sky, building, vegetation, car, person, truck, missed bicycle)
    # + 4 only predicted (bus, train, terrain, rider)
    assert official["All"]["n"] == 12


def test_in_memory_evaluator_equals_cityscapesscripts(pq_files):
    root, gt_json, gt_dir, _, _, preds, official = pq_files
    with open(gt_json) as f:
        gt = json.load(f)
    ev = PanopticEvaluator(gt["categories"], label_divisor=1000, void_label=VOID)
    for ann in gt["annotations"]:
        gt_ids = read_panoptic_png(os.path.join(gt_dir, ann["file_name"]))
        ev.update(preds[ann["image_id"]], gt_ids, ann["segments_info"])
    assert ev.num_images == 3
    assert_same_results(ev.evaluate(), official)


def test_prediction_png_and_json_must_agree(pq_files, tmp_path):
    _, gt_json, gt_dir, pred_json, pred_dir, _, _ = pq_files
    with open(pred_json) as f:
        pred = json.load(f)
    pred["annotations"][1]["segments_info"].pop(0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(pred))
    with pytest.raises(UserInputError, match="in the prediction PNG and not in its JSON"):
        evaluate_panoptic_files(gt_json, gt_dir, str(bad), pred_dir, verbose=False)
    pred["annotations"][1]["segments_info"].append({"id": 999, "category_id": 0})
    bad.write_text(json.dumps(pred))
    with pytest.raises(UserInputError, match="testcity_000000_000001"):
        evaluate_panoptic_files(gt_json, gt_dir, str(bad), pred_dir, verbose=False)


def test_hand_computed_pq():
    # road: pred 33 px, 28 on GT road -> IoU 28 / (33 + 30 - 28) = 0.8, TP
    # car 1: 12 px, 10 on the car -> IoU 10 / 12, TP; car 2: all on the crowd car region -> ignored
    # person: 7 px, 2 on the person, 5 on void -> IoU 2 / (7 + 5 - 2 - 5) = 0.4 -> GT person FN;
    #   the prediction is 5/7 void -> not a FP
    # train: 2 px on the crowd *car* region -> FP (crowd of another class does not excuse it)
    pred, gt, info = hand_case()
    ev = PanopticEvaluator(CATEGORIES)
    ev.update(pred, gt, info)
    r = ev.evaluate(detailed=True)
    pc = r["per_class"]
    assert pc[0]["pq"] == pytest.approx(0.8) and pc[0]["rq"] == 1.0
    assert pc[13]["pq"] == pytest.approx(10 / 12) and pc[13]["sq"] == pytest.approx(10 / 12)
    assert (pc[11]["tp"], pc[11]["fp"], pc[11]["fn"]) == (0, 0, 1)
    assert (pc[16]["tp"], pc[16]["fp"], pc[16]["fn"]) == (0, 1, 0)
    assert pc[11]["sq"] == 0 and pc[11]["rq"] == 0.0
    assert r["All"] == pytest.approx({"pq": (0.8 + 10 / 12) / 4, "sq": (0.8 + 10 / 12) / 4, "rq": 0.5, "n": 4})
    assert r["Things"] == pytest.approx({"pq": 10 / 12 / 3, "sq": 10 / 12 / 3, "rq": 1 / 3, "n": 3})
    assert r["Stuff"] == pytest.approx({"pq": 0.8, "sq": 0.8, "rq": 1.0, "n": 1})


def test_unknown_predicted_class_is_reported():
    pred, gt, info = hand_case()
    pred[0, 0] = 77001
    with pytest.raises(UserInputError, match="77"):
        PanopticEvaluator(CATEGORIES).update(pred, gt, info)


# ---- properties ---------------------------------------------------------------------------

STUFF = [c["id"] for c in CATEGORIES if not c["isthing"]]
THINGS = [c["id"] for c in CATEGORIES if c["isthing"]]


@st.composite
def gt_images(draw):
    """A GT segment map (ids 0..6, 0 = void) with its segments_info; each stuff class used once."""
    seg = draw(hnp.arrays(np.int64, (8, 12), elements=st.integers(0, 6)))
    ids = sorted(set(seg.ravel().tolist()) - {0})
    stuff = draw(st.permutations(STUFF))
    info = []
    for n, i in enumerate(ids):
        thing = draw(st.booleans())
        cat = draw(st.sampled_from(THINGS)) if thing else stuff[n]
        info.append({"id": i, "category_id": cat, "iscrowd": 0})
    return seg, info


def perfect_prediction(seg, info):
    pred = np.full(seg.shape, VOID, dtype=np.int64)
    for s in info:
        inst = s["id"] if s["category_id"] in THINGS else 0
        pred[seg == s["id"]] = s["category_id"] * 1000 + inst
    return pred


@settings(max_examples=40, deadline=None)
@given(gt_images())
def test_perfect_prediction_scores_one(sample):
    seg, info = sample
    ev = PanopticEvaluator(CATEGORIES, void_label=VOID)
    ev.update(perfect_prediction(seg, info), seg, info)
    r = ev.evaluate()
    assert r["All"]["n"] == len({s["category_id"] for s in info})
    if info:
        assert r["All"]["pq"] == pytest.approx(1.0)
        assert r["All"]["sq"] == pytest.approx(1.0)
        assert r["All"]["rq"] == 1.0


@settings(max_examples=40, deadline=None)
@given(gt_images(), hnp.arrays(np.int64, (8, 12), elements=st.sampled_from([0, 1000, 11001, 11002, 13001, 9000, VOID])))
def test_scores_are_bounded(sample, pred):
    seg, info = sample
    ev = PanopticEvaluator(CATEGORIES, void_label=VOID)
    ev.update(pred, seg, info)
    r = ev.evaluate()
    for group in ("All", "Things", "Stuff"):
        for k in ("pq", "sq", "rq"):
            assert 0.0 <= r[group][k] <= 1.0 + 1e-12
        # per class pq = sq * rq <= min(sq, rq), so the means keep that order
        assert r[group]["pq"] <= min(r[group]["sq"], r[group]["rq"]) + 1e-12
    for v in r["per_class"].values():
        assert v["pq"] == pytest.approx(v["sq"] * v["rq"])


@settings(max_examples=25, deadline=None)
@given(st.lists(gt_images(), min_size=2, max_size=4), st.randoms(use_true_random=False))
def test_merged_states_equal_one_shot(samples, rnd):
    one = PanopticEvaluator(CATEGORIES, void_label=VOID)
    merged = PanopticEvaluator(CATEGORIES, void_label=VOID)
    for seg, info in samples:
        pred = perfect_prediction(seg, info)
        flip = np.array([[rnd.random() < 0.3 for _ in range(seg.shape[1])] for _ in range(seg.shape[0])])
        pred[flip] = 11009
        one.update(pred, seg, info)
        part = PanopticEvaluator(CATEGORIES, void_label=VOID)
        part.update(pred, seg, info)
        merged.merge(part.state())
    np.testing.assert_allclose(merged.stats, one.stats, rtol=0, atol=1e-12)
    a, b = merged.evaluate(), one.evaluate()
    for g in ("All", "Things", "Stuff"):
        assert a[g] == pytest.approx(b[g], abs=1e-12)


def test_all_reduce_is_identity_on_one_rank():
    pred, gt, info = hand_case()
    ev = PanopticEvaluator(CATEGORIES)
    ev.update(pred, gt, info)
    before = ev.stats.copy()
    ev.all_reduce()
    np.testing.assert_array_equal(ev.stats, before)
    assert ev.num_images == 1


def test_large_segment_ids_give_the_same_stats():
    # COCO-style PNGs may use any 24-bit id: the searchsorted path must agree with the lookup table
    pred, gt, info = hand_case()
    seg, pinfo = panoptic_to_segments(pred, void_label=VOID)
    small = PanopticEvaluator(CATEGORIES)
    small.update_segments(seg, pinfo, gt, info, gt_area_from_json=False)
    big = PanopticEvaluator(CATEGORIES)
    remap = lambda ids: np.where(ids > 0, (ids * 4194319 + 77) % (1 << 24), 0)  # noqa: E731
    big_info = [dict(s, id=int(remap(np.array(s["id"])))) for s in info]
    big_pinfo = [dict(s, id=int(remap(np.array(s["id"])))) for s in pinfo]
    big.update_segments(remap(seg), big_pinfo, remap(gt), big_info, gt_area_from_json=False)
    assert remap(gt).max() > (1 << 22)
    np.testing.assert_array_equal(big.stats, small.stats)
    ref = PanopticEvaluator(CATEGORIES)
    ref.update(pred, gt, info)
    np.testing.assert_array_equal(ref.stats, small.stats)
