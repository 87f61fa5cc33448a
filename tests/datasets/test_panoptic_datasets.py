"""CityscapesPanoptic and CocoPanoptic (`datasets`) on generated data, and their errors on bad input."""
import json
import os
import shutil

import cv2
import numpy as np
import paddle
import pytest
from paddleseg.cvlibs import manager

from paddleseg_ext.datasets import CityscapesPanoptic, CocoPanoptic, coco_meta
from paddleseg_ext.utils import UserInputError, read_panoptic_png, write_panoptic_png
from tests.datasets.conftest import COCO_IDS, make_coco

SAMPLE_KEYS = {"img", "semantic", "center", "offset", "semantic_weights", "center_weights", "offset_weights",
               "panoptic", "idx"}
TRAIN_TRANSFORMS = [
    {"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 2.0, "scale_step_size": 0.1},
    {"type": "PanopticRandomPaddingCrop", "crop_size": [129, 65]},
    {"type": "RandomHorizontalFlip"},
    {"type": "RandomDistort", "brightness_range": 0.4, "contrast_range": 0.4, "saturation_range": 0.4},
    {"type": "Normalize", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
]


def test_registered_with_constants():
    for name, cls, n in (("CityscapesPanoptic", CityscapesPanoptic, 19), ("CocoPanoptic", CocoPanoptic, 133)):
        assert manager.DATASETS[name] is cls
        assert cls.NUM_CLASSES == n and cls.IMG_CHANNELS == 3 and cls.IGNORE_INDEX == 255
        assert issubclass(cls, paddle.io.Dataset)


def check_sample(s, h, w, thing_ids=range(11, 19)):
    assert set(s) == SAMPLE_KEYS
    assert s["img"].dtype == np.float32 and s["img"].shape == (3, h, w)
    assert s["semantic"].dtype == np.int64 and s["semantic"].shape == (h, w)
    assert s["panoptic"].dtype == np.int64 and s["panoptic"].shape == (h, w)
    assert s["center"].shape == (1, h, w) and s["offset"].shape == (2, h, w)
    # targets are computed from the augmented label: they agree with each other everywhere
    valid = s["semantic"] != 255
    np.testing.assert_array_equal(s["panoptic"][valid] // 1000, s["semantic"][valid])
    assert (s["offset_weights"][~np.isin(s["semantic"], list(thing_ids))] == 0).all()


def test_cityscapes_val_matches_label_train_ids(demo_root):
    ds = CityscapesPanoptic(demo_root, [{"type": "PanopticPadding", "target_size": [257, 129]},
                                        {"type": "Normalize"}], mode="val")
    assert len(ds) == 4 and ds.num_classes == 19 and ds.thing_ids == list(range(11, 19))
    assert ds.class_names[0] == "road" and ds.palette[0] == [128, 64, 128]
    assert ds.json_file.endswith("cityscapes_panoptic_val_trainId.json") and os.path.isfile(ds.json_file)
    assert os.path.isdir(ds.label_dir) and os.path.isfile(ds.official_json_file)
    r = ds.records[0]
    assert set(r) >= {"image_path", "label_path", "image_id", "segments_info", "height", "width"}
    assert (r["height"], r["width"]) == (128, 256) and r["image_path"].endswith(r["image_id"] + "_leftImg8bit.png")
    s = ds[0]
    check_sample(s, 129, 257)
    assert s["idx"] == 0
    # unpadded area: semantic equals cityscapesscripts' train ids (crowd keeps its class, void 255)
    city = r["image_id"].split("_")[0]
    train_ids = cv2.imread(os.path.join(demo_root, "gtFine", "val", city, r["image_id"] + "_gtFine_labelTrainIds.png"), -1)
    np.testing.assert_array_equal(s["semantic"][:128, :256], train_ids)
    assert (s["semantic"][128] == 255).all() and (s["center_weights"][:, 256] == 0).all()
    assert (s["img"][:, 128] == 0).all()  # 127.5 padding normalises to 0
    assert 13 in s["semantic"] and 11 in s["semantic"] and s["center"].max() == pytest.approx(1.0)


def test_cityscapes_train_with_augmentation(demo_root):
    np.random.seed(0)
    ds = CityscapesPanoptic(demo_root, TRAIN_TRANSFORMS, mode="train", sigma=4)
    assert len(ds) == 8
    for i in (0, 5):
        check_sample(ds[i], 65, 129)
    loader = paddle.io.DataLoader(ds, batch_size=2, shuffle=False)
    batch = next(iter(loader))
    assert list(batch["img"].shape) == [2, 3, 65, 129] and list(batch["offset"].shape) == [2, 2, 65, 129]


def test_transform_objects_accepted(demo_root):
    t = manager.TRANSFORMS["PanopticRandomPaddingCrop"](crop_size=[33, 17])
    ds = CityscapesPanoptic(demo_root, [t, manager.TRANSFORMS["Normalize"]()], mode="val")
    check_sample(ds[1], 17, 33)


def test_cityscapes_errors(demo_copy, tmp_path):
    with pytest.raises(UserInputError, match="dataset_root"):
        CityscapesPanoptic(str(tmp_path / "missing"), [], mode="train")
    with pytest.raises(UserInputError, match="mode"):
        CityscapesPanoptic(demo_copy, [], mode="trian")
    with pytest.raises(UserInputError, match="unknown transform type"):
        CityscapesPanoptic(demo_copy, [{"type": "NoSuchTransform"}], mode="val")
    gt = os.path.join(demo_copy, "gtFine")
    # image without a label
    img_dir = os.path.join(demo_copy, "leftImg8bit", "val", "mockdorf")
    shutil.copy(os.path.join(img_dir, "mockdorf_000000_000019_leftImg8bit.png"),
                os.path.join(img_dir, "mockdorf_000077_000019_leftImg8bit.png"))
    with pytest.raises(UserInputError, match="mockdorf_000077_000019"):
        CityscapesPanoptic(demo_copy, [], mode="val")
    # label without an image
    for seq in ("000000", "000077"):
        os.remove(os.path.join(img_dir, "mockdorf_{}_000019_leftImg8bit.png".format(seq)))
    with pytest.raises(UserInputError, match="have no image.*mockdorf_000000_000019"):
        CityscapesPanoptic(demo_copy, [], mode="val")
    # missing json
    os.remove(os.path.join(gt, "cityscapes_panoptic_train_trainId.json"))
    with pytest.raises(UserInputError, match="cityscapes_panoptic_train_trainId.json"):
        CityscapesPanoptic(demo_copy, [], mode="train")


def test_cityscapes_corrupt_files_and_unknown_ids(demo_copy):
    ds = CityscapesPanoptic(demo_copy, [], mode="val")
    with open(ds.records[0]["image_path"], "wb") as f:
        f.write(b"\x89PNG not really")
    with pytest.raises(UserInputError, match=ds.records[0]["image_path"]):
        ds[0]
    with open(ds.records[1]["label_path"], "wb") as f:
        f.write(b"")
    with pytest.raises(UserInputError, match=ds.records[1]["label_path"]):
        ds[1]
    label = read_panoptic_png(ds.records[2]["label_path"])
    label[0, :3] = 4242
    label[1, :3] = 77
    write_panoptic_png(ds.records[2]["label_path"], label)
    with pytest.raises(UserInputError, match=r"\[77, 4242\]"):
        ds[2]
    os.remove(ds.records[3]["label_path"])
    with pytest.raises(UserInputError, match="not found"):
        CityscapesPanoptic(demo_copy, [], mode="val")


def test_coco_meta():
    assert len(coco_meta.CLASS_NAMES) == 133 and coco_meta.THING_IDS == list(range(80))
    for cid, tid in COCO_IDS.items():
        assert coco_meta.CATEGORY_ID_TO_TRAIN_ID[cid] == tid
    assert coco_meta.CLASS_NAMES[100] == "road" and coco_meta.CLASS_NAMES[0] == "person"


def test_coco_dataset(tmp_path):
    root = make_coco(str(tmp_path / "coco"))
    ds = CocoPanoptic(root, [{"type": "Normalize"}], mode="val", small_instance_area=50)
    assert len(ds) == 2 and ds.num_classes == 133 and len(ds.palette) == 133
    r = ds.records[1]
    assert r["image_id"] == 101 and (r["height"], r["width"]) == (24, 32)
    assert [s["category_id"] for s in r["segments_info"]] == [100, 132, 0, 2, 2]
    assert ds.json_file.endswith("panoptic_val2017.json") and ds.label_dir.endswith("panoptic_val2017")
    s = ds[1]
    check_sample(s, 24, 32, thing_ids=range(80))
    sem, pan = s["semantic"], s["panoptic"]
    assert sem[20, 0] == 100 and sem[0, 0] == 132 and sem[8, 5] == 0 and sem[15, 15] == 2 and sem[5, 25] == 2
    assert sem[5, 0] == 255  # void
    assert pan[8, 5] == 1 and pan[15, 15] == 2001 and pan[5, 25] == 2002 and pan[20, 0] == 100000
    assert s["center_weights"][5, 25] == 0 and s["offset_weights"][15, 15] == 1
    # person: 36 px < 50 -> weight 3; car: 70 px -> 1; person centre (8.5, 5.5) -> offset at (6,3) = (2.5, 2.5)
    assert s["semantic_weights"][8, 5] == 3 and s["semantic_weights"][15, 15] == 1
    np.testing.assert_allclose(s["offset"][:, 6, 3], [2.5, 2.5])


def test_coco_errors(tmp_path):
    root = make_coco(str(tmp_path / "coco"))
    with pytest.raises(UserInputError, match="panoptic_train2017.json|train2017"):
        CocoPanoptic(root, [], mode="train")
    with pytest.raises(UserInputError, match="nope.json"):
        CocoPanoptic(root, [], mode="val", json_file=os.path.join(root, "nope.json"))
    path = os.path.join(root, "annotations", "panoptic_val2017.json")
    gt = json.load(open(path))
    gt["annotations"][0]["segments_info"][0]["category_id"] = 91
    json.dump(gt, open(path, "w"))
    with pytest.raises(UserInputError, match="category_id 91"):
        CocoPanoptic(root, [], mode="val")
    gt["annotations"] = gt["annotations"][1:]
    json.dump(gt, open(path, "w"))
    with pytest.raises(UserInputError, match="no panoptic annotation"):
        CocoPanoptic(root, [], mode="val")
