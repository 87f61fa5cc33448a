"""The generated demo dataset (`datasets.demo_dataset`, tools/make_demo_dataset.py): its content, and the
same arguments give the same bytes."""
import filecmp
import os

import cv2
import numpy as np
import pytest

from paddleseg_ext.cli import make_demo_dataset as make_demo_dataset_cli
from paddleseg_ext.datasets.demo_dataset import make_demo_dataset
from paddleseg_ext.utils import UserInputError


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
    assert make_demo_dataset_cli.main(["--out", b, "--seed", "3", "--num-train", "2", "--num-val", "1", "--height",
                                       "48", "--width", "96"]) == 0
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
