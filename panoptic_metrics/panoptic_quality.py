"""Panoptic quality (PQ = SQ x RQ) with the rules of cityscapesscripts' evalPanopticSemanticLabeling.

Rules (the same as the official script, which follows Kirillov et al. 2019):
- a predicted and a ground-truth segment of the same category match when IoU > 0.5, where the
  union leaves out the predicted pixels lying on ground-truth void (segment id 0);
- crowd ground-truth segments never match; a crowd segment's category remembers the *last* crowd
  segment of that category in `segments_info`;
- an unmatched prediction is not a false positive when more than half of it lies on void plus the
  crowd region of its category;
- the ground-truth area is the JSON `area` in file mode (as the official script), the pixel count
  of the map otherwise; predicted areas are always pixel counts;
- categories with tp + fp + fn = 0 are left out of the averages (`n` counts the others).

Per image, all segment overlaps come from one `bincount` over combined (gt, pred) segment indices;
matching, false positives and negatives are numpy operations over the few overlapping pairs.
"""
import numpy as np

from .arrays import to_numpy as _to_numpy

from .errors import UserInputError
from .panoptic_io import DEFAULT_VOID_LABEL
from .distributed import all_reduce_sum

#: rows of the statistics array [4, num_categories]
TP, FP, FN, IOU = 0, 1, 2, 3
# a lookup table is used to index segment ids below this bound, searchsorted above it
_LUT_MAX_ID = 1 << 22



def index_segment_map(ids, known_ids, zero_id=0, scale=1):
    """Replace segment ids by small indices (times ``scale``).

    ids: [H, W] (or flat) non-negative int map; known_ids: [K] distinct ids.
    Returns a flat int32 array (same number of pixels) holding ``scale *`` index, where the index
    is 0 where ``ids == zero_id``, ``1 + position in known_ids`` for known ids, ``K + 1`` otherwise.
    """
    ids = np.ravel(ids)
    known = np.asarray(known_ids, dtype=np.int64).ravel()
    k = known.size
    if ids.size == 0:
        return np.zeros(0, dtype=np.int32)
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0:
        raise UserInputError("segment ids must be >= 0, found {}".format(lo))
    top = max(hi, int(known.max()) if k else 0, int(zero_id))
    if top < _LUT_MAX_ID:
        lut = np.full(top + 1, (k + 1) * scale, dtype=np.int32)
        lut[known] = np.arange(1, k + 1, dtype=np.int32) * scale
        lut[zero_id] = 0
        return lut[ids]
    order = np.argsort(known, kind="stable")
    sorted_known = known[order]
    pos = np.clip(np.searchsorted(sorted_known, ids), 0, max(k - 1, 0))
    hit = sorted_known[pos] == ids if k else np.zeros(ids.shape, dtype=bool)
    out = np.where(hit, order[pos] + 1, k + 1).astype(np.int32)
    out[ids == zero_id] = 0
    return out * np.int32(scale) if scale != 1 else out


def _pair_counts(gt_ids, gt_known, pred_ids, pred_known, pred_zero_id):
    """Pixel counts of every (gt index, pred index) pair present, as flat arrays (g, p, count).

    Indices as `index_segment_map` gives them: gt 0 = void, 1..G known, G+1 other;
    pred 0 = ``pred_zero_id``, 1..P known, P+1 other.
    """
    gt_ids, pred_ids = np.ravel(gt_ids), np.ravel(pred_ids)
    rows, cols = len(gt_known) + 2, len(pred_known) + 2
    if gt_ids.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    g_lo, g_hi = int(gt_ids.min()), int(gt_ids.max())
    p_lo, p_hi = int(pred_ids.min()), int(pred_ids.max())
    if min(g_lo, p_lo) < 0:
        raise UserInputError("segment ids must be >= 0, found {}".format(min(g_lo, p_lo)))
    if (g_hi + 1) * (p_hi + 1) <= _LUT_MAX_ID:
        # small raw ids (e.g. Cityscapes GT ids x consecutive predicted ids): count raw id pairs
        # directly and index only the few pairs present
        joint = gt_ids.astype(np.int32)
        joint *= p_hi + 1
        np.add(joint, pred_ids, out=joint, casting="unsafe")  # values < 2**22: no overflow
        counts = np.bincount(joint, minlength=(g_hi + 1) * (p_hi + 1))
        keys = np.flatnonzero(counts)
        n = counts[keys]
        return (index_segment_map(keys // (p_hi + 1), gt_known, 0).astype(np.int64),
                index_segment_map(keys % (p_hi + 1), pred_known, pred_zero_id).astype(np.int64),
                n.astype(np.int64))
    size = rows * cols
    if size < 2 ** 31:
        # gt indices come pre-multiplied so that one addition forms the pair index
        joint = index_segment_map(gt_ids, gt_known, 0, scale=cols)
        joint += index_segment_map(pred_ids, pred_known, pred_zero_id)
    else:
        joint = index_segment_map(gt_ids, gt_known, 0).astype(np.int64) * cols
        joint += index_segment_map(pred_ids, pred_known, pred_zero_id)
    if size <= _LUT_MAX_ID:
        counts = np.bincount(joint, minlength=size)
        keys = np.flatnonzero(counts)
        n = counts[keys]
    else:
        keys, n = np.unique(joint, return_counts=True)
    return keys // cols, keys % cols, n.astype(np.int64)


def image_pq_stats(gt_ids, gt_known, gt_col, gt_iscrowd, gt_area, pred_ids, pred_known, pred_col, num_cols,
                   pred_zero_id=0):
    """PQ statistics of one image.

    gt_ids: [H, W] int segment ids, 0 = void; gt_known: [G] ids of the GT segments; gt_col: [G]
    statistics column of each (``num_cols - 1`` for unknown categories, whose statistics are
    dropped); gt_iscrowd: [G] bool; gt_area: [G] areas or None (pixel counts).
    pred_ids: [H, W] int ids, ``pred_zero_id`` = void; pred_known: [P] ids; pred_col: [P] columns.
    Returns (float64 [4, num_cols] rows tp, fp, fn, iou sum; float64 [P] predicted areas;
    number of predicted pixels whose id is neither void nor in pred_known).
    """
    gt_col = np.asarray(gt_col, dtype=np.int64)
    pred_col = np.asarray(pred_col, dtype=np.int64)
    gt_iscrowd = np.asarray(gt_iscrowd, dtype=bool)
    num_gt, num_pred = gt_col.size, pred_col.size
    g, p, n = _pair_counts(gt_ids, gt_known, pred_ids, pred_known, pred_zero_id)

    pred_area_all = np.bincount(p, weights=n, minlength=num_pred + 2)
    pred_area, pred_unknown = pred_area_all[1:num_pred + 1], int(pred_area_all[num_pred + 1])
    if gt_area is None:
        gt_area = np.bincount(g, weights=n, minlength=num_gt + 2)[1:num_gt + 1]
    gt_area = np.asarray(gt_area, dtype=np.float64)
    on_void = g == 0
    pred_void = np.bincount(p[on_void], weights=n[on_void], minlength=num_pred + 2)[1:num_pred + 1]

    # overlapping (gt segment, predicted segment) pairs, 0-based
    pair = (g >= 1) & (g <= num_gt) & (p >= 1) & (p <= num_pred)
    gi, pi, inter = g[pair] - 1, p[pair] - 1, n[pair].astype(np.float64)
    same_class = (gt_col[gi] == pred_col[pi]) & ~gt_iscrowd[gi]
    union = pred_area[pi] + gt_area[gi] - inter - pred_void[pi]
    iou = np.zeros_like(inter)
    np.divide(inter, union, out=iou, where=same_class)
    match = same_class & (iou > 0.5)

    stats = np.zeros((4, num_cols), dtype=np.float64)
    stats[TP] = np.bincount(gt_col[gi[match]], minlength=num_cols)
    stats[IOU] = np.bincount(gt_col[gi[match]], weights=iou[match], minlength=num_cols)

    gt_matched = np.zeros(num_gt, dtype=bool)
    gt_matched[gi[match]] = True
    pred_matched = np.zeros(num_pred, dtype=bool)
    pred_matched[pi[match]] = True
    stats[FN] = np.bincount(gt_col[~gt_matched & ~gt_iscrowd], minlength=num_cols)

    # crowd region of each category: the last crowd segment listed (as the official dict does)
    crowd_of_col = np.full(num_cols, -1, dtype=np.int64)
    crowd_rows = np.flatnonzero(gt_iscrowd)
    np.maximum.at(crowd_of_col, gt_col[crowd_rows], crowd_rows)
    on_crowd = gi == crowd_of_col[pred_col[pi]]
    pred_crowd = np.bincount(pi[on_crowd], weights=inter[on_crowd], minlength=num_pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        mostly_ignored = (pred_void + pred_crowd) / pred_area > 0.5
    false_pos = ~pred_matched & ~mostly_ignored
    stats[FP] = np.bincount(pred_col[false_pos], minlength=num_cols)
    return stats, pred_area, pred_unknown


def _category_list(categories):
    if isinstance(categories, dict):
        categories = list(categories.values())
    cats = list(categories)
    if not cats:
        raise UserInputError("categories: the list of categories is empty")
    for c in cats:
        if not isinstance(c, dict) or "id" not in c:
            raise UserInputError("categories: every entry needs an 'id' (got {!r})".format(c))
    ids = [int(c["id"]) for c in cats]
    if len(set(ids)) != len(ids):
        raise UserInputError("categories: duplicate category ids in {}".format(ids))
    if min(ids) < 0:
        raise UserInputError("categories: category ids must be >= 0, got {}".format(min(ids)))
    return cats


def summarize_pq(stats, categories, detailed=False):
    """Turn [4, C] statistics into the official result dict.

    Returns ``{'All'|'Things'|'Stuff': {'pq','sq','rq','n'}, 'per_class': {category_id: {'pq','sq','rq'}}}``
    exactly as cityscapesscripts' `average_pq` (its `sq` is the int 0 for categories with tp = 0).
    With ``detailed`` per-class entries also carry 'name', 'tp', 'fp', 'fn'. A group with n = 0
    reports 0.0 (the official script divides by zero there).
    """
    cats = _category_list(categories)
    num = len(cats)
    stats = np.asarray(stats, dtype=np.float64)[:, :num]
    tp, fp, fn, iou = stats
    present = (tp + fp + fn) > 0
    denom = np.where(present, tp + 0.5 * fp + 0.5 * fn, 1.0)
    pq = np.where(present, iou / denom, 0.0)
    rq = np.where(present, tp / denom, 0.0)
    sq = np.where(tp > 0, iou / np.where(tp > 0, tp, 1.0), 0.0)
    isthing = np.array([c.get("isthing", 0) == 1 for c in cats])

    results = {}
    for name, group in (("All", np.ones(num, dtype=bool)), ("Things", isthing), ("Stuff", ~isthing)):
        sel = group & present
        n = int(sel.sum())
        # Python's left-to-right float sum, in category order, as the official script
        results[name] = {"pq": sum(pq[sel].tolist()) / n if n else 0.0,
                         "sq": sum(sq[sel].tolist()) / n if n else 0.0,
                         "rq": sum(rq[sel].tolist()) / n if n else 0.0,
                         "n": n}
    per_class = {}
    for i, c in enumerate(cats):
        if present[i]:
            entry = {"pq": float(pq[i]), "sq": float(sq[i]) if tp[i] > 0 else 0, "rq": float(rq[i])}
        else:
            entry = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
        if detailed:
            entry.update(name=c.get("name", str(c["id"])), tp=int(tp[i]), fp=int(fp[i]), fn=int(fn[i]))
        per_class[int(c["id"])] = entry
    results["per_class"] = per_class
    return results


def format_pq_table(results, categories):
    """The official script's text table (per class, then All/Things/Stuff) as one string."""
    names = {int(c["id"]): c.get("name", str(c["id"])) for c in _category_list(categories)}
    lines = ["{:14s}| {:>5s}  {:>5s}  {:>5s}".format("Category", "PQ", "SQ", "RQ")]
    for cid in sorted(results["per_class"]):
        r = results["per_class"][cid]
        lines.append("{:14s}| {:5.1f}  {:5.1f}  {:5.1f}".format(
            names.get(int(cid), str(cid)), 100 * r["pq"], 100 * r["sq"], 100 * r["rq"]))
    lines.append("-" * 41)
    lines.append("{:14s}| {:>5s}  {:>5s}  {:>5s} {:>5s}".format("", "PQ", "SQ", "RQ", "N"))
    for name in ("All", "Things", "Stuff"):
        r = results[name]
        lines.append("{:14s}| {:5.1f}  {:5.1f}  {:5.1f} {:5d}".format(
            name, 100 * r["pq"], 100 * r["sq"], 100 * r["rq"], r["n"]))
    return "\n".join(lines)


class PanopticEvaluator:
    """Accumulates panoptic quality over images (and ranks), cityscapesscripts rules.

    categories: list of ``{'id', 'name', 'isthing'}`` in the id space of the predictions'
    classes and of the ground-truth ``category_id`` (train ids for Cityscapes ``*_trainId.json``).
    Predictions are ``class * label_divisor + instance`` maps with ``void_label`` on void pixels.
    """

    def __init__(self, categories, label_divisor=1000, void_label=DEFAULT_VOID_LABEL):
        self.categories = _category_list(categories)
        self.label_divisor = int(label_divisor)
        self.void_label = int(void_label)
        ids = np.array([int(c["id"]) for c in self.categories], dtype=np.int64)
        self.num_categories = len(ids)
        # category id -> statistics column; the extra last column collects unknown gt categories
        self._col_of_id = np.full(int(ids.max()) + 2, self.num_categories, dtype=np.int64)
        self._col_of_id[ids] = np.arange(self.num_categories)
        self.reset()

    def reset(self):
        """Forget all accumulated images."""
        self.stats = np.zeros((4, self.num_categories + 1), dtype=np.float64)
        self.num_images = 0

    def _columns(self, category_ids, where, strict):
        cat = np.asarray(category_ids, dtype=np.int64)
        cols = np.full(cat.shape, self.num_categories, dtype=np.int64)
        inside = (cat >= 0) & (cat < self._col_of_id.size)
        cols[inside] = self._col_of_id[cat[inside]]
        if strict and np.any(cols == self.num_categories):
            bad = sorted(set(cat[cols == self.num_categories].tolist()))
            raise UserInputError("{}: category ids {} are not among the categories {}".format(
                where, bad, [int(c["id"]) for c in self.categories]))
        return cols

    def _gt_arrays(self, gt_segments_info, where):
        info = list(gt_segments_info)
        try:
            ids = np.array([int(s["id"]) for s in info], dtype=np.int64)
            cats = np.array([int(s["category_id"]) for s in info], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as e:
            raise UserInputError("{}: every segments_info entry needs integer 'id' and 'category_id' ({})".format(where, e))
        if ids.size and (ids == 0).any():
            raise UserInputError("{}: segment id 0 is reserved for void".format(where))
        if np.unique(ids).size != ids.size:
            raise UserInputError("{}: duplicate segment ids in segments_info".format(where))
        crowd = np.array([int(s.get("iscrowd", 0)) == 1 for s in info], dtype=bool)
        return ids, self._columns(cats, where, strict=False), crowd

    def update(self, pred_panoptic, gt_segment_ids, gt_segments_info):
        """Add one image.

        pred_panoptic: [H, W] int (numpy or paddle) ``class * label_divisor + instance``,
        ``void_label`` on void. gt_segment_ids: [H, W] int segment ids (rgb2id of the GT PNG,
        0 = void). gt_segments_info: the GT JSON list (``id``, ``category_id``, ``iscrowd``).
        Ground-truth areas are counted on the map.
        """
        pred = _to_numpy(pred_panoptic)
        gt = _to_numpy(gt_segment_ids)
        if pred.shape != gt.shape or pred.ndim != 2:
            raise UserInputError("prediction shape {} and ground truth shape {} must be equal [H, W]".format(
                pred.shape, gt.shape))
        gt_ids, gt_col, gt_crowd = self._gt_arrays(gt_segments_info, "ground truth")
        flat = pred.ravel()
        if flat.size and flat.min() < 0:
            raise UserInputError("prediction: panoptic labels must be >= 0, found {}".format(int(flat.min())))
        if flat.size and flat.max() < _LUT_MAX_ID:
            pred_ids = np.flatnonzero(np.bincount(flat))
        else:
            pred_ids = np.unique(flat)
        pred_ids = pred_ids[pred_ids != self.void_label]
        pred_col = self._columns(pred_ids // self.label_divisor, "prediction (void_label={})".format(
            self.void_label), strict=True)
        stats, _, _ = image_pq_stats(gt, gt_ids, gt_col, gt_crowd, None, flat, pred_ids, pred_col,
                                     self.num_categories + 1, pred_zero_id=self.void_label)
        self.stats += stats
        self.num_images += 1

    def update_segments(self, pred_segment_ids, pred_segments_info, gt_segment_ids, gt_segments_info,
                        gt_area_from_json=True, image_id=None):
        """Add one image given in the COCO/Cityscapes panoptic format on both sides.

        pred_segment_ids / gt_segment_ids: [H, W] int (rgb2id of the PNGs, 0 = void);
        *_segments_info: the JSON lists. Predicted segments must match the PNG exactly (as the
        official script checks). With ``gt_area_from_json`` the GT JSON ``area`` is used (official
        behaviour), falling back to pixel counts where it is missing.
        """
        where = "image {}".format(image_id) if image_id is not None else "image"
        pred = np.ravel(_to_numpy(pred_segment_ids))
        gt = np.ravel(_to_numpy(gt_segment_ids))
        if pred.shape != gt.shape:
            raise UserInputError("{}: prediction and ground truth PNGs differ in size".format(where))
        gt_ids, gt_col, gt_crowd = self._gt_arrays(gt_segments_info, where + " ground truth")
        gt_area = None
        if gt_area_from_json and all("area" in s for s in gt_segments_info):
            gt_area = np.array([float(s["area"]) for s in gt_segments_info], dtype=np.float64)
        info = list(pred_segments_info)
        try:
            pred_ids = np.array([int(s["id"]) for s in info], dtype=np.int64)
            pred_cat = np.array([int(s["category_id"]) for s in info], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as e:
            raise UserInputError("{} prediction: every segments_info entry needs integer 'id' and "
                                 "'category_id' ({})".format(where, e))
        if pred_ids.size and (pred_ids == 0).any():
            raise UserInputError("{} prediction: segment id 0 is reserved for void".format(where))
        if np.unique(pred_ids).size != pred_ids.size:
            raise UserInputError("{} prediction: duplicate segment ids in segments_info".format(where))
        pred_col = self._columns(pred_cat, where + " prediction", strict=True)
        stats, pred_area, unknown = image_pq_stats(gt, gt_ids, gt_col, gt_crowd, gt_area, pred, pred_ids,
                                                   pred_col, self.num_categories + 1)
        if unknown:
            extra = np.setdiff1d(np.unique(pred), np.concatenate([pred_ids, [0]]))
            raise UserInputError("{}: segment ids {} are in the prediction PNG and not in its JSON".format(
                where, extra[:10].tolist()))
        if (pred_area == 0).any():
            raise UserInputError("{}: segment ids {} are in the prediction JSON and not in its PNG".format(
                where, pred_ids[pred_area == 0][:10].tolist()))
        self.stats += stats
        self.num_images += 1

    def state(self):
        """Accumulated statistics: ``{'stats': float64 [4, C+1] (tp, fp, fn, iou), 'num_images': int}``."""
        return {"stats": self.stats.copy(), "num_images": self.num_images}

    def merge(self, state):
        """Add the statistics of another evaluator's `state()` (same categories)."""
        stats = np.asarray(state["stats"], dtype=np.float64)
        if stats.shape != self.stats.shape:
            raise ValueError("cannot merge statistics of shape {} into {}".format(stats.shape, self.stats.shape))
        self.stats += stats
        self.num_images += int(state.get("num_images", 0))

    def all_reduce(self):
        """Sum the statistics over all paddle.distributed ranks (no-op with one rank)."""
        packed = np.concatenate([self.stats.ravel(), [float(self.num_images)]])
        packed = all_reduce_sum(packed)
        self.stats = packed[:-1].reshape(self.stats.shape)
        self.num_images = int(round(packed[-1]))

    def evaluate(self, detailed=False):
        """Result dict of `summarize_pq` for everything accumulated so far."""
        return summarize_pq(self.stats, self.categories, detailed=detailed)
