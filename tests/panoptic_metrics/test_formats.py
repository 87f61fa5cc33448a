"""Writers of the official prediction formats: segments, PNG round trip, json, Cityscapes instance files."""
import json
import os

import cv2
import numpy as np
import pytest

from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as cs_inst

from paddleseg_ext.datasets.cityscapes_meta import TRAIN_ID_TO_LABEL_ID
from panoptic_metrics import (UserInputError, cityscapes_panoptic_categories, instances_from_panoptic,
                              panoptic_annotation, panoptic_to_segments, read_panoptic_png, write_cityscapes_instances,
                              write_panoptic_json, write_panoptic_prediction)

VOID = 255000


def small_panoptic():
    pan = np.zeros((5, 8), dtype=np.int64)   # road everywhere: class 0, instance 0
    pan[0, :] = 10000                         # sky
    pan[1:3, 2:4] = 13001                     # car 1: rows 1-2, cols 2-3
    pan[3, 5:8] = 13002                       # car 2: row 3, cols 5-7
    pan[4, 0] = VOID
    return pan


def test_segments_ids_areas_boxes():
    seg, info = panoptic_to_segments(small_panoptic(), void_label=VOID)
    # segments in increasing label order: road 0 -> 1, sky 10000 -> 2, car 13001 -> 3, car 13002 -> 4
    assert [s["id"] for s in info] == [1, 2, 3, 4]
    assert [s["category_id"] for s in info] == [0, 10, 13, 13]
    assert [s["area"] for s in info] == [40 - 8 - 4 - 3 - 1, 8, 4, 3]
    assert info[0]["bbox"] == [0, 1, 8, 4]
    assert info[1]["bbox"] == [0, 0, 8, 1]
    assert info[2]["bbox"] == [2, 1, 2, 2]
    assert info[3]["bbox"] == [5, 3, 3, 1]
    assert all(s["iscrowd"] == 0 for s in info)
    assert seg[4, 0] == 0 and seg[1, 2] == 3 and seg[0, 0] == 2
    json.dumps(info)  # plain Python numbers


def test_category_map_to_label_ids():
    _, info = panoptic_to_segments(small_panoptic(), void_label=VOID, category_map=TRAIN_ID_TO_LABEL_ID)
    assert [s["category_id"] for s in info] == [7, 23, 26, 26]
    with pytest.raises(UserInputError, match="13"):
        panoptic_to_segments(small_panoptic(), void_label=VOID, category_map={0: 7, 10: 23})


def test_png_round_trip_and_json(tmp_path):
    pan = small_panoptic()
    png = str(tmp_path / "pred" / "a.png")
    info = write_panoptic_prediction(png, pan, void_label=VOID)
    ids = read_panoptic_png(png)
    for s in info:
        assert (ids == s["id"]).sum() == s["area"]
        cls = pan[ids == s["id"]] // 1000
        assert set(cls.tolist()) == {s["category_id"]}
    assert (ids == 0).sum() == 1
    path = str(tmp_path / "pred.json")
    write_panoptic_json(path, [panoptic_annotation("a", "a.png", info)], categories=cityscapes_panoptic_categories())
    with open(path) as f:
        d = json.load(f)
    assert d["annotations"][0] == {"image_id": "a", "file_name": "a.png", "segments_info": info}
    assert {"id", "name", "color", "supercategory", "isthing"} <= set(d["categories"][0])


def test_cityscapes_categories_match_the_converter():
    cats = cityscapes_panoptic_categories(use_train_id=True)
    assert [c["id"] for c in cats] == list(range(19))
    assert [c["name"] for c in cats if c["isthing"]] == ["person", "rider", "car", "truck", "bus", "train",
                                                         "motorcycle", "bicycle"]
    assert [c["id"] for c in cityscapes_panoptic_categories(use_train_id=False) if c["isthing"]] == [
        24, 25, 26, 27, 28, 31, 32, 33]


def test_instances_from_panoptic():
    classes, index_map, labels = instances_from_panoptic(small_panoptic(), thing_ids=range(11, 19))
    assert classes.tolist() == [13, 13]
    assert labels.tolist() == [13001, 13002]
    assert (index_map == 1).sum() == 4 and (index_map == 2).sum() == 3 and (index_map == 0).sum() == 33


def test_cityscapes_instance_files_are_read_by_cityscapesscripts(tmp_path):
    pan = small_panoptic()
    classes, index_map, _ = instances_from_panoptic(pan, thing_ids=range(11, 19))
    txt = write_cityscapes_instances(str(tmp_path), "frankfurt_000000_000294", classes, index_map, [0.75, 0.5],
                                     class_to_label_id=TRAIN_ID_TO_LABEL_ID)
    assert os.path.basename(txt) == "frankfurt_000000_000294.txt"
    args = cs_inst.CArgs()
    args.predictionPath = os.path.abspath(str(tmp_path))
    info = cs_inst.readPredInfo(txt, args)
    assert sorted((v["labelID"], v["conf"]) for v in info.values()) == [(26, 0.5), (26, 0.75)]
    for f, v in info.items():
        mask = cv2.imread(f, cv2.IMREAD_UNCHANGED) > 0
        k = 1 if v["conf"] == 0.75 else 2
        np.testing.assert_array_equal(mask, index_map == k)
