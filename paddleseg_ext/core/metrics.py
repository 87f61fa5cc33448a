"""The metric suite of one evaluation run: panoptic quality, semantic mIoU and instance AP (both score
modes), fed image by image and merged over ranks."""
import os
import warnings

import numpy as np

from ..evaluation import CityscapesInstanceEvaluator, CocoInstanceEvaluator, PanopticEvaluator, SemanticEvaluator
from ..evaluation.distributed import all_gather_objects
from ..postprocess import instance_scores
from ..utils.panoptic_io import read_panoptic_png
from .inference import to_numpy

SCORE_MODES = ("semantic", "semantic_x_instance")


def dataset_categories(dataset):
    """[{'id', 'name', 'isthing'}] in train-id space, from a panoptic dataset."""
    things = set(int(t) for t in dataset.thing_ids)
    names = list(getattr(dataset, "class_names", None) or [str(i) for i in range(dataset.num_classes)])
    return [{"id": i, "name": names[i], "isthing": int(i in things)} for i in range(dataset.num_classes)]


def cityscapes_instance_gt_path(image_path):
    """leftImg8bit/<split>/<city>/<name>_leftImg8bit.png -> gtFine/<split>/<city>/<name>_gtFine_instanceIds.png"""
    city_dir, fname = os.path.split(image_path)
    split_dir, city = os.path.split(city_dir)
    img_root, split = os.path.split(split_dir)
    root = os.path.dirname(img_root)
    name = fname.replace("_leftImg8bit", "_gtFine_instanceIds")
    return os.path.join(root, "gtFine", split, city, name)


def _index_map(panoptic, ids):
    """[H, W] int32: k+1 on the pixels of instance ids[k] (ids sorted), 0 elsewhere."""
    idx = np.searchsorted(ids, panoptic)
    idx = np.minimum(idx, max(len(ids) - 1, 0))
    hit = (ids[idx] == panoptic) if len(ids) else np.zeros(panoptic.shape, dtype=bool)
    return np.where(hit, idx + 1, 0).astype(np.int32)


class MetricSuite:
    """PQ (PanopticEvaluator), mIoU (SemanticEvaluator) and instance AP for one dataset."""

    def __init__(self, dataset, label_divisor, void_label):
        self.dataset = dataset
        self.label_divisor = int(label_divisor)
        self.void_label = int(void_label)
        self.thing_ids = [int(t) for t in dataset.thing_ids]
        self.panoptic = PanopticEvaluator(dataset_categories(dataset), label_divisor=label_divisor,
                                          void_label=void_label)
        self.semantic = SemanticEvaluator(dataset.num_classes, ignore_index=dataset.ignore_index,
                                          class_names=getattr(dataset, "class_names", None))
        self.kind = "coco" if type(dataset).__name__ == "CocoPanoptic" else "cityscapes"
        if self.kind == "coco":
            self.instance = {m: CocoInstanceEvaluator(self.thing_ids) for m in SCORE_MODES}
        else:
            self.instance = {m: CityscapesInstanceEvaluator(class_ids_are_train_ids=True) for m in SCORE_MODES}
        self._ap_missing = []

    def update(self, pred_panoptic, pred_semantic, gt_segment_ids, gt_segments_info, sem_prob, center, record,
               gt_semantic):
        """Add one image (all maps at the original resolution)."""
        self.panoptic.update(pred_panoptic, gt_segment_ids, gt_segments_info)
        self.semantic.update(pred_semantic, gt_semantic)
        inst = instance_scores(pred_panoptic, to_numpy(sem_prob), to_numpy(center), self.thing_ids,
                               label_divisor=self.label_divisor, void_label=self.void_label)
        ids = np.asarray(inst["ids"], dtype=np.int64)
        index_map = _index_map(pred_panoptic, ids)
        classes = np.asarray(inst["classes"], dtype=np.int64)
        if self.kind == "coco":
            for m in SCORE_MODES:
                self.instance[m].update(record["image_id"], classes, index_map, inst["score_" + m],
                                        gt_segment_ids, gt_segments_info)
            return
        gt_path = cityscapes_instance_gt_path(record["image_path"])
        if not os.path.isfile(gt_path):
            self._ap_missing.append(gt_path)
            return
        gt_inst = read_panoptic_png(gt_path)
        for m in SCORE_MODES:
            self.instance[m].update(classes, index_map, inst["score_" + m], gt_inst)

    def evaluate(self):
        """Merge over ranks and compute every metric; returns a JSON-able dict."""
        self.panoptic.all_reduce()
        self.semantic.all_reduce()
        for ev in self.instance.values():
            ev.all_gather()
        missing = [p for part in all_gather_objects(self._ap_missing) for p in part]
        pan = self.panoptic.evaluate(detailed=True)
        sem = self.semantic.evaluate()
        out = {"panoptic": pan, "semantic": sem, "instance": {}}
        if missing:
            warnings.warn("instance AP skipped: {} ground-truth instanceIds PNG(s) missing, e.g. {}".format(
                len(missing), missing[0]))
        else:
            for m, ev in self.instance.items():
                res = ev.evaluate()
                res.pop("ap_matrix", None)
                out["instance"][m] = res
        return out
