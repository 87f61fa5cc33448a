"""Panoptic quality: equal to cityscapesscripts' evaluatePanoptic on generated files, hand cases, properties."""
import contextlib
import importlib.util
import io
import json
import os

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic
from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

from paddleseg_ext.datasets.cityscapes_meta import LABEL_ID_TO_TRAIN_ID_LUT
from paddleseg_ext.evaluation import (PanopticEvaluator, cityscapes_panoptic_categories, evaluate_panoptic_files,
                                      panoptic_annotation, write_panoptic_json, write_panoptic_prediction)
from paddleseg_ext.utils import UserInputError, read_panoptic_png

H, W = 64, 128
VOID = 255000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATEGORIES = cityscapes_panoptic_categories(use_train_id=True)


def gt_instance_ids(rng):
    """A Cityscapes *_instanceIds map (label ids; label*1000+k for instances), shifted at random."""
    dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
    g = np.full((H, W), 7, dtype=np.int64)                  # road
    g[:16] = 23                                             # sky
    g[16:40, :64] = 11                                      # building
    g[16:40, 64:] = 21                                      # vegetation
    g[5:10, 5:20] = 0                                       # unlabeled: void
    g[30 + dy:46 + dy, 10 + dx:31 + dx] = 26001             # car, split in two by the prediction
    g[30:46, 35:56] = 26002                                 # car, predicted shifted
    g[20:45, 70:77] = 24001                                 # two persons, merged by the prediction
    g[20:45, 77:84] = 24002
    g[25:46, 90:111] = 27001                                # truck, predicted as bus
    g[46:57, 60:81] = 26                                    # car group: a crowd region
    g[46:57, 100:113] = 33001                               # bicycle, missed
    g[30:38, 115:125] = 29001                               # caravan: ignored class, void in panoptic GT
    g[58:] = 1                                              # ego vehicle: void
    return g


def prediction_from(gt, rng):
    """Our panoptic prediction (train id * 1000 + instance) with hand-made mistakes."""
    label = np.where(gt >= 1000, gt // 1000, gt)
    train = LABEL_ID_TO_TRAIN_ID_LUT[label].astype(np.int64)
    inst = np.where((gt >= 1000) & (train >= 11) & (train <= 18), gt % 1000, 0)
    pan = np.where(train == 255, VOID, train * 1000 + inst)
    pan[gt == 0] = 10000                                    # sky predicted over the void patch
    pan[gt == 29001] = 0                                    # caravan (void in GT) predicted as road
    ys, xs = np.nonzero(gt == 26001)
    cut = xs.min() + 10
    pan[(gt == 26001) & (np.arange(W)[None, :] >= cut)] = 13003         # the split
    c2 = gt == 26002
    pan[c2] = 0
    pan[np.roll(c2, 2, axis=1)] = 13002                                 # shifted car
    pan[(gt == 24001) | (gt == 24002)] = 11001                          # the merge
    pan[gt == 27001] = 15001                                            # truck -> bus
    pan[48:56, 62:80] = 13005                                           # a car on the crowd car region
    pan[46:52, 55:66] = 11007                                           # a person partly on it: FP
    pan[gt == 33001] = 0                                                # bicycle missed (road)
    pan[59:63, 20:40] = 13007                                           # a car on void only: ignored
    pan[54:62, 44:52] = 12001                                           # a rider half on void
    pan[50:56, 2:20] = 16001                                            # a train, a class absent in GT
    pan[20:30, 100:128] = 9000                                          # terrain over vegetation
    pan[40:44, 0:8] = VOID                                              # void in the prediction
    k = int(rng.integers(0, 3))
    pan[60 - k:64, 120:128] = 18004                                     # a bicycle on void
    return pan


def write_dataset(root, num_images=3, seed=0):
    """GT by cityscapesscripts' own converter (trainId json + PNGs), predictions by our writer."""
    rng = np.random.default_rng(seed)
    city = os.path.join(root, "gtFine", "val", "testcity")
    os.makedirs(city)
    preds = {}
    for i in range(num_images):
        gt = gt_instance_ids(rng)
        name = "testcity_000000_{:06d}".format(i)
        assert cv2.imwrite(os.path.join(city, name + "_gtFine_instanceIds.png"), gt.astype(np.uint16))
        preds[name] = prediction_from(gt, rng)
    with contextlib.redirect_stdout(io.StringIO()):
        convert2panoptic(os.path.join(root, "gtFine"), os.path.join(root, "gtFine"), useTrainId=True, setNames=["val"])
    anns = []
    for name, pan in sorted(preds.items()):
        info = write_panoptic_prediction(os.path.join(root, "pred", name + ".png"), pan, void_label=VOID)
        anns.append(panoptic_annotation(name, name + ".png", info))
    write_panoptic_json(os.path.join(root, "pred.json"), anns)
    gt_json = os.path.join(root, "gtFine", "cityscapes_panoptic_val_trainId.json")
    return gt_json, gt_json[:-5], os.path.join(root, "pred.json"), os.path.join(root, "pred"), preds


def assert_same_results(ours, official):
    assert set(ours) == set(official) == {"All", "Things", "Stuff", "per_class"}
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["n"] == official[group]["n"]
        for k in ("pq", "sq", "rq"):
            assert ours[group][k] == pytest.approx(official[group][k], abs=1e-9, rel=0)
    assert set(ours["per_class"]) == set(official["per_class"])
    for cid, want in official["per_class"].items():
        assert set(ours["per_class"][cid]) == set(want)
        for k in want:
            assert ours["per_class"][cid][k] == pytest.approx(want[k], abs=1e-9, rel=0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("pq"))
    gt_json, gt_dir, pred_json, pred_dir, preds = write_dataset(root)
    with contextlib.redirect_stdout(io.StringIO()):
        official = evaluatePanoptic(gt_json, gt_dir, pred_json, pred_dir, os.path.join(root, "official.json"))
    return root, gt_json, gt_dir, pred_json, pred_dir, preds, official


def test_file_evaluation_equals_cityscapesscripts(dataset):
    root, gt_json, gt_dir, pred_json, pred_dir, _, official = dataset
    ours = evaluate_panoptic_files(gt_json, gt_dir, pred_json, pred_dir, verbose=False, num_workers=2)
    assert_same_results(ours, official)
    # the mistakes make every rule count: not a trivial score
    assert 0.2 < official["All"]["pq"] < 0.9
    # 8 GT classes (road, sky, building, vegetation, car, person, truck, missed bicycle)
    # + 4 only predicted (bus, train, terrain, rider)
    assert official["All"]["n"] == 12


def test_in_memory_evaluator_equals_cityscapesscripts(dataset):
    root, gt_json, gt_dir, _, _, preds, official = dataset
    with open(gt_json) as f:
        gt = json.load(f)
    ev = PanopticEvaluator(gt["categories"], label_divisor=1000, void_label=VOID)
    for ann in gt["annotations"]:
        gt_ids = read_panoptic_png(os.path.join(gt_dir, ann["file_name"]))
        ev.update(preds[ann["image_id"]], gt_ids, ann["segments_info"])
    assert ev.num_images == 3
    assert_same_results(ev.evaluate(), official)


def test_tool_writes_the_official_results_file(dataset, capsys):
    root, gt_json, gt_dir, pred_json, pred_dir, _, _ = dataset
    spec = importlib.util.spec_from_file_location("eval_panoptic_tool", os.path.join(REPO, "tools", "eval_panoptic.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = os.path.join(root, "ours.json")
    assert tool.main(["--gt-json-file", gt_json, "--gt-folder", gt_dir, "--prediction-json-file", pred_json,
                      "--prediction-folder", pred_dir, "--results_file", out]) == 0
    printed = capsys.readouterr().out
    assert "Things" in printed and "person" in printed
    with open(out) as f:
        ours = json.load(f)
    with open(os.path.join(root, "official.json")) as f:
        official = json.load(f)
    assert_same_results(ours, official)  # per_class keys are the category ids as strings in both

    # a missing prediction json is reported, not a traceback
    assert tool.main(["--gt-json-file", gt_json, "--prediction-json-file", os.path.join(root, "nope.json")]) == 1
    assert "nope.json" in capsys.readouterr().err


def test_prediction_png_and_json_must_agree(dataset, tmp_path):
    _, gt_json, gt_dir, pred_json, pred_dir, _, _ = dataset
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


def hand_case():
    """6 x 10 image, see test_hand_computed_pq."""
    gt = np.zeros((6, 10), dtype=np.int64)
    gt[0:3] = 1          # road, 30 px
    gt[3] = 2            # car, 10 px
    gt[4, 0:5] = 3       # person, 5 px (cols 5-9 void)
    gt[5] = 4            # crowd car region
    info = [{"id": 1, "category_id": 0, "iscrowd": 0}, {"id": 2, "category_id": 13, "iscrowd": 0},
            {"id": 3, "category_id": 11, "iscrowd": 0}, {"id": 4, "category_id": 13, "iscrowd": 1}]
    pred = np.zeros((6, 10), dtype=np.int64)   # road (class 0, instance 0)
    pred[2, 8:10] = 13001
    pred[3] = 13001
    pred[4, 0:2] = 11001
    pred[4, 5:10] = 11001
    pred[5, 0:6] = 13002
    pred[5, 8:10] = 16001
    return pred, gt, info


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
    seg, pinfo = __import__("paddleseg_ext.evaluation", fromlist=["x"]).panoptic_to_segments(pred, void_label=VOID)
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


def test_evaluation_suite_for_the_validation_loop(tmp_path):
    import types

    from paddleseg_ext.evaluation import PanopticPredictionWriter, build_evaluators

    pred, gt, info = hand_case()
    dataset = types.SimpleNamespace(num_classes=19, thing_ids=list(range(11, 19)), label_divisor=1000,
                                    ignore_index=255, class_names=[c["name"] for c in CATEGORIES])
    suite = build_evaluators(dataset)
    pred_semantic = np.where(pred == VOID, 0, pred // 1000)
    rng = np.random.default_rng(0)
    sem_prob = rng.random((19, 6, 10)).astype(np.float32)
    sem_prob /= sem_prob.sum(0, keepdims=True)
    center = rng.random((1, 6, 10)).astype(np.float32)
    suite.update(pred_panoptic=pred, pred_semantic=pred_semantic, gt_segment_ids=gt, gt_segments_info=info,
                 sem_prob=sem_prob, center=center, record={"image_id": "x"})
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

    writer = PanopticPredictionWriter(str(tmp_path), dataset)
    writer.add({"image_id": "x"}, pred)
    path = writer.finish()
    with open(path) as f:
        ann = json.load(f)["annotations"][0]
    ids = read_panoptic_png(str(tmp_path / "panoptic" / ann["file_name"]))
    again = PanopticEvaluator(CATEGORIES)
    again.update_segments(ids, ann["segments_info"], gt, info, gt_area_from_json=False)
    np.testing.assert_array_equal(again.stats, alone.stats)
