"""prepare_coco (`datasets.coco_prepare`, tools/prepare_coco.py): the train-id category table and the
checks of a COCO panoptic tree."""
import json
import os

import pytest

from paddleseg_ext.cli import prepare_coco as prepare_coco_cli
from paddleseg_ext.cli.common import run_cli
from paddleseg_ext.datasets.coco_prepare import CATEGORY_TABLE, prepare_coco
from paddleseg_ext.utils import UserInputError
from tests.datasets.conftest import make_coco


def test_prepare_coco(tmp_path):
    root = make_coco(str(tmp_path / "coco"), split="val")
    summary = prepare_coco(root, splits=["val"], verbose=False)
    assert summary["val"] == {"images": 2, "segments": 10, "crowd_segments": 2}
    with open(os.path.join(root, "annotations", CATEGORY_TABLE)) as f:
        table = json.load(f)
    assert len(table) == 133 and table[100]["category_id"] == 149 and table[100]["name"] == "road"
    assert run_cli(prepare_coco_cli.main, ["--root", root, "--splits", "train"]) == 2
    os.remove(os.path.join(root, "val2017", "000000000101.jpg"))
    with pytest.raises(UserInputError, match="000000000101.jpg"):
        prepare_coco(root, splits=["val"], verbose=False)
