"""prepare_cityscapes (`datasets.cityscapes_prepare`, tools/prepare_cityscapes.py): idempotent, and its
outputs agree with each other and with the Cityscapes label table."""
import json
import os
import shutil

import cv2
import numpy as np

from paddleseg_ext.cli import prepare_cityscapes as prepare_cityscapes_cli
from paddleseg_ext.cli.common import run_cli
from paddleseg_ext.datasets.cityscapes_prepare import prepare_cityscapes
from paddleseg_ext.utils import read_panoptic_png


def mtimes(root):
    out = {}
    for d, _, files in os.walk(os.path.join(root, "gtFine")):
        for f in files:
            out[os.path.join(d, f)] = os.stat(os.path.join(d, f)).st_mtime_ns
    return out


def test_prepare_cityscapes_idempotent(demo_root, tmp_path):
    root = str(tmp_path / "cs")
    shutil.copytree(demo_root, root)
    gt = os.path.join(root, "gtFine")
    before = mtimes(root)
    summary = prepare_cityscapes(root, verbose=False)
    assert summary["val"] == {"train_id_pngs": 0, "panoptic_trainId": "skipped", "panoptic": "skipped"}
    assert mtimes(root) == before
    # a missing output is redone, the rest skipped
    train_id_png = os.path.join(gt, "val", "mockdorf", "mockdorf_000001_000019_gtFine_labelTrainIds.png")
    os.remove(train_id_png)
    os.remove(os.path.join(gt, "cityscapes_panoptic_val", "mockdorf_000002_000019_gtFine_panoptic.png"))
    summary = prepare_cityscapes(root, verbose=False)
    assert summary["val"] == {"train_id_pngs": 1, "panoptic_trainId": "skipped", "panoptic": "written"}
    assert summary["train"]["panoptic"] == "skipped"
    assert os.path.isfile(train_id_png)
    # --force through the CLI redoes everything
    assert prepare_cityscapes_cli.main(["--root", root, "--force"]) == 0
    assert prepare_cityscapes(root, verbose=False)["train"]["panoptic_trainId"] == "skipped"
    assert run_cli(prepare_cityscapes_cli.main, ["--root", str(tmp_path / "nothing")]) == 2


def test_prepare_outputs_are_consistent(demo_root):
    gt = os.path.join(demo_root, "gtFine")
    stem = "mockdorf_000000_000019"
    label_ids = cv2.imread(os.path.join(gt, "val", "mockdorf", stem + "_gtFine_labelIds.png"), -1)
    train_ids = cv2.imread(os.path.join(gt, "val", "mockdorf", stem + "_gtFine_labelTrainIds.png"), -1)
    # Cityscapes table: road 7->0, sidewalk 8->1, building 11->2, vegetation 21->8, sky 23->10,
    # person 24->11, car 26->13, truck 27->14, ego vehicle 1->255
    for lid, tid in {7: 0, 8: 1, 11: 2, 21: 8, 22: 9, 23: 10, 24: 11, 26: 13, 27: 14, 1: 255}.items():
        assert (label_ids == lid).any(), lid
        assert (train_ids[label_ids == lid] == tid).all(), lid
    for suffix, person, crowd in (("_trainId", 11, 13), ("", 24, 26)):
        with open(os.path.join(gt, "cityscapes_panoptic_val{}.json".format(suffix))) as f:
            d = json.load(f)
        ann = [a for a in d["annotations"] if a["image_id"] == stem][0]
        pan = read_panoptic_png(os.path.join(gt, "cityscapes_panoptic_val" + suffix, ann["file_name"]))
        assert set(np.unique(pan).tolist()) - {0} == {s["id"] for s in ann["segments_info"]}
        cats = {s["id"]: (s["category_id"], s["iscrowd"]) for s in ann["segments_info"]}
        assert cats[24000] == (person, 0) and cats[26] == (crowd, 1)
