"""Writing predictions in the official formats.

- COCO/Cityscapes panoptic: one PNG per image (RGB-encoded segment ids) plus a json
  ``{"annotations": [{"image_id", "file_name", "segments_info"}]}``, readable by
  cityscapesscripts' evalPanopticSemanticLabeling, panopticapi and `tools/eval_panoptic.py`.
- Cityscapes instance-level: ``<image_id>.txt`` with lines ``<mask png> <label id> <score>`` and
  one binary mask PNG per instance, as evalInstanceLevelSemanticLabeling reads them.
"""
import json
import os

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from .errors import UserInputError
from .distributed import all_gather_objects, rank
from .panoptic_io import DEFAULT_VOID_LABEL, write_panoptic_png


def cityscapes_panoptic_categories(use_train_id=True):
    """The ``categories`` list exactly as cityscapesscripts' createPanopticImgs writes it.

    Keys ``id`` (train id, or label id when ``use_train_id`` is False), ``name``, ``color``,
    ``supercategory``, ``isthing``; classes ignored in evaluation are left out.
    """
    return [{"id": int(l.trainId) if use_train_id else int(l.id), "name": l.name, "color": list(l.color),
             "supercategory": l.category, "isthing": 1 if l.hasInstances else 0}
            for l in _CS_LABELS if not l.ignoreInEval]


def _category_lut(category_map, max_class):
    """Class -> output category id lookup table, and which classes the map covers."""
    lut = np.arange(max_class + 1, dtype=np.int64)
    known = np.zeros(max_class + 1, dtype=bool)
    for k, v in dict(category_map).items():
        if 0 <= int(k) <= max_class:
            lut[int(k)] = int(v)
            known[int(k)] = True
    return lut, known


def segment_boxes(seg_ids, n):
    """COCO boxes of segments 1..n of an [H, W] int map (0 = none): (x0, y0, w, h), each int64 [n].

    A segment occurs in a row iff one of the row's runs of equal ids starts with it, so the row and
    column occupancy tables ([n+1, H], [n+1, W]) are bincounts over the run starts only (a few per row
    and column) instead of over every pixel. Boxes of segments absent from the map are meaningless.
    """
    seg_ids = np.asarray(seg_ids)
    h, w = seg_ids.shape
    flat = seg_ids.ravel()
    # run starts along rows (a new id, or the first column) and along columns (a new id, or the first row)
    row_starts = np.ones((h, w), bool)
    row_starts[:, 1:] = seg_ids[:, 1:] != seg_ids[:, :-1]
    col_starts = np.ones((h, w), bool)
    col_starts[1:] = seg_ids[1:] != seg_ids[:-1]
    at = np.flatnonzero(row_starts)
    rows_hit = np.bincount(flat[at].astype(np.int64) * h + at // w, minlength=(n + 1) * h).reshape(n + 1, h)[1:] > 0
    at = np.flatnonzero(col_starts)
    cols_hit = np.bincount(flat[at].astype(np.int64) * w + at % w, minlength=(n + 1) * w).reshape(n + 1, w)[1:] > 0
    y0 = rows_hit.argmax(1)
    y1 = h - 1 - rows_hit[:, ::-1].argmax(1)
    x0 = cols_hit.argmax(1)
    x1 = w - 1 - cols_hit[:, ::-1].argmax(1)
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


def panoptic_to_segments(panoptic, label_divisor=1000, void_label=DEFAULT_VOID_LABEL, category_map=None):
    """Split a panoptic map into segments, the COCO panoptic way.

    panoptic: [H, W] int ``class * label_divisor + instance`` with ``void_label`` on void.
    category_map: optional dict class -> category id written out (e.g. train id -> Cityscapes
    label id, `cityscapes_meta.TRAIN_ID_TO_LABEL_ID`); identity when None.
    Returns (segment_ids [H, W] int32, 0 on void and 1..N for the segments in increasing
    panoptic-label order; segments_info: list of ``{'id', 'category_id', 'iscrowd': 0, 'area',
    'bbox': [x, y, w, h]}``).
    """
    pan = np.asarray(panoptic.numpy() if hasattr(panoptic, "numpy") else panoptic)
    if pan.ndim != 2:
        raise UserInputError("panoptic map must be [H, W], got shape {}".format(pan.shape))
    h, w = pan.shape
    flat = pan.ravel().astype(np.int64)
    if flat.size and flat.min() < 0:
        raise UserInputError("panoptic labels must be >= 0, found {}".format(int(flat.min())))
    values, inverse = np.unique(flat, return_inverse=True)
    is_void = values == void_label
    # segment number per unique value: 0 for void, 1..N for the others in increasing order
    seg_of_value = np.cumsum(~is_void).astype(np.int32) * (~is_void)
    seg_ids = seg_of_value[inverse].reshape(h, w)
    values = values[~is_void]
    n = values.size
    if n == 0:
        return seg_ids, []
    area = np.bincount(seg_ids.ravel(), minlength=n + 1)[1:]
    x0, y0, bw, bh = segment_boxes(seg_ids, n)
    classes = values // label_divisor
    if category_map is None:
        cats = classes
    else:
        lut, known = _category_lut(category_map, int(classes.max()))
        if not known[classes].all():
            raise UserInputError("category_map has no entry for classes {}".format(
                sorted(set(classes[~known[classes]].tolist()))))
        cats = lut[classes]
    info = [{"id": i + 1, "category_id": c, "iscrowd": 0, "area": a, "bbox": [bx, by, bw, bh]}
            for i, (c, a, bx, by, bw, bh) in enumerate(zip(
                cats.tolist(), area.tolist(), x0.tolist(), y0.tolist(), bw.tolist(), bh.tolist()))]
    return seg_ids, info


def write_panoptic_prediction(png_path, panoptic, label_divisor=1000, void_label=DEFAULT_VOID_LABEL, category_map=None):
    """Write one image's panoptic prediction as a COCO panoptic PNG; return its ``segments_info``.

    Arguments as `panoptic_to_segments`. The PNG holds ``id2rgb`` of the segment ids.
    """
    seg_ids, info = panoptic_to_segments(panoptic, label_divisor, void_label, category_map)
    write_panoptic_png(png_path, seg_ids)
    return info


def panoptic_annotation(image_id, file_name, segments_info):
    """One entry of the predictions json's ``annotations`` list."""
    return {"image_id": image_id, "file_name": file_name, "segments_info": list(segments_info)}


def write_panoptic_json(json_path, annotations, categories=None, images=None):
    """Write ``{"annotations": [...]}`` (plus ``categories`` / ``images`` when given) as json."""
    d = {"annotations": list(annotations)}
    if categories is not None:
        d["categories"] = list(categories)
    if images is not None:
        d["images"] = list(images)
    folder = os.path.dirname(json_path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(d, f)
    return d


def instances_from_panoptic(panoptic, thing_ids, label_divisor=1000):
    """Thing instances of a panoptic map, for the instance-level evaluators.

    Returns (classes [K] int64, index_map [H, W] int32 with 0 = no instance and k+1 on the
    pixels of instance k, panoptic_labels [K] int64), instances in increasing label order.
    """
    pan = np.asarray(panoptic.numpy() if hasattr(panoptic, "numpy") else panoptic).astype(np.int64)
    values, inverse = np.unique(pan.ravel(), return_inverse=True)
    classes = values // label_divisor
    is_thing = np.isin(classes, np.asarray(list(thing_ids), dtype=np.int64)) & (values % label_divisor > 0)
    index_of_value = (np.cumsum(is_thing) * is_thing).astype(np.int32)
    index_map = index_of_value[inverse].reshape(pan.shape)
    return classes[is_thing], index_map, values[is_thing]


def write_cityscapes_instances(result_dir, image_id, classes, masks, scores, class_to_label_id=None):
    """Write one image's instances in the Cityscapes instance-level result format.

    classes: [K] int (train ids mapped through ``class_to_label_id``, e.g.
    `cityscapes_meta.TRAIN_ID_TO_LABEL_ID`, or label ids when it is None); masks: [K, H, W]
    bool, or an [H, W] int index map (0 = none, k+1 = instance k); scores: [K] float.
    Writes ``<result_dir>/<image_id>.txt`` (``<mask path relative to it> <label id> <score>``
    per line) and ``<result_dir>/masks/<image_id>_<k>.png`` (uint8, 255 on the instance).
    ``image_id`` must start with the Cityscapes ``<city>_<seq>_<frame>`` prefix for the official
    script to find the file. Returns the txt path.
    """
    classes = np.asarray(classes, dtype=np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    masks = np.asarray(masks)
    if classes.size != scores.size:
        raise UserInputError("got {} classes and {} scores".format(classes.size, scores.size))
    if class_to_label_id is not None:
        missing = sorted(set(classes.tolist()) - set(int(k) for k in class_to_label_id))
        if missing:
            raise UserInputError("class_to_label_id has no entry for classes {}".format(missing))
        classes = np.array([int(class_to_label_id[int(c)]) for c in classes.tolist()], dtype=np.int64)
    os.makedirs(os.path.join(result_dir, "masks"), exist_ok=True)
    lines = []
    # one PNG per instance is the format itself: this loop writes files, it computes nothing
    for k, (label_id, score) in enumerate(zip(classes.tolist(), scores.tolist())):
        mask = masks[k] if masks.ndim == 3 else masks == k + 1
        rel = "masks/{}_{}.png".format(image_id, k)
        if not cv2.imwrite(os.path.join(result_dir, rel), mask.astype(np.uint8) * 255):
            raise UserInputError("cannot write {}".format(os.path.join(result_dir, rel)))
        lines.append("{} {} {!r}\n".format(rel, label_id, float(score)))
    txt = os.path.join(result_dir, "{}.txt".format(image_id))
    with open(txt, "w") as f:
        f.writelines(lines)
    return txt


class PanopticPredictionWriter:
    """Writes a dataset's predictions in COCO panoptic format during evaluation.

    ``<save_dir>/panoptic/<image_id>.png`` per image and, on `finish`, ``<save_dir>/panoptic.json``
    (annotations of all ranks, written by rank 0). Category ids follow the dataset's own json:
    train ids for Cityscapes (``*_trainId.json``), original COCO ids for COCO (the dataset's
    ``train_id_to_category_id``), so `tools/eval_panoptic.py` / panopticapi can score the folder.
    """

    def __init__(self, save_dir, dataset, void_label=None):
        self.save_dir = save_dir
        self.label_divisor = int(getattr(dataset, "label_divisor", 1000))
        ignore = int(getattr(dataset, "ignore_index", 255))
        self.void_label = int(void_label) if void_label is not None else ignore * self.label_divisor
        self.category_map = getattr(dataset, "train_id_to_category_id", None)
        self.annotations = []

    def add(self, record, panoptic):
        """Write one image's [H, W] panoptic prediction (class * label_divisor + instance)."""
        image_id = record["image_id"]
        file_name = "{}.png".format(image_id)
        info = write_panoptic_prediction(os.path.join(self.save_dir, "panoptic", file_name), panoptic,
                                         self.label_divisor, self.void_label, self.category_map)
        self.annotations.append(panoptic_annotation(image_id, file_name, info))

    def finish(self):
        """Gather the annotations of all ranks and write the json on rank 0; returns its path."""
        gathered = [a for part in all_gather_objects(self.annotations) for a in part]
        path = os.path.join(self.save_dir, "panoptic.json")
        if rank() == 0:
            write_panoptic_json(path, gathered)
        return path
