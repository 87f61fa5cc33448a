"""Panoptic-DeepLab training targets from a panoptic label map (tech report "Panoptic-DeepLab in PyTorch",
Cheng et al., section 2.1.4)."""
import numpy as np
from paddleseg.cvlibs import manager
from scipy import ndimage

# Segment ids below this bound are mapped through a lookup table (one gather per pixel);
# larger ids (COCO's RGB-encoded ids reach 256^3) fall back to a binary search.
_LUT_MAX_ID = 1 << 20


def segment_index_map(panoptic, segment_ids):
    """Position of each pixel's segment in `segment_ids`.

    Args:
        panoptic: [H, W] int array of segment ids.
        segment_ids: [K] ints, the ids listed in the json (unique).
    Returns:
        [H, W] int32 array with values in 0..K-1, and K for pixels whose id is not listed
        (void, id 0, or an id missing from the json).
    """
    panoptic = np.asarray(panoptic)
    segment_ids = np.asarray(segment_ids, dtype=np.int64).reshape(-1)
    k = segment_ids.size
    if k == 0:
        return np.zeros(panoptic.shape, dtype=np.int32)
    if panoptic.size == 0:
        return np.full(panoptic.shape, k, dtype=np.int32)
    max_id = max(int(panoptic.max()), int(segment_ids.max()))
    if int(panoptic.min()) >= 0 and max_id < _LUT_MAX_ID:
        lut = np.full(max_id + 1, k, dtype=np.int32)
        valid = segment_ids >= 0
        lut[segment_ids[valid]] = np.nonzero(valid)[0].astype(np.int32)
        return lut[panoptic]
    order = np.argsort(segment_ids, kind="stable")
    sorted_ids = segment_ids[order]
    pos = np.clip(np.searchsorted(sorted_ids, panoptic), 0, k - 1)
    found = sorted_ids[pos] == panoptic
    return np.where(found, order[pos], k).astype(np.int32)


def gaussian_kernel(sigma):
    """[6*sigma+3, 6*sigma+3] float32 Gaussian of peak 1 at its centre (index 3*sigma+1)."""
    radius = int(3 * sigma + 1)
    d = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2.0 * sigma * sigma))
    return g.astype(np.float32)


def instance_numbers(cats, thing_pos):
    """Instance numbers int64 [K] of K segments of classes `cats` [K]: 1, 2, ... per thing class in segment
    order for the segments `thing_pos` (the thing segments present in the map), 0 for the others."""
    instance = np.zeros(cats.size, dtype=np.int64)
    if thing_pos.size:
        t_cats = cats[thing_pos]
        order = np.argsort(t_cats, kind="stable")
        sorted_cats = t_cats[order]
        first = np.searchsorted(sorted_cats, sorted_cats, side="left")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size) - first
        instance[thing_pos] = rank + 1
    return instance


@manager.TRANSFORMS.add_component
class PanopticTargetGenerator:
    """Builds the six Panoptic-DeepLab targets (and the panoptic ground truth) from segment ids.

    Args:
        ignore_index (int): semantic label of void pixels (and of crowd pixels when
            `ignore_crowd_in_semantic`).
        thing_ids (list[int]): category (train) ids of the 'thing' classes.
        sigma (float): standard deviation of the centre Gaussian, in pixels.
        ignore_stuff_in_offset (bool): if True offsets are learnt only on thing pixels.
        small_instance_area (int): thing instances with fewer pixels get a larger semantic weight.
        small_instance_weight (float): that weight.
        ignore_crowd_in_semantic (bool): label crowd pixels `ignore_index` in `semantic`.
        label_divisor (int): panoptic label = class * label_divisor + instance.
    """

    #: keys of the returned dict that go into a dataset sample (`centers` has a variable length)
    sample_keys = ("semantic", "center", "offset", "semantic_weights", "center_weights", "offset_weights",
                   "panoptic")

    def __init__(self, ignore_index, thing_ids, sigma=8, ignore_stuff_in_offset=True,
                 small_instance_area=4096, small_instance_weight=3, ignore_crowd_in_semantic=False,
                 label_divisor=1000):
        self.ignore_index = int(ignore_index)
        self.thing_ids = [int(t) for t in thing_ids]
        self.sigma = sigma
        self.ignore_stuff_in_offset = bool(ignore_stuff_in_offset)
        self.small_instance_area = small_instance_area
        self.small_instance_weight = small_instance_weight
        self.ignore_crowd_in_semantic = bool(ignore_crowd_in_semantic)
        self.label_divisor = int(label_divisor)
        self._gaussian = gaussian_kernel(sigma)
        self._radius = int(3 * sigma + 1)

    def __call__(self, panoptic, segments_info):
        """Compute the targets.

        Args:
            panoptic: [H, W] int array of segment ids (`rgb2id` of the panoptic PNG); ids not in
                `segments_info` (e.g. 0) are void.
            segments_info: list of dicts with `id`, `category_id` (a train id) and optionally
                `iscrowd`.
        Returns:
            dict of numpy arrays: `semantic` [H,W] int64, `center` [1,H,W] float32, `offset`
            [2,H,W] float32 (dy, dx, centre minus pixel), `semantic_weights`, `center_weights`,
            `offset_weights` [H,W] float32, `panoptic` [H,W] int64 (class * label_divisor +
            instance, instance from 1 per thing class in segments order, 0 for stuff,
            ignore_index * label_divisor on void), and `centers` [N,2] float64 (y, x) of the
            thing segments present, in segments order.
        """
        panoptic = np.asarray(panoptic)
        if panoptic.ndim != 2:
            raise ValueError("panoptic must be [H, W], got shape {}".format(panoptic.shape))
        h, w = panoptic.shape
        k = len(segments_info)
        seg_ids = np.array([int(s["id"]) for s in segments_info], dtype=np.int64)
        cats = np.array([int(s["category_id"]) for s in segments_info], dtype=np.int64)
        crowd = np.array([bool(s.get("iscrowd", 0)) for s in segments_info], dtype=bool)
        is_thing = np.isin(cats, self.thing_ids)

        sidx = segment_index_map(panoptic, seg_ids)  # K marks void
        area = np.bincount(sidx.ravel(), minlength=k + 1)[:k]
        present = area > 0
        small_thing = is_thing & present & (area < self.small_instance_area)

        # Per-segment values, with one extra slot (index K) for void; gathered once per pixel.
        semantic_lut = np.append(cats, self.ignore_index)
        if self.ignore_crowd_in_semantic:
            semantic_lut[:k][crowd] = self.ignore_index
        sem_w_lut = np.append(np.where(small_thing, self.small_instance_weight, 1), 1).astype(np.float32)
        ctr_w_lut = np.append(~crowd, False).astype(np.float32)
        off_mask = ~crowd & is_thing if self.ignore_stuff_in_offset else ~crowd
        off_w_lut = np.append(off_mask, False).astype(np.float32)

        thing_pos = np.nonzero(is_thing & present)[0]
        instance = instance_numbers(cats, thing_pos)
        pan_lut = np.append(cats * self.label_divisor + instance, self.ignore_index * self.label_divisor)

        out = {
            "semantic": semantic_lut[sidx].astype(np.int64, copy=False),
            "semantic_weights": sem_w_lut[sidx],
            "center_weights": ctr_w_lut[sidx],
            "offset_weights": off_w_lut[sidx],
            "panoptic": pan_lut[sidx],
        }
        out["center"], out["offset"], out["centers"] = self._centres_and_offsets(sidx, area, thing_pos)
        return out

    def _centres_and_offsets(self, sidx, area, thing_pos):
        """Centre heatmap [1, H, W] float32 (Gaussian at each thing's mass centre, max where they overlap),
        offsets [2, H, W] float32 (centre minus pixel, on the thing's pixels) and centres [N, 2] float64
        (y, x) of the segments `thing_pos` (indices into the K segments of `sidx`, K = void)."""
        h, w = sidx.shape
        k = area.size
        center = np.zeros((1, h, w), dtype=np.float32)
        offset = np.zeros((2, h, w), dtype=np.float32)
        centers = np.zeros((thing_pos.size, 2), dtype=np.float64)
        if not thing_pos.size:
            return center, offset, centers
        # Bounding boxes of every segment in one pass; each instance below only touches its box.
        boxes = ndimage.find_objects(sidx + 1, max_label=k) if k else []
        g, r = self._gaussian, self._radius
        for n, s in enumerate(thing_pos):
            ys, xs = boxes[s]
            mask = sidx[ys, xs] == s
            rows = np.arange(ys.start, ys.stop)
            cols = np.arange(xs.start, xs.stop)
            # centre of mass from the mask's row/column counts (exact integer sums)
            cy = float(mask.sum(1) @ rows) / area[s]
            cx = float(mask.sum(0) @ cols) / area[s]
            centers[n] = (cy, cx)
            np.copyto(offset[0, ys, xs], (cy - rows)[:, None], where=mask, casting="unsafe")
            np.copyto(offset[1, ys, xs], (cx - cols)[None, :], where=mask, casting="unsafe")
            y0, x0 = int(np.round(cy)), int(np.round(cx))
            t, b = max(0, y0 - r), min(h, y0 + r + 1)
            lft, rgt = max(0, x0 - r), min(w, x0 + r + 1)
            win = center[0, t:b, lft:rgt]
            np.maximum(win, g[t - (y0 - r):b - (y0 - r), lft - (x0 - r):rgt - (x0 - r)], out=win)
        return center, offset, centers
