"""All metrics of a Panoptic-DeepLab evaluation in one object: PQ, mIoU and instance AP per score mode.

Used by the validation loop (`core/val.py`): `build_evaluators(dataset, ...)`, then per image
`update(...)`, then `evaluate()` (which merges the statistics of all ranks).
"""
import os

import numpy as np

from panoptic_metrics.instance_ap import CityscapesInstanceEvaluator, CocoInstanceEvaluator
from panoptic_metrics.panoptic_io import DEFAULT_VOID_LABEL
from panoptic_metrics.panoptic_quality import PanopticEvaluator, index_segment_map
from panoptic_metrics.semantic_iou import SemanticEvaluator

from ..utils import json_ready, read_panoptic_png
from ..utils import to_numpy as _to_numpy

#: instance confidence modes of Panoptic-DeepLab (default columns of `instance_scores`)
SCORE_MODES = ("semantic", "semantic_x_instance")


def cityscapes_instance_gt_path(image_path):
    """leftImg8bit/<split>/<city>/<name>_leftImg8bit.png -> gtFine/<split>/<city>/<name>_gtFine_instanceIds.png"""
    city_dir, fname = os.path.split(image_path)
    split_dir, city = os.path.split(city_dir)
    root = os.path.dirname(os.path.dirname(split_dir))
    return os.path.join(root, "gtFine", os.path.basename(split_dir), city,
                        fname.replace("_leftImg8bit", "_gtFine_instanceIds"))


class PanopticEvaluators:
    """PQ (cityscapesscripts rules), semantic mIoU and instance AP for one dataset, any model.

    num_classes, thing_ids, class_names, ignore_index: the dataset's train-id space; category_ids:
    the dataset's own category id of each train id (optional; per-class PQ entries get ``category_id``);
    instance_metric: 'cityscapes' (official instance AP, train ids mapped to label ids),
    'coco' (pycocotools mask AP) or None; score_modes: names of the instance score columns
    (the model's `score_modes`), one AP per mode.
    """

    def __init__(self, num_classes, thing_ids, class_names=None, ignore_index=255, label_divisor=1000,
                 void_label=DEFAULT_VOID_LABEL, instance_metric="cityscapes", score_modes=SCORE_MODES,
                 category_ids=None):
        self.num_classes = int(num_classes)
        #: train id -> the dataset's own category id (COCO, CustomPanoptic), added to the per-class results
        self.category_ids = [int(c) for c in category_ids] if category_ids is not None else None
        self.thing_ids = [int(t) for t in thing_ids]
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        self.categories = [{"id": i, "name": names[i], "isthing": int(i in self.thing_ids)}
                           for i in range(self.num_classes)]
        self.ignore_index = int(ignore_index)
        self.label_divisor = int(label_divisor)
        self.void_label = int(void_label)
        self.instance_metric = instance_metric
        self.panoptic = PanopticEvaluator(self.categories, label_divisor, void_label)
        self.semantic = SemanticEvaluator(self.num_classes, ignore_index, names)
        if instance_metric == "cityscapes":
            from ..datasets.cityscapes_meta import TRAIN_ID_TO_LABEL_ID

            self._label_id_of_class = TRAIN_ID_TO_LABEL_ID
            self.instance = {m: CityscapesInstanceEvaluator(class_ids_are_train_ids=True) for m in score_modes}
        elif instance_metric == "coco":
            self.instance = {m: CocoInstanceEvaluator(self.thing_ids) for m in score_modes}
        else:
            self.instance = {}

    def _gt_semantic_and_instances(self, gt_ids, gt_segments_info):
        """GT train-id map (ignore on void) and Cityscapes-style instance-id map from the panoptic GT."""
        ids = np.array([int(s["id"]) for s in gt_segments_info], dtype=np.int64)
        cats = np.array([int(s["category_id"]) for s in gt_segments_info], dtype=np.int64)
        index = index_segment_map(gt_ids, ids, 0)
        lut = np.concatenate([[self.ignore_index], cats, [self.ignore_index]])
        semantic = lut[index].reshape(gt_ids.shape)
        if self.instance_metric != "cityscapes":
            return semantic, None
        # label id for stuff and crowd ("group") segments, label id * 1000 + k for thing instances
        label = np.array([self._label_id_of_class.get(int(c), 0) for c in cats], dtype=np.int64)
        crowd = np.array([int(s.get("iscrowd", 0)) == 1 for s in gt_segments_info], dtype=bool)
        thing = np.isin(cats, self.thing_ids) & ~crowd
        k = np.arange(1, ids.size + 1)
        value = np.where(thing, label * 1000 + k, label)
        inst = np.concatenate([[0], value, [0]])[index].reshape(gt_ids.shape)
        return semantic, inst

    def update(self, pred_panoptic, pred_semantic, gt_segment_ids, gt_segments_info, instance_ids=None,
               instance_scores=None, record=None):
        """Add one image.

        pred_panoptic: [H, W] int (class * label_divisor + instance, void_label on void);
        pred_semantic: [H, W] int train ids; gt_segment_ids: [H, W] int (rgb2id of the GT PNG);
        gt_segments_info: its JSON list (category ids are train ids); instance_ids [M] int (panoptic
        ids of the predicted instances) and instance_scores [M, S] float (one column per score mode,
        in the order of `score_modes`) give instance AP (skipped when None);
        record: the dataset record (its ``image_id`` names the image for COCO).
        """
        pan = _to_numpy(pred_panoptic).astype(np.int64, copy=False)
        gt_ids = _to_numpy(gt_segment_ids)
        self.panoptic.update(pan, gt_ids, gt_segments_info)
        gt_semantic, gt_inst = self._gt_semantic_and_instances(gt_ids, gt_segments_info)
        self.semantic.update(_to_numpy(pred_semantic), gt_semantic)
        if not self.instance or instance_ids is None or instance_scores is None:
            return
        inst_ids = _to_numpy(instance_ids).astype(np.int64).reshape(-1)
        scores = _to_numpy(instance_scores).astype(np.float64).reshape(inst_ids.size, len(self.instance))
        order = np.argsort(inst_ids, kind="stable")
        inst_ids, scores = inst_ids[order], scores[order]
        classes = inst_ids // self.label_divisor
        if inst_ids.size:
            pos = np.searchsorted(inst_ids, pan)
            hit = inst_ids[np.minimum(pos, inst_ids.size - 1)] == pan
            index_map = np.where(hit, pos + 1, 0)
        else:  # no predicted instance
            index_map = np.zeros(pan.shape, dtype=np.int64)
        if self.instance_metric == "cityscapes" and record and "image_path" in record:
            # the official instanceIds PNG keeps what the panoptic GT dropped (caravan, trailer as ignore)
            official = cityscapes_instance_gt_path(record["image_path"])
            if os.path.isfile(official):
                gt_inst = read_panoptic_png(official)
        for column, (mode, ev) in enumerate(self.instance.items()):
            s = scores[:, column]
            if isinstance(ev, CityscapesInstanceEvaluator):
                ev.update(classes, index_map, s, gt_inst)
            else:
                image_id = record["image_id"] if record and "image_id" in record else len(ev.state()["images"])
                ev.update(image_id, classes, index_map, s, gt_ids, gt_segments_info)

    def evaluate(self):
        """Merge all ranks and return ``{'panoptic', 'semantic', 'instance': {mode: {'AP', 'AP50', ...}}}``.

        Every value is json-ready (lists and floats; NaN where a metric is undefined).
        """
        self.panoptic.all_reduce()
        self.semantic.all_reduce()
        for ev in self.instance.values():
            ev.all_gather()
        sem = self.semantic.evaluate()
        panoptic = self.panoptic.evaluate(detailed=True)
        if self.category_ids is not None:
            for train_id, entry in panoptic["per_class"].items():
                entry["category_id"] = self.category_ids[int(train_id)]
        out = {"panoptic": panoptic,
               "semantic": {"mIoU": sem["mIoU"], "acc": sem["pixel_acc"], "mean_acc": sem["mean_acc"],
                            "IoU": sem["IoU"], "per_class": sem["per_class"]},
               "instance": {}}
        for mode, ev in self.instance.items():
            r = ev.evaluate()
            r.pop("ap_matrix", None)
            out["instance"][mode] = r
        return json_ready(out)


def build_evaluators(dataset, label_divisor=None, void_label=None, score_modes=SCORE_MODES):
    """`PanopticEvaluators` for a CityscapesPanoptic / CocoPanoptic / CustomPanoptic-like dataset.

    Reads ``num_classes``, ``thing_ids``, ``class_names``, ``ignore_index``, ``label_divisor`` from the
    dataset; COCO-style datasets (with ``train_id_to_category_id``, CustomPanoptic too) get COCO mask AP and
    their category ids in the per-class results, the others the Cityscapes instance AP.
    """
    label_divisor = int(label_divisor if label_divisor is not None else getattr(dataset, "label_divisor", 1000))
    ignore_index = int(getattr(dataset, "ignore_index", getattr(dataset, "IGNORE_INDEX", 255)))
    if void_label is None:
        void_label = ignore_index * label_divisor
    to_category = getattr(dataset, "train_id_to_category_id", None)
    metric = "coco" if to_category is not None else "cityscapes"
    num_classes = getattr(dataset, "num_classes", None) or dataset.NUM_CLASSES
    return PanopticEvaluators(
        num_classes=num_classes, thing_ids=dataset.thing_ids, class_names=getattr(dataset, "class_names", None),
        ignore_index=ignore_index, label_divisor=label_divisor, void_label=void_label, instance_metric=metric,
        score_modes=tuple(score_modes),
        category_ids=[to_category[i] for i in range(num_classes)] if to_category is not None else None)
