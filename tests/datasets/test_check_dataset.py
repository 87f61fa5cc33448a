"""tools/check_dataset.py (`paddleseg_ext.datasets.convert.check`): a sound converted dataset passes with
per-class statistics and ground-truth pictures; each kind of broken file or entry gives its line."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from paddleseg_ext.cli import check_dataset as cli
from paddleseg_ext.cli import convert_panoptic
from paddleseg_ext.datasets.convert import check_split, split_paths
from paddleseg_ext.utils import write_panoptic_png
from tests.conftest import load_yaml, ROOT, run_main, write_config
from tests.datasets.conftest import make_coco
from tests.datasets.test_convert_panoptic import hand_built_frame, si_inputs


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A custom-layout dataset: train (3 images) and val (1 image) from the hand-built frames."""
    tmp = tmp_path_factory.mktemp("check")
    root = tmp / "ds"
    for split, stems in (("train", ("a", "b", "c")), ("val", ("v",))):
        args = si_inputs(tmp, {s: hand_built_frame() for s in stems}, name=split)
        assert convert_panoptic.main([str(a) for a in args] + ["--out", str(root), "--split", split]) == 0
    return str(root)


def problems_of(capfd, root, *extra):
    rc, out, err = run_main(capfd, cli.main, ["--dataset_root", root] + list(extra))
    assert "Traceback" not in err, err
    return rc, out, [ln for ln in out.splitlines() if ln.startswith("problem: ")]


def test_sound_dataset_statistics_and_pictures(converted, capfd, tmp_path):
    pics = tmp_path / "pics"
    rc, out, problems = problems_of(capfd, converted, "--num_pictures", "2", "--save_dir", pics)
    assert rc == 0 and not problems, out
    assert "dataset OK: train (3 images), val (1 images)" in out
    train_table = out[out.index("train: 3 images"):out.index("val: 1 images")]
    rows = {ln.split()[0]: ln.split() for ln in train_table.splitlines() if ln.split()[:1] in (["10000"], ["205"])}
    sem, inst = hand_built_frame()
    person = (sem == 10000)
    areas = sorted([(person & (inst == i)).sum() for i in (5, 9)])
    # person: 3 images, 2 segments each, pixel share, instance area percentiles p5/p50/p95 (lower rank)
    assert rows["10000"][2:6] == ["thing", "3", "6", "{:.2f}".format(100.0 * person.sum() / sem.size)]
    assert rows["10000"][6] == "{}/{}/{}".format(areas[0], areas[0], areas[1])
    assert rows["205"][6] == "-"
    written = sorted(os.listdir(str(pics / "train")))
    assert written == ["a_gt.png", "b_gt.png"] and os.listdir(str(pics / "val")) == ["v_gt.png"]
    panel = cv2.imread(str(pics / "train" / "a_gt.png"))
    assert panel.shape == (24, 4 * 40 + 3 * 4, 3)  # image | semantic | instance | panoptic


def _edit_json(root, edit):
    path = os.path.join(root, "annotations", "panoptic_train.json")
    with open(path) as f:
        gt = json.load(f)
    edit(gt)
    with open(path, "w") as f:
        json.dump(gt, f)


def _segments(gt, image="b"):
    return next(a for a in gt["annotations"] if a["image_id"] == image)["segments_info"]


def _break(root, case):
    if case == "missing image":
        os.remove(os.path.join(root, "images", "train", "b.jpg"))
        return "b.jpg: image file not found"
    if case == "missing PNG":
        os.remove(os.path.join(root, "annotations", "panoptic_train", "b.png"))
        return "b.png: panoptic PNG not found"
    if case == "size":
        png = os.path.join(root, "annotations", "panoptic_train", "b.png")
        write_panoptic_png(png, np.ones((24, 41), np.int32))
        return "(image 'b'): sizes differ (h x w): image 24x40, PNG 24x41, json 24x40"
    if case == "not listed":
        _edit_json(root, lambda gt: _segments(gt).pop(0))
        return "(image 'b'): PNG segment id(s) 1 not in segments_info"
    if case == "absent":
        _edit_json(root, lambda gt: _segments(gt).append(dict(_segments(gt)[0], id=999)))
        return "(image 'b'): segments_info id(s) 999 do not occur in the PNG"
    if case == "category":
        _edit_json(root, lambda gt: _segments(gt)[1].update(category_id=12345))
        return "(image 'b'): unknown category_id(s) 12345"
    if case == "area":
        _edit_json(root, lambda gt: _segments(gt)[2].update(area=_segments(gt)[2]["area"] + 1))
        return "(image 'b'): area of segment 3 is"
    if case == "no annotation":
        _edit_json(root, lambda gt: gt["annotations"].pop(1))
        return "image 'b' has no annotation"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing image", "missing PNG", "size", "not listed", "absent", "category", "area",
                                  "no annotation"])
def test_each_problem_is_found(converted, capfd, tmp_path, case):
    root = str(tmp_path / "ds")
    shutil.copytree(converted, root)
    expected = _break(root, case)
    rc, out, problems = problems_of(capfd, root, "--split", "train")
    assert rc == 1
    assert len(problems) == 1 and expected in problems[0], out


def test_many_problems_are_capped_and_config_is_read(converted, capfd, tmp_path):
    root = str(tmp_path / "ds")
    shutil.copytree(converted, root)
    def edit(gt):  # 3 images with wrong areas, 25 annotations of unlisted images
        for a in gt["annotations"]:
            a["segments_info"][0]["area"] = 0
        gt["annotations"] += [{"image_id": "x{}".format(i), "file_name": "x.png", "segments_info": []}
                              for i in range(25)]
    _edit_json(root, edit)
    cfg = load_yaml(os.path.join(ROOT, "configs", "panoptic_deeplab", "panoptic_deeplab_demo_cpu.yml"))
    for key, mode in (("train_dataset", "train"), ("val_dataset", "val")):
        cfg[key] = {"type": "CustomPanoptic", "dataset_root": root, "mode": mode, "transforms": []}
    path = write_config(cfg, tmp_path / "custom.yml")
    rc, out, err = run_main(capfd, cli.main, ["--config", path])
    problems = [ln for ln in out.splitlines() if ln.startswith("problem: ")]
    assert rc == 1 and len(problems) == cli.MAX_PROBLEM_LINES
    assert "... and 8 more problems" in out and "28 problem(s) found" in out
    assert "val: 1 images" in out  # the config's val dataset is checked too


def test_coco_layout(tmp_path):
    """CocoPanoptic's layout (val2017/, annotations/panoptic_val2017.json + folder), large COCO segment ids."""
    root = make_coco(str(tmp_path / "coco"), "val", n=2)
    result = check_split(*split_paths(root, "val", layout="coco"), name="val")
    assert not result["problems"] and result["images"] == 2
    person = [c["id"] for c in result["categories"]].index(1)
    assert result["class_segments"][person] == 2 and result["class_pixels"][person] == 2 * 36


def test_truncated_image_is_a_problem(converted, capfd, tmp_path):
    root = str(tmp_path / "ds")
    shutil.copytree(converted, root)
    path = os.path.join(root, "images", "train", "c.jpg")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    rc, out, problems = problems_of(capfd, root, "--split", "train")
    assert rc == 1 and len(problems) == 1 and problems[0].endswith("c.jpg") and "truncated JPEG" in problems[0]
