"""Shared data of the metric tests: generated Cityscapes ground truth (by cityscapesscripts' own
converter) with predictions written by our writers and cityscapesscripts' scores of them, and a small
hand-made panoptic case."""
import contextlib
import io
import os

import cv2
import numpy as np
import pytest
from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic
from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

from paddleseg_ext.datasets.cityscapes_meta import LABEL_ID_TO_TRAIN_ID_LUT
from panoptic_metrics import (cityscapes_panoptic_categories, panoptic_annotation, write_panoptic_json,
                              write_panoptic_prediction)
from tests.conftest import VOID

H, W = 64, 128
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


@pytest.fixture(scope="session")
def pq_files(tmp_path_factory):
    """(root, gt json, gt folder, prediction json, prediction folder, {image: prediction map},
    cityscapesscripts' results) of 3 generated frames."""
    root = str(tmp_path_factory.mktemp("pq"))
    gt_json, gt_dir, pred_json, pred_dir, preds = write_dataset(root)
    with contextlib.redirect_stdout(io.StringIO()):
        official = evaluatePanoptic(gt_json, gt_dir, pred_json, pred_dir, os.path.join(root, "official.json"))
    return root, gt_json, gt_dir, pred_json, pred_dir, preds, official


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
