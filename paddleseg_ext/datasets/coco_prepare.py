"""Check a COCO panoptic tree and write the contiguous-id category table the dataset uses."""
import json
import os

from ..utils import UserInputError, log
from . import coco_meta as meta

CATEGORY_TABLE = "panoptic_coco_categories_trainId.json"


def prepare_coco(root, splits=("train", "val"), verbose=True):
    """Check ``annotations/panoptic_<split>2017.json``, its PNG folder and ``<split>2017/`` images.

    Writes ``annotations/panoptic_coco_categories_trainId.json`` (train id -> COCO category id,
    name, isthing, colour). Raises UserInputError naming the first missing file or unknown category.
    Returns dict split -> {'images': int, 'segments': int, 'crowd_segments': int}.
    """
    ann_dir = os.path.join(root, "annotations")
    if not os.path.isdir(ann_dir):
        raise UserInputError("COCO annotations folder not found: {}".format(ann_dir))
    summary = {}
    for split in splits:
        json_path = os.path.join(ann_dir, "panoptic_{}2017.json".format(split))
        png_dir = os.path.join(ann_dir, "panoptic_{}2017".format(split))
        img_dir = os.path.join(root, "{}2017".format(split))
        for path, isdir in ((json_path, False), (png_dir, True), (img_dir, True)):
            if not (os.path.isdir(path) if isdir else os.path.isfile(path)):
                raise UserInputError("COCO panoptic {} split: not found: {}".format(split, path))
        with open(json_path) as f:
            gt = json.load(f)
        known = set(meta.CATEGORY_ID_TO_TRAIN_ID)
        unknown = sorted({c["id"] for c in gt.get("categories", [])} - known)
        if unknown:
            raise UserInputError("{}: categories {} are not COCO panoptic categories".format(json_path, unknown))
        images = {im["id"]: im["file_name"] for im in gt["images"]}
        n_seg = n_crowd = 0
        for ann in gt["annotations"]:
            for path in (os.path.join(png_dir, ann["file_name"]), os.path.join(img_dir, images.get(ann["image_id"], "?"))):
                if not os.path.isfile(path):
                    raise UserInputError("{}: file of image {!r} not found: {}".format(json_path, ann["image_id"], path))
            for s in ann["segments_info"]:
                if s["category_id"] not in known:
                    raise UserInputError("{}: image {!r} has unknown category_id {}".format(
                        json_path, ann["image_id"], s["category_id"]))
                n_seg += 1
                n_crowd += int(s.get("iscrowd", 0))
        summary[split] = {"images": len(gt["annotations"]), "segments": n_seg, "crowd_segments": n_crowd}
        if verbose:
            log.info("{}: {} images, {} segments ({} crowd) OK".format(split, *summary[split].values()))
    table = [{"train_id": i, "category_id": cid, "name": name, "isthing": int(thing), "color": list(color)}
             for i, (cid, thing, name, color) in enumerate(meta.COCO_PANOPTIC_CATEGORIES)]
    out = os.path.join(ann_dir, CATEGORY_TABLE)
    with open(out, "w") as f:
        json.dump(table, f, indent=1)
    if verbose:
        log.info("wrote {}".format(out))
    return summary
