"""Convert a Cityscapes tree in place: *_labelTrainIds.png and panoptic json/PNGs.

Runs cityscapesscripts' `createPanopticImgs` converter twice per split: with train ids (what
`CityscapesPanoptic` reads) and with label ids (what cityscapesscripts' evaluator reads).
Idempotent: outputs that already exist are skipped unless `force`.
"""
import contextlib
import glob
import io
import json
import os
import shutil

import cv2
import numpy as np

from ..utils import UserInputError, log
from .cityscapes_meta import LABEL_ID_TO_TRAIN_ID_LUT

LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"
INSTANCE_IDS_SUFFIX = "_gtFine_instanceIds.png"


def panoptic_outputs(gt_root, split, use_train_id):
    """(json path, PNG folder) that createPanopticImgs writes for a split."""
    base = "cityscapes_panoptic_{}{}".format(split, "_trainId" if use_train_id else "")
    return os.path.join(gt_root, base + ".json"), os.path.join(gt_root, base)


def _panoptic_complete(json_path, folder, num_sources):
    """True when the json lists `num_sources` annotations whose PNGs all exist."""
    if not (os.path.isfile(json_path) and os.path.isdir(folder)):
        return False
    try:
        with open(json_path) as f:
            anns = json.load(f).get("annotations", [])
    except ValueError:
        return False
    return len(anns) == num_sources and all(os.path.isfile(os.path.join(folder, a["file_name"])) for a in anns)


def make_train_id_images(gt_root, split, force=False):
    """Write *_labelTrainIds.png next to every *_labelIds.png of a split; returns how many were written.

    Uses cityscapesscripts' label table (label id -> train id) instead of redrawing the polygons,
    so it also works on trees shipped without *_polygons.json.
    """
    written = 0
    for src in sorted(glob.glob(os.path.join(gt_root, split, "*", "*" + LABEL_IDS_SUFFIX))):
        dst = src[:-len(LABEL_IDS_SUFFIX)] + TRAIN_IDS_SUFFIX
        if os.path.isfile(dst) and not force:
            continue
        label_ids = cv2.imread(src, cv2.IMREAD_UNCHANGED)
        if label_ids is None or label_ids.ndim != 2:
            raise UserInputError("cannot read a single-channel label id image: {}".format(src))
        if not cv2.imwrite(dst, LABEL_ID_TO_TRAIN_ID_LUT[label_ids.astype(np.int64).clip(0, 255)]):
            raise UserInputError("cannot write {}".format(dst))
        written += 1
    return written


def prepare_cityscapes(root, force=False, splits=None, verbose=True):
    """Run the Cityscapes converters in place under `root` (which holds gtFine/ and leftImg8bit/).

    Args:
        root (str): Cityscapes root.
        force (bool): redo outputs that exist.
        splits (list[str], optional): splits to convert; default every gtFine/<split> that has
            *_instanceIds.png among train, val, test.
        verbose (bool): print what is done (cityscapesscripts' progress output is hidden otherwise).
    Returns:
        dict split -> {'train_id_pngs': int, 'panoptic_trainId': 'written'|'skipped',
        'panoptic': 'written'|'skipped'}.
    """
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    gt_root = os.path.join(root, "gtFine")
    if not os.path.isdir(gt_root):
        raise UserInputError("Cityscapes gtFine folder not found: {}".format(gt_root))
    if splits is None:
        splits = [s for s in ("train", "val", "test")
                  if glob.glob(os.path.join(gt_root, s, "*", "*" + INSTANCE_IDS_SUFFIX))]
        if not splits:
            raise UserInputError("no gtFine/<split>/<city>/*{} files under {}".format(INSTANCE_IDS_SUFFIX, gt_root))
    summary = {}
    for split in splits:
        sources = glob.glob(os.path.join(gt_root, split, "*", "*" + INSTANCE_IDS_SUFFIX))
        if not sources:
            raise UserInputError("no *{} files under {}".format(INSTANCE_IDS_SUFFIX, os.path.join(gt_root, split)))
        info = {"train_id_pngs": make_train_id_images(gt_root, split, force)}
        for use_train_id in (True, False):
            key = "panoptic_trainId" if use_train_id else "panoptic"
            json_path, folder = panoptic_outputs(gt_root, split, use_train_id)
            if not force and _panoptic_complete(json_path, folder, len(sources)):
                info[key] = "skipped"
                continue
            if os.path.isdir(folder):
                shutil.rmtree(folder)  # no stale PNGs from an earlier run
            # cityscapesscripts prints a line per image
            with contextlib.redirect_stdout(io.StringIO()):
                convert2panoptic(gt_root, gt_root, use_train_id, [split])
            info[key] = "written"
        summary[split] = info
        if verbose:
            log.info("{}: {} labelTrainIds PNGs written; {} -> {}; {} -> {}".format(
                split, info["train_id_pngs"], panoptic_outputs(gt_root, split, True)[0], info["panoptic_trainId"],
                panoptic_outputs(gt_root, split, False)[0], info["panoptic"]))
    return summary
