"""Shared data of the dataset tests: a private copy of the demo dataset, a tiny COCO panoptic tree."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from paddleseg_ext.datasets import coco_meta
from paddleseg_ext.utils import write_panoptic_png


@pytest.fixture
def demo_copy(demo_root, tmp_path):
    """A copy of the demo dataset that the test may modify."""
    root = str(tmp_path / "cs")
    shutil.copytree(demo_root, root)
    return root


# COCO category ids used below and their contiguous train ids (sorted-id position):
# person 1 -> 0, car 3 -> 2, road 149 -> 100 (21st stuff id), rug-merged 200 -> 132.
COCO_IDS = {1: 0, 3: 2, 149: 100, 200: 132}


def make_coco(root, split="val", n=2, h=24, w=32):
    """A tiny COCO panoptic tree: road at the bottom, a rug on top, a person, a car and a car crowd."""
    ann_dir = os.path.join(root, "annotations")
    png_dir = os.path.join(ann_dir, "panoptic_{}2017".format(split))
    img_dir = os.path.join(root, "{}2017".format(split))
    os.makedirs(png_dir, exist_ok=True)
    os.makedirs(img_dir, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        image_id = 100 + i
        ids = np.zeros((h, w), np.int64)
        ids[h // 2:] = 5_000_000  # road (a large RGB-encoded id, as COCO has)
        ids[:4] = 42  # rug
        ids[6:12, 3:9] = 1234 + i  # person
        ids[13:20, 12:22] = 777  # car
        ids[4:8, 24:30] = 99  # car crowd
        segs = [{"id": 5_000_000, "category_id": 149, "iscrowd": 0}, {"id": 42, "category_id": 200, "iscrowd": 0},
                {"id": 1234 + i, "category_id": 1, "iscrowd": 0}, {"id": 777, "category_id": 3, "iscrowd": 0},
                {"id": 99, "category_id": 3, "iscrowd": 1}]
        stem = "{:012d}".format(image_id)
        write_panoptic_png(os.path.join(png_dir, stem + ".png"), ids)
        img = np.random.default_rng(i).integers(0, 255, (h, w, 3)).astype(np.uint8)
        cv2.imwrite(os.path.join(img_dir, stem + ".jpg"), img)
        images.append({"id": image_id, "file_name": stem + ".jpg", "height": h, "width": w})
        anns.append({"image_id": image_id, "file_name": stem + ".png", "segments_info": segs})
    cats = [{"id": c, "name": n, "isthing": t} for c, t, n, _ in coco_meta.COCO_PANOPTIC_CATEGORIES]
    with open(os.path.join(ann_dir, "panoptic_{}2017.json".format(split)), "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return root
