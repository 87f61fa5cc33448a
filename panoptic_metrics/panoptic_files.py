"""Panoptic quality of prediction files against ground-truth files (COCO/Cityscapes panoptic format).

The same inputs, checks and result dict as cityscapesscripts' `evaluatePanoptic`; images are read
and scored by a thread pool (PNG decoding and the large numpy operations release the GIL).
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from .errors import UserInputError
from .files import load_json
from .panoptic_io import rgb2id
from .panoptic_io import imread_checked
from .panoptic_quality import PanopticEvaluator, format_pq_table


def read_segment_ids(path):
    """Read a panoptic PNG as [H, W] uint32 segment ids (R + 256 G + 256^2 B).

    Same result as `paddleseg_ext.utils.read_panoptic_png`, faster for 8-bit RGB(A) PNGs:
    the 4-byte RGBA pixels are reinterpreted as little-endian uint32 instead of combining
    three int32 planes.
    """
    img = imread_checked(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        return img.astype(np.uint32)
    if img.dtype == np.uint8 and sys.byteorder == "little":
        bgr = img if img.shape[2] == 3 else np.ascontiguousarray(img[..., :3])
        rgba = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA)
        return rgba.view(np.uint32)[..., 0] & np.uint32(0xFFFFFF)
    return rgb2id(img[..., 2::-1]).astype(np.uint32)



def _require(d, key, path):
    if not isinstance(d, dict) or key not in d:
        raise UserInputError("{}: missing key '{}'".format(path, key))
    return d[key]


def match_annotations(gt_json, pred_json, gt_json_file="ground truth json", pred_json_file="prediction json"):
    """Pair every GT annotation with the prediction of the same ``image_id``: list of (gt, pred)."""
    gt_anns = _require(gt_json, "annotations", gt_json_file)
    pred_anns = _require(pred_json, "annotations", pred_json_file)
    by_id = {}
    for ann in pred_anns:
        by_id[_require(ann, "image_id", pred_json_file + " annotation")] = ann
    pairs = []
    for ann in gt_anns:
        image_id = _require(ann, "image_id", gt_json_file + " annotation")
        if image_id not in by_id:
            raise UserInputError("{}: no prediction for the image with id: {}".format(pred_json_file, image_id))
        for obj, f in ((ann, gt_json_file), (by_id[image_id], pred_json_file)):
            _require(obj, "file_name", f + " annotation of " + str(image_id))
            _require(obj, "segments_info", f + " annotation of " + str(image_id))
        pairs.append((ann, by_id[image_id]))
    return pairs


def default_num_workers():
    """Threads used for file evaluation: the CPUs this process may run on (at most 8)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def evaluate_panoptic_files(gt_json_file, gt_folder, pred_json_file, pred_folder, results_file=None,
                            num_workers=None, verbose=True):
    """PQ/SQ/RQ of predictions against ground truth, both in COCO panoptic format.

    Same inputs and result dict as cityscapesscripts' `evaluatePanoptic`:
    ``{'All'|'Things'|'Stuff': {'pq','sq','rq','n'}, 'per_class': {category_id: {'pq','sq','rq'}}}``.
    Categories come from the GT json. Writes ``results_file`` (json, sorted keys) when given and
    prints the official table when ``verbose``.
    """
    start = time.time()
    gt_json = load_json(gt_json_file, "ground truth json file")
    pred_json = load_json(pred_json_file, "prediction json file")
    for folder, what in ((gt_folder, "ground truth"), (pred_folder, "prediction")):
        if not os.path.isdir(folder):
            raise UserInputError("folder {} with {} segmentations doesn't exist".format(folder, what))
    categories = _require(gt_json, "categories", gt_json_file)
    pairs = match_annotations(gt_json, pred_json, gt_json_file, pred_json_file)
    evaluator = PanopticEvaluator(categories)

    def score_pair(pair):
        gt_ann, pred_ann = pair
        part = PanopticEvaluator(categories)
        gt_ids = read_segment_ids(os.path.join(gt_folder, gt_ann["file_name"]))
        pred_ids = read_segment_ids(os.path.join(pred_folder, pred_ann["file_name"]))
        part.update_segments(pred_ids, pred_ann["segments_info"], gt_ids, gt_ann["segments_info"],
                             gt_area_from_json=True, image_id=gt_ann["image_id"])
        return part.state()

    workers = default_num_workers() if num_workers is None else max(1, int(num_workers))
    if workers == 1 or len(pairs) <= 1:
        states = map(score_pair, pairs)
        for s in states:
            evaluator.merge(s)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for s in pool.map(score_pair, pairs):
                evaluator.merge(s)

    results = evaluator.evaluate()
    if results_file:
        d = os.path.dirname(results_file)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(results_file, "w") as f:
            json.dump(results, f, sort_keys=True, indent=4)
    if verbose:
        print("Evaluated {} images with {} thread(s)".format(len(pairs), workers))
        if results_file:
            print("Saving computed results in {}".format(results_file))
        print(format_pq_table(results, categories))
        print("Time elapsed: {:0.2f} seconds".format(time.time() - start))
    return results
