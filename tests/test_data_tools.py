"""The data tools: prepare_cityscapes (idempotent), make_demo_dataset (deterministic), prepare_coco,
and the targets benchmark."""
import filecmp
import importlib.util
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from paddleseg_ext.cli.common import run_cli

from paddleseg_ext.datasets.cityscapes_prepare import prepare_cityscapes
from paddleseg_ext.datasets.coco_prepare import CATEGORY_TABLE, prepare_coco
from paddleseg_ext.datasets.demo_dataset import make_demo_dataset
from paddleseg_ext.utils import UserInputError, read_panoptic_png

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool(rel_path):
    spec = importlib.util.spec_from_file_location(os.path.basename(rel_path)[:-3], os.path.join(REPO, rel_path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def mtimes(root):
    out = {}
    for d, _, files in os.walk(os.path.join(root, "gtFine")):
        for f in files:
            out[os.path.join(d, f)] = os.stat(os.path.join(d, f)).st_mtime_ns
    return out


@pytest.mark.parametrize("tool", ["tools/prepare_cityscapes.py", "tools/prepare_coco.py",
                                  "tools/make_demo_dataset.py"])
def test_help(tool, capsys):
    with pytest.raises(SystemExit) as e:
        load_tool(tool).main(["--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


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
    assert load_tool("tools/prepare_cityscapes.py").main(["--root", root, "--force"]) == 0
    assert prepare_cityscapes(root, verbose=False)["train"]["panoptic_trainId"] == "skipped"
    assert run_cli(load_tool("tools/prepare_cityscapes.py").main, ["--root", str(tmp_path / "nothing")]) == 2


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


def test_demo_dataset_content(demo_root):
    inst = cv2.imread(os.path.join(demo_root, "gtFine", "train", "synthtown", "synthtown_000000_000019_gtFine_instanceIds.png"), -1)
    img = cv2.imread(os.path.join(demo_root, "leftImg8bit", "train", "synthtown", "synthtown_000000_000019_leftImg8bit.png"))
    assert inst.shape == (128, 256) and img.shape == (128, 256, 3)
    ids, areas = np.unique(inst, return_counts=True)
    things = ids[ids >= 1000]
    assert {t // 1000 for t in things} == {24, 26, 27} and len(things) >= 6
    assert 26 in ids  # the crowd
    assert areas[ids >= 1000].min() < 100  # a small instance
    assert (inst[:, 0] // 1000 == 26).any() and (inst[:, -1] == 27000).any()  # cut by the image borders
    # two cars touch: horizontally adjacent pixels of different car instances
    left, right = inst[:, :-1], inst[:, 1:]
    assert ((left // 1000 == 26) & (right // 1000 == 26) & (left != right)).any()
    n_train = len(os.listdir(os.path.join(demo_root, "gtFine", "cityscapes_panoptic_train_trainId")))
    assert n_train == 8


def test_demo_dataset_deterministic(tmp_path):
    a, b, c = (str(tmp_path / n) for n in "abc")
    make_demo_dataset(a, seed=3, num_train=2, num_val=1, height=48, width=96)
    load_tool("tools/make_demo_dataset.py").main(["--out", b, "--seed", "3", "--num-train", "2", "--num-val", "1",
                                                  "--height", "48", "--width", "96"])
    cmp = filecmp.dircmp(a, b)

    def same(d):
        return not (d.diff_files or d.left_only or d.right_only or d.funny_files) and all(
            same(s) for s in d.subdirs.values())
    assert same(cmp)
    # every file byte-identical (dircmp's shallow compare looks at size and mtime only)
    for d, _, files in os.walk(a):
        for f in files:
            p = os.path.join(d, f)
            assert filecmp.cmp(p, p.replace(a, b, 1), shallow=False), p
    make_demo_dataset(c, seed=4, num_train=2, num_val=1, height=48, width=96)
    img = "leftImg8bit/train/synthtown/synthtown_000000_000019_leftImg8bit.png"
    assert not filecmp.cmp(os.path.join(a, img), os.path.join(c, img), shallow=False)
    # regenerating over an earlier demo replaces it; a foreign folder is refused
    make_demo_dataset(a, seed=3, num_train=1, num_val=1, height=48, width=96)
    assert len(os.listdir(os.path.join(a, "leftImg8bit", "train", "synthtown"))) == 1
    os.makedirs(str(tmp_path / "foreign"))
    open(str(tmp_path / "foreign" / "x.txt"), "w").close()
    with pytest.raises(UserInputError, match="not a demo dataset"):
        make_demo_dataset(str(tmp_path / "foreign"))


def test_prepare_coco(tmp_path):
    from test_datasets import make_coco
    root = make_coco(str(tmp_path / "coco"), split="val")
    summary = prepare_coco(root, splits=["val"], verbose=False)
    assert summary["val"] == {"images": 2, "segments": 10, "crowd_segments": 2}
    with open(os.path.join(root, "annotations", CATEGORY_TABLE)) as f:
        table = json.load(f)
    assert len(table) == 133 and table[100]["category_id"] == 149 and table[100]["name"] == "road"
    assert run_cli(load_tool("tools/prepare_coco.py").main, ["--root", root, "--splits", "train"]) == 2
    os.remove(os.path.join(root, "val2017", "000000000101.jpg"))
    with pytest.raises(UserInputError, match="000000000101.jpg"):
        prepare_coco(root, splits=["val"], verbose=False)


def test_targets_benchmark_runs(capsys):
    bench = load_tool("tools/benchmarks/targets.py")
    assert bench.main(["--height", "65", "--width", "129", "--instances", "6", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "outputs equal: True" in out and "PanopticTargetGenerator" in out
