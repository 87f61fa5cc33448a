"""Instance-level AP: Cityscapes rules (cityscapesscripts' evalInstanceLevelSemanticLabeling) and COCO.

Cityscapes rules, reproduced here:
- classes: labels with instances that are not ignored in evaluation (person, rider, car, truck,
  bus, train, motorcycle, bicycle = label ids 24..28, 31..33; train ids 11..18);
- ground truth: every id of the `*_instanceIds.png` map whose label id (``id`` below 1000, else
  ``id // 1000``) is such a class; ids below 1000 are groups (e.g. "cargroup"); only non-group
  instances of at least `min_region_size` pixels are counted as objects to find;
- void: ground-truth pixels whose raw id is an ignored label id;
- overlap = IoU of the binary masks; thresholds 0.5:0.95:0.05 (strictly greater than);
- a ground-truth object matched by several predictions keeps the highest score, the others are
  false positives; a prediction matching no ground truth (groups and small ones included) is a
  false positive unless its share of pixels on void, groups and small objects is above the
  threshold (small groups count twice, as in the official loop);
- AP: the official step-wise integral of its precision-recall curve (with the artificial point
  precision 1 at recall 0); NaN for a class without ground truth, 0 without predictions;
  AP averages over classes and thresholds ignoring NaN, AP50 over classes at 0.5.

Every image's prediction/ground-truth overlaps come from one `bincount`; `evaluate` then scores all
classes and thresholds at once with sorted-segment numpy operations.
"""
import contextlib
import io

import numpy as np

from .arrays import to_numpy as _to_numpy
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from .errors import UserInputError
from .distributed import all_gather_objects
from .panoptic_quality import index_segment_map

#: Cityscapes label ids evaluated for instances, in the official order
CITYSCAPES_INSTANCE_LABEL_IDS = [l.id for l in _CS_LABELS if l.hasInstances and not l.ignoreInEval]
CITYSCAPES_INSTANCE_NAMES = [l.name for l in _CS_LABELS if l.hasInstances and not l.ignoreInEval]
_VOID_LABEL_IDS = [l.id for l in _CS_LABELS if l.ignoreInEval and l.id >= 0]
_TRAIN_TO_LABEL_LUT = np.full(256, -1, dtype=np.int64)
for _l in _CS_LABELS:
    if _l.hasInstances and not _l.ignoreInEval:
        _TRAIN_TO_LABEL_LUT[_l.trainId] = _l.id



def _instance_pixels(masks, num):
    """(instance index, flat pixel index) of every predicted pixel; masks [K,H,W] or index map [H,W]."""
    if masks.ndim == 3:
        if masks.shape[0] != num:
            raise UserInputError("got {} masks for {} instances".format(masks.shape[0], num))
        # explicit pixel count: reshape(0, -1) is ambiguous when there are no instances
        k, pix = np.nonzero(masks.reshape(num, masks.shape[1] * masks.shape[2]))
        return k, pix
    flat = masks.ravel().astype(np.int64)
    pix = np.flatnonzero(flat)
    k = flat[pix] - 1
    if k.size and k.max() >= num:
        raise UserInputError("index map refers to instance {} but only {} were given".format(int(k.max()) + 1, num))
    return k, pix


def average_precision(groups, num_groups, is_true, scores, hard_fn):
    """The official step-wise AP of every group at once.

    groups: [E] group of each scored entry; is_true: [E] bool (matched ground truth or false
    positive); scores: [E] float; hard_fn: [num_groups] unmatched ground truth per group.
    Returns (ap [num_groups] float64, entries [num_groups] int).
    """
    order = np.lexsort((scores, groups))
    g, y, s = groups[order], is_true[order].astype(np.float64), scores[order]
    count = np.bincount(g, minlength=num_groups)
    start = np.cumsum(count) - count
    num_true = np.bincount(g, weights=y, minlength=num_groups)
    cum = np.concatenate([[0.0], np.cumsum(y)])
    # one precision/recall point per distinct score of a group (its lowest index), ascending
    first = np.ones(g.size, dtype=bool)
    first[1:] = (g[1:] != g[:-1]) | (s[1:] != s[:-1])
    u = np.flatnonzero(first)
    ug = g[u]
    true_below = cum[u] - cum[start[ug]]
    tp = num_true[ug] - true_below
    fp = (count[ug] - (u - start[ug])) - tp
    fn = true_below + hard_fn[ug]
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 only in groups without ground truth
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
    # each group's curve plus its artificial last point (precision 1, recall 0)
    points = np.bincount(ug, minlength=num_groups)
    length = points + 1
    ext_start = np.cumsum(length) - length
    ustart = np.cumsum(points) - points
    pos = ext_start[ug] + (np.arange(u.size) - ustart[ug])
    r = np.zeros(length.sum())
    p = np.ones(length.sum())
    r[pos], p[pos] = recall, precision
    ext_group = np.repeat(np.arange(num_groups), length)
    local = np.arange(r.size) - ext_start[ext_group]
    idx = np.arange(r.size)
    r_prev = r[np.where(local > 0, idx - 1, idx)]
    r_next = np.where(local < length[ext_group] - 1, r[np.minimum(idx + 1, r.size - 1)], 0.0)
    width = 0.5 * r_prev - 0.5 * r_next
    ap = np.bincount(ext_group, weights=p * width, minlength=num_groups)
    return ap, count


class CityscapesInstanceEvaluator:
    """Cityscapes instance-level AP / AP50, equal to cityscapesscripts' evaluateImgLists.

    class_ids_are_train_ids: predicted classes are train ids (11..18) rather than label ids.
    min_region_size: smallest ground-truth object counted (100 px officially).
    """

    def __init__(self, class_ids_are_train_ids=True, min_region_size=100, overlaps=None):
        self.class_ids_are_train_ids = bool(class_ids_are_train_ids)
        self.min_region_size = int(min_region_size)
        # the official thresholds, float artefacts included (0.6000000000000001, ...)
        self.overlaps = np.arange(0.5, 1.0, 0.05) if overlaps is None else np.asarray(overlaps, dtype=np.float64)
        self.names = list(CITYSCAPES_INSTANCE_NAMES)
        self._class_of_label = np.full(max(CITYSCAPES_INSTANCE_LABEL_IDS) + 1, -1, dtype=np.int64)
        self._class_of_label[CITYSCAPES_INSTANCE_LABEL_IDS] = np.arange(len(CITYSCAPES_INSTANCE_LABEL_IDS))
        self.reset()

    def reset(self):
        """Forget all accumulated images."""
        self._parts = []

    def _classes_of_labels(self, label_ids):
        label_ids = np.asarray(label_ids, dtype=np.int64)
        cls = np.full(label_ids.shape, -1, dtype=np.int64)
        ok = (label_ids >= 0) & (label_ids < self._class_of_label.size)
        cls[ok] = self._class_of_label[label_ids[ok]]
        return cls

    def update(self, pred_classes, pred_masks, pred_scores, gt_instance_ids):
        """Add one image.

        pred_classes: [K] int (train or label ids, see the constructor); pred_masks: [K, H, W]
        bool, or an [H, W] int index map (0 = none, k+1 = instance k) for non-overlapping
        instances; pred_scores: [K] float. gt_instance_ids: [H, W] int, Cityscapes
        `*_instanceIds.png` values (label id, or label id * 1000 + k for instances).
        Predictions of other classes and empty masks are skipped, as officially.
        """
        gt = _to_numpy(gt_instance_ids).astype(np.int64, copy=False)
        masks = _to_numpy(pred_masks)
        classes = _to_numpy(pred_classes).astype(np.int64).ravel()
        scores = _to_numpy(pred_scores).astype(np.float64).ravel()
        if gt.ndim != 2 or masks.shape[-2:] != gt.shape:
            raise UserInputError("masks of shape {} do not fit the ground truth of shape {}".format(
                masks.shape, gt.shape))
        if classes.size != scores.size:
            raise UserInputError("got {} classes and {} scores".format(classes.size, scores.size))
        gt_flat = gt.ravel()
        if gt_flat.size and gt_flat.min() < 0:
            raise UserInputError("ground-truth instance ids must be >= 0")

        # ground-truth instances of the evaluated classes (groups included)
        top = int(gt_flat.max()) if gt_flat.size else 0
        if top < (1 << 22):
            counts = np.bincount(gt_flat, minlength=top + 1)
            ids = np.flatnonzero(counts)
            px = counts[ids]
        else:
            ids, px = np.unique(gt_flat, return_counts=True)
        gt_cls = self._classes_of_labels(np.where(ids < 1000, ids, ids // 1000))
        keep = gt_cls >= 0
        gt_ids, gt_cls, gt_px = ids[keep], gt_cls[keep], px[keep]
        num_gt = gt_ids.size
        # 1..G on the evaluated instances, 0 elsewhere (label 0 is void, never an instance)
        gt_index = index_segment_map(gt_flat, gt_ids, 0)
        gt_index[gt_index == num_gt + 1] = 0
        void_lut = np.zeros(max(top, max(_VOID_LABEL_IDS)) + 1, dtype=bool)
        void_lut[_VOID_LABEL_IDS] = True
        is_void = void_lut[gt_flat]

        labels = classes
        if self.class_ids_are_train_ids:
            labels = np.full(classes.shape, -1, dtype=np.int64)
            ok = (classes >= 0) & (classes < _TRAIN_TO_LABEL_LUT.size)
            labels[ok] = _TRAIN_TO_LABEL_LUT[classes[ok]]
        pred_cls = self._classes_of_labels(labels)

        k, pix = _instance_pixels(masks, classes.size)
        num = classes.size
        sel = pred_cls[k] >= 0 if k.size else np.zeros(0, dtype=bool)
        k, pix = k[sel], pix[sel]
        joint = k * (num_gt + 1) + gt_index[pix]
        inter = np.bincount(joint, minlength=num * (num_gt + 1)).reshape(num, num_gt + 1)
        pred_px = inter.sum(1)
        pred_void = np.bincount(k, weights=is_void[pix], minlength=num)
        valid_pred = (pred_cls >= 0) & (pred_px > 0)
        # renumber kept predictions 0..P-1
        new_index = np.cumsum(valid_pred) - 1
        kk, gg = np.nonzero(inter[:, 1:])
        same = valid_pred[kk] & (pred_cls[kk] == gt_cls[gg])
        kk, gg = kk[same], gg[same]
        self._parts.append({
            "gt_cls": gt_cls, "gt_px": gt_px, "gt_group": gt_ids < 1000,
            "pred_cls": pred_cls[valid_pred], "pred_score": scores[valid_pred],
            "pred_px": pred_px[valid_pred], "pred_void": pred_void[valid_pred],
            "pair_pred": new_index[kk], "pair_gt": gg, "pair_inter": inter[kk, gg + 1],
        })

    def state(self):
        """The accumulated per-image records (a list of dicts of numpy arrays)."""
        return {"parts": list(self._parts)}

    def merge(self, state):
        """Add another evaluator's `state()`."""
        self._parts.extend(state["parts"])

    def all_gather(self):
        """Collect the records of all paddle.distributed ranks on every rank (no-op with one)."""
        gathered = all_gather_objects(self.state())
        self._parts = [p for s in gathered for p in s["parts"]]

    def _concat(self):
        keys = ["gt_cls", "gt_px", "gt_group", "pred_cls", "pred_score", "pred_px", "pred_void",
                "pair_pred", "pair_gt", "pair_inter"]
        out = {k: [] for k in keys}
        gt_off = pred_off = 0
        for part in self._parts:
            for k in keys:
                v = part[k]
                if k == "pair_pred":
                    v = v + pred_off
                elif k == "pair_gt":
                    v = v + gt_off
                out[k].append(np.asarray(v))
            gt_off += len(part["gt_cls"])
            pred_off += len(part["pred_cls"])
        dtypes = {"gt_group": bool, "pred_score": np.float64, "pred_void": np.float64}
        return {k: (np.concatenate(v).astype(dtypes.get(k, np.int64)) if v else np.zeros(0, dtypes.get(k, np.int64)))
                for k, v in out.items()}

    def ap_matrix(self):
        """AP of every class and overlap threshold: float64 [num_classes, num_overlaps]."""
        d = self._concat()
        thr = self.overlaps
        nt, nc = thr.size, len(self.names)
        num_groups = nc * nt
        eligible = ~d["gt_group"] & (d["gt_px"] >= self.min_region_size)
        pp, pg, inter = d["pair_pred"], d["pair_gt"], d["pair_inter"].astype(np.float64)
        overlap = inter / (d["gt_px"][pg] + d["pred_px"][pp] - inter)
        above = overlap[:, None] > thr[None, :]

        # matches with objects: per (threshold, object) the best score is a true positive,
        # the other matching predictions are false positives
        mi, mt = np.nonzero(above & eligible[pg][:, None])
        obj_key = mt * max(eligible.size, 1) + pg[mi]
        m_score = d["pred_score"][pp[mi]]
        order = np.lexsort((-m_score, obj_key))
        best = np.ones(order.size, dtype=bool)
        best[1:] = obj_key[order][1:] != obj_key[order][:-1]
        is_tp = np.zeros(order.size, dtype=bool)
        is_tp[order] = best
        matched = np.zeros((eligible.size, nt), dtype=bool)
        matched[pg[mi], mt] = True
        fo, ft = np.nonzero(eligible[:, None] & ~matched)
        hard_fn = np.bincount(d["gt_cls"][fo] * nt + ft, minlength=num_groups).astype(np.float64)

        # predictions matching nothing (groups and small objects count as something)
        found = np.zeros((d["pred_cls"].size, nt), dtype=bool)
        ai, at = np.nonzero(above)
        found[pp[ai], at] = True
        ignored_weight = d["gt_group"][pg].astype(np.float64) + (d["gt_px"][pg] < self.min_region_size)
        ignored = d["pred_void"] + np.bincount(pp, weights=inter * ignored_weight, minlength=d["pred_cls"].size)
        share = ignored / d["pred_px"]
        fpi, fpt = np.nonzero(~found & (share[:, None] <= thr[None, :]))

        groups = np.concatenate([d["gt_cls"][pg[mi]] * nt + mt, d["pred_cls"][fpi] * nt + fpt])
        is_true = np.concatenate([is_tp, np.zeros(fpi.size, dtype=bool)])
        scores = np.concatenate([m_score, d["pred_score"][fpi]])
        ap, entries = average_precision(groups, num_groups, is_true, scores, hard_fn)

        have_gt = np.bincount(d["gt_cls"][eligible], minlength=nc) > 0
        have_pred = np.bincount(d["pred_cls"], minlength=nc) > 0
        ap = ap.reshape(nc, nt)
        # (the official script fails on a class whose predictions were all ignored; 0 here)
        ap = np.where((have_gt & have_pred)[:, None] & (entries.reshape(nc, nt) > 0), ap, 0.0)
        ap[~have_gt] = np.nan
        return ap

    def evaluate(self):
        """``{'AP', 'AP50', 'per_class': {name: {'AP', 'AP50'}}, 'ap_matrix': [classes, overlaps]}``.

        AP: mean over classes and thresholds of the defined (non-NaN) values, AP50 the same at
        0.5, per class plain means (NaN for classes without ground truth), as officially.
        """
        ap = self.ap_matrix()
        at50 = np.isclose(self.overlaps, 0.5)
        with warnings_off():
            result = {"AP": float(np.nanmean(ap)) if ap.size else float("nan"),
                      "AP50": float(np.nanmean(ap[:, at50])) if at50.any() else float("nan")}
        result["per_class"] = {n: {"AP": float(np.mean(a)), "AP50": float(np.mean(a[at50])) if at50.any() else float("nan")}
                               for n, a in zip(self.names, ap)}
        result["ap_matrix"] = ap
        return result


@contextlib.contextmanager
def warnings_off():
    """Silence numpy's 'mean of empty slice' warning (all-NaN means are NaN on purpose)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


class CocoInstanceEvaluator:
    """COCO mask AP through pycocotools (RLE-encoded masks, COCOeval 'segm').

    thing_category_ids: the category ids evaluated (those of the predictions' classes and of
    the ground-truth segments' ``category_id``; stuff segments are skipped).
    """

    def __init__(self, thing_category_ids):
        self.thing_category_ids = [int(c) for c in thing_category_ids]
        self.reset()

    def reset(self):
        """Forget all accumulated images."""
        self._images, self._gts, self._dts = [], [], []

    def update(self, image_id, pred_classes, pred_masks, pred_scores, gt_segment_ids, gt_segments_info):
        """Add one image.

        pred_classes: [K] category ids; pred_masks: [K, H, W] bool or an [H, W] index map
        (0 = none, k+1 = instance k); pred_scores: [K] float. gt_segment_ids: [H, W] int (rgb2id of
        the panoptic PNG); gt_segments_info: its JSON list (``id``, ``category_id``, ``iscrowd``).
        """
        from pycocotools import mask as mask_util

        gt = _to_numpy(gt_segment_ids)
        masks = _to_numpy(pred_masks)
        classes = _to_numpy(pred_classes).astype(np.int64).ravel()
        scores = _to_numpy(pred_scores).astype(np.float64).ravel()
        if masks.shape[-2:] != gt.shape:
            raise UserInputError("masks of shape {} do not fit the ground truth of shape {}".format(
                masks.shape, gt.shape))
        h, w = gt.shape
        self._images.append({"id": image_id, "height": h, "width": w})
        things = set(self.thing_category_ids)
        segs = [s for s in gt_segments_info if int(s["category_id"]) in things]
        if segs:
            gt_masks = np.asfortranarray(
                (gt[None] == np.array([int(s["id"]) for s in segs])[:, None, None]).transpose(1, 2, 0).astype(np.uint8))
            rles = mask_util.encode(gt_masks)
            areas = mask_util.area(rles)
            boxes = mask_util.toBbox(rles)
            for s, rle, a, b in zip(segs, rles, areas.tolist(), boxes.tolist()):
                self._gts.append({"image_id": image_id, "category_id": int(s["category_id"]),
                                  "iscrowd": int(s.get("iscrowd", 0)), "segmentation": rle, "area": float(a),
                                  "bbox": b})
        if classes.size:
            if masks.ndim == 2:
                masks = masks[None] == np.arange(1, classes.size + 1)[:, None, None]
            rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
            for c, rle, sc in zip(classes.tolist(), rles, scores.tolist()):
                self._dts.append({"image_id": image_id, "category_id": c, "segmentation": rle, "score": sc})

    def state(self):
        """The accumulated images, ground truth and detections (lists of dicts)."""
        return {"images": list(self._images), "gts": list(self._gts), "dts": list(self._dts)}

    def merge(self, state):
        """Add another evaluator's `state()`."""
        self._images += state["images"]
        self._gts += state["gts"]
        self._dts += state["dts"]

    def all_gather(self):
        """Collect the records of all paddle.distributed ranks on every rank (no-op with one)."""
        gathered = all_gather_objects(self.state())
        self.reset()
        for s in gathered:
            self.merge(s)

    def evaluate(self, verbose=False):
        """``{'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl'}`` (COCOeval stats; 0.0 with no detections)."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        names = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
        if not self._dts or not self._gts:
            return {n: 0.0 for n in names}
        gts = [dict(a, id=i + 1) for i, a in enumerate(self._gts)]
        quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
        with quiet:
            coco_gt = COCO()
            coco_gt.dataset = {"images": self._images, "annotations": gts,
                               "categories": [{"id": c} for c in self.thing_category_ids]}
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes([dict(d) for d in self._dts])
            ev = COCOeval(coco_gt, coco_dt, iouType="segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return {n: float(v) for n, v in zip(names, ev.stats[:6])}
