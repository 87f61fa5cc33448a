"""Semantic segmentation metrics from a confusion matrix: per-class IoU, mIoU, pixel accuracy.

Same rules as cityscapesscripts' evalPixelLevelSemanticLabeling (there in label-id space, here in
train-id space): ground-truth pixels equal to ``ignore_index`` are left out entirely; a predicted
class outside ``[0, num_classes)`` on a valid pixel counts as a false negative of the true class
(the official script's predictions of ignored labels do the same); a class with
tp + fp + fn = 0 has IoU NaN and is left out of the mean (its `getScoreAverage`).
"""
import numpy as np

from .arrays import to_numpy as _to_numpy

from .errors import UserInputError
from .distributed import all_reduce_sum



class SemanticEvaluator:
    """Confusion-matrix accumulator over images and ranks.

    num_classes: C; ignore_index: ground-truth value left out; class_names: optional [C] names.
    The matrix is int64 [C, C + 1]: rows ground truth, columns prediction, the last column
    collecting predictions outside ``[0, C)``.
    """

    def __init__(self, num_classes, ignore_index=255, class_names=None):
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        if class_names is not None and len(class_names) != self.num_classes:
            raise UserInputError("class_names has {} entries for {} classes".format(len(class_names), num_classes))
        self.class_names = list(class_names) if class_names is not None else None
        self.reset()

    def reset(self):
        """Forget all accumulated pixels."""
        self.confusion = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    def update(self, pred, label):
        """Add predictions and labels of any equal shape ([H, W] or [N, H, W]; numpy or paddle ints)."""
        pred = _to_numpy(pred).astype(np.int64, copy=False).ravel()
        label = _to_numpy(label).astype(np.int64, copy=False).ravel()
        if pred.shape != label.shape:
            raise UserInputError("prediction has {} pixels and label {}".format(pred.size, label.size))
        valid = label != self.ignore_index
        gt = label[valid]
        if gt.size and (gt.min() < 0 or gt.max() >= self.num_classes):
            bad = np.unique(gt[(gt < 0) | (gt >= self.num_classes)])
            raise UserInputError("label values {} are neither classes 0..{} nor ignore_index {}".format(
                bad[:10].tolist(), self.num_classes - 1, self.ignore_index))
        p = pred[valid]
        p = np.where((p >= 0) & (p < self.num_classes), p, self.num_classes)
        c = self.num_classes + 1
        self.confusion += np.bincount(gt * c + p, minlength=self.num_classes * c).reshape(self.num_classes, c)

    def state(self):
        """``{'confusion': int64 [C, C+1]}``."""
        return {"confusion": self.confusion.copy()}

    def merge(self, state):
        """Add another evaluator's `state()`."""
        self.confusion += np.asarray(state["confusion"], dtype=np.int64)

    def all_reduce(self):
        """Sum the confusion matrix over all paddle.distributed ranks (no-op with one rank)."""
        self.confusion = all_reduce_sum(self.confusion).astype(np.int64)

    def evaluate(self):
        """Metrics of everything accumulated.

        Returns ``{'mIoU': float (NaN if no class counts), 'IoU': float64 [C] (NaN where
        tp + fp + fn = 0), 'pixel_acc': float, 'mean_acc': float (mean recall over classes with
        ground truth), 'per_class': {name or id: {'iou', 'tp', 'fp', 'fn'}}}``.
        """
        m = self.confusion
        tp = np.diag(m[:, :self.num_classes]).astype(np.float64)
        fn = m.sum(1) - tp
        fp = m[:, :self.num_classes].sum(0) - tp
        denom = tp + fp + fn
        iou = np.full(self.num_classes, np.nan)
        np.divide(tp, denom, out=iou, where=denom > 0)
        gt_count = m.sum(1)
        total = gt_count.sum()
        recall = np.full(self.num_classes, np.nan)
        np.divide(tp, gt_count, out=recall, where=gt_count > 0)
        counted = ~np.isnan(iou)
        names = self.class_names or list(range(self.num_classes))
        per_class = {n: {"iou": float(i), "tp": int(a), "fp": int(b), "fn": int(c)}
                     for n, i, a, b, c in zip(names, iou.tolist(), tp.tolist(), fp.tolist(), fn.tolist())}
        return {"mIoU": float(iou[counted].mean()) if counted.any() else float("nan"),
                "IoU": iou,
                "pixel_acc": float(tp.sum() / total) if total else float("nan"),
                "mean_acc": float(np.nanmean(recall)) if (gt_count > 0).any() else float("nan"),
                "per_class": per_class}
