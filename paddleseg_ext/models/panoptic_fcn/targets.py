"""PanopticFCN training targets that need only the annotation (numpy, in the data workers).

Division of the work (see also `assign.py`, the model side):

- here, per sample after augmentation: which pixels belong to which thing instance and to which
  class, sampled at stride 4; instance boxes, mass centres, FPN level assignment and the
  per-level thing-centre heatmaps;
- in the model's `loss` (paddle): the soft stride-4 masks and stuff maps built from those samples,
  the per-level stuff targets, and the top-k positive kernels, which need the predicted heatmap.

Stride-4 soft maps. The original resizes binary full-resolution masks (and the one-hot semantic
map) bilinearly to 1/4 size (align_corners=False). For an image whose sides are multiples of 4
that resize reads, for stride-4 pixel (i, j), exactly the four full-resolution pixels
(4i+1|4i+2, 4j+1|4j+2) with weight 1/4 each. So the generator stores those four samples of the
instance-slot map and of the train-id map (`[4, H/4, W/4]` int arrays, cheap to collate), and the
model averages their one-hot encodings: the same soft values, without a [num_masks, H, W] array.

Conventions (the original's, made explicit):
- void pixels (segment id not in `segments_info`, e.g. 0): train id `ignore_index`; they are in
  no instance and in no stuff channel (all-zero one-hot: a negative of every stuff class);
- crowd thing segments (`iscrowd` 1): not instances (no centre, no mask target, not counted),
  but their pixels carry their thing class, i.e. the stuff head's "things" channel;
- thing instances: the non-crowd thing segments present in the map, in `segments_info` order;
  at most `max_instances` (the original's TENSOR_DIM 100) per image, later ones are dropped;
- mass centre: mean (y, x) of the stride-4 pixels where the soft mask is > 0 (any of the four
  samples in the instance), in stride-4 pixels; at level l it is ``floor(c * size_l / size_4)``,
  clamped into the map;
- level assignment: ``lo <= sqrt(box_h * box_w) <= hi`` with the box in input pixels (inclusive
  bounds; the ranges overlap, so an instance can be on two levels);
- heatmap: CornerNet ``gaussian_radius`` of the box scaled to the level (h * size_l / H,
  w * size_l / W) and `min_overlap`, truncated to int, sigma = (2r + 1) / gaussian_sigma, drawn
  at the integer centre on the instance's class channel inside a (2r+1)^2 window, max-merged.
  (The original also zeroes values below float eps times the peak; for these radii the smallest
  value is exp(-9/4), so that never happens.)
"""
import numpy as np
from paddleseg.cvlibs import manager

from ...transforms.target_generator import segment_index_map
from ...utils import UserInputError

#: strides of the position / kernel levels P3..P7 (the model's and the targets')
DEFAULT_STRIDES = (8, 16, 32, 64, 128)
DEFAULT_INSTANCE_SCALES = ((1, 64), (32, 128), (64, 256), (128, 512), (256, 2048))


def feature_size(size, stride):
    """Side of a feature map at `stride` (a power of 2) for an input side `size`: the network's
    stride-2 3x3 convolutions (padding 1) give ceil(size / 2) at each halving."""
    stride = int(stride)
    if stride < 1 or stride & (stride - 1):
        raise UserInputError("strides must be powers of 2, got {}".format(stride))
    size = int(size)
    while stride > 1:
        size = (size + 1) // 2
        stride //= 2
    return size


def gaussian_radius(height, width, min_overlap=0.7):
    """CornerNet's radius: the smallest of the three quadratic roots that keep a box of
    `height` x `width` (arrays, any shape) at IoU >= `min_overlap` when its corners move."""
    h = np.asarray(height, dtype=np.float64)
    w = np.asarray(width, dtype=np.float64)
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + np.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return np.minimum(r1, np.minimum(r2, r3))


def assign_levels(sqrt_areas, instance_scales):
    """[L, N] bool: instance n is on level l when ``lo_l <= sqrt_areas[n] <= hi_l``."""
    s = np.asarray(sqrt_areas, dtype=np.float64).reshape(1, -1)
    scales = np.asarray(instance_scales, dtype=np.float64).reshape(-1, 2)
    return (s >= scales[:, :1]) & (s <= scales[:, 1:])


def subsample4(label):
    """[H, W] -> [4, H/4, W/4]: the four pixels (4i+1|4i+2, 4j+1|4j+2) of each 4x4 cell, the ones a
    1/4 bilinear resize (align_corners=False) averages. H and W must be multiples of 4."""
    return np.stack([label[1::4, 1::4], label[1::4, 2::4], label[2::4, 1::4], label[2::4, 2::4]])


def mass_centers(index_maps, num):
    """Mean (y, x) of the pixels of each of `num` regions.

    Args:
        index_maps: [P, h, w] (or [h, w]) int arrays; a pixel belongs to region m (0 <= m < num)
            when any of the P maps holds m there (values outside [0, num) belong to none).
    Returns:
        centers [num, 2] float64 (y, x), NaN for an empty region; counts [num] int64 pixels.
    """
    maps = np.asarray(index_maps)
    if maps.ndim == 2:
        maps = maps[None]
    _, h, w = maps.shape
    pix = np.broadcast_to(np.arange(h * w, dtype=np.int64).reshape(1, h, w), maps.shape)
    inside = (maps >= 0) & (maps < num)
    codes = np.unique(maps[inside].astype(np.int64) * (h * w) + pix[inside])  # (region, pixel) pairs
    region, p = codes // (h * w), codes % (h * w)
    counts = np.bincount(region, minlength=num)[:num]
    sy = np.bincount(region, weights=(p // w).astype(np.float64), minlength=num)[:num]
    sx = np.bincount(region, weights=(p % w).astype(np.float64), minlength=num)[:num]
    with np.errstate(invalid="ignore", divide="ignore"):
        centers = np.stack([sy / counts, sx / counts], axis=1)
    return centers, counts.astype(np.int64)


def region_boxes(index_map, num):
    """Bounding boxes of regions 0..num-1 of an [H, W] int map (other values: no region).

    Returns [num, 4] int64 (y0, x0, y1, x1), inclusive; rows of an empty region are (0, 0, -1, -1).
    """
    idx = np.asarray(index_map)
    h, w = idx.shape
    slot = np.where((idx >= 0) & (idx < num), idx, num).astype(np.int64)
    rows = np.zeros((num + 1, h), dtype=bool)
    cols = np.zeros((num + 1, w), dtype=bool)
    rows[slot, np.arange(h)[:, None]] = True
    cols[slot, np.arange(w)[None, :]] = True
    rows, cols = rows[:num], cols[:num]
    present = rows.any(axis=1)
    y0 = np.argmax(rows, axis=1)
    y1 = h - 1 - np.argmax(rows[:, ::-1], axis=1)
    x0 = np.argmax(cols, axis=1)
    x1 = w - 1 - np.argmax(cols[:, ::-1], axis=1)
    boxes = np.stack([y0, x0, y1, x1], axis=1).astype(np.int64)
    boxes[~present] = (0, 0, -1, -1)
    return boxes


def draw_heatmaps(num_classes, height, width, classes, centers, radii, sigma_factor=3.0):
    """Max-merged Gaussian peaks, one per instance, without a loop over instances.

    Args:
        num_classes, height, width (int): output [num_classes, height, width].
        classes: [N] int channel of each instance; centers: [N, 2] int (y, x) inside the map;
        radii: [N] int >= 0; sigma = (2r + 1) / sigma_factor; the window is (2r+1) x (2r+1).
    Returns:
        float32 [num_classes, height, width].
    """
    heat = np.zeros((num_classes, height, width), dtype=np.float32)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if classes.size == 0:
        return heat
    centers = np.asarray(centers, dtype=np.int64).reshape(-1, 2)
    radii = np.asarray(radii, dtype=np.int64).reshape(-1)
    big = int(radii.max())
    d = np.arange(-big, big + 1, dtype=np.int64)
    dy, dx = d.reshape(1, -1, 1), d.reshape(1, 1, -1)
    r = radii.reshape(-1, 1, 1)
    sigma = (2.0 * r + 1.0) / float(sigma_factor)
    g = np.exp(-(dy * dy + dx * dx) / (2.0 * sigma * sigma))
    y = centers[:, 0].reshape(-1, 1, 1) + dy
    x = centers[:, 1].reshape(-1, 1, 1) + dx
    ok = (np.abs(dy) <= r) & (np.abs(dx) <= r) & (y >= 0) & (y < height) & (x >= 0) & (x < width)
    flat = (classes.reshape(-1, 1, 1) * height + y) * width + x
    np.maximum.at(heat.reshape(-1), flat[ok], g[ok].astype(np.float32))
    return heat


@manager.TRANSFORMS.add_component
class PanopticFCNTargetGenerator:
    """PanopticFCN's annotation-only targets for one (augmented, padded) sample.

    Use it as a dataset's ``target_generator: {type: PanopticFCNTargetGenerator, thing_ids: [...], ...}``.
    In a YAML config give `thing_ids` (the dataset's thing classes, as the model's): PaddleSeg's
    ``SegBuilder`` builds every nested ``type:`` block itself, before the dataset could fill it in;
    a dict passed to a dataset in Python gets `thing_ids`, `ignore_index` and `label_divisor` from
    the dataset. See the module docstring for the rules.

    Args:
        thing_ids (list[int]): thing train ids; heatmap channel t is ``sorted(thing_ids)[t]``.
        ignore_index (int): train id written on void pixels (255).
        label_divisor (int): unused here, accepted for the dataset's arguments.
        strides (list[int]): strides of the position levels (P3..P7: 8..128).
        instance_scales (list[[lo, hi]]): sqrt(box area) range of each level, inclusive.
        min_overlap (float): CornerNet radius overlap (MIN_OVERLAP 0.7).
        gaussian_sigma (float): sigma = (2r + 1) / gaussian_sigma (GAUSSIAN_SIGMA 3).
        max_instances (int): instance capacity M per image (TENSOR_DIM 100).
        size_divisor (int): input sides must be multiples of it (32, the FPN's).

    Returns (dict of numpy arrays; every key is in `sample_keys`):
        ``fcn_semantic4`` int64 [4, H/4, W/4]: train id at the four samples of each stride-4 pixel
        (`ignore_index` on void); ``fcn_instance4`` int64 [4, H/4, W/4]: instance slot there
        (M for none); ``fcn_classes`` int64 [M]: train id of each slot (0 when unused);
        ``fcn_levels`` float32 [L, M]: 1 where slot m is a valid instance assigned to level l
        (valid slots are 0..n-1); ``fcn_center_l{i}`` float32 [T, h_i, w_i]: heatmap of level i.
    """

    def __init__(self, thing_ids=None, ignore_index=255, label_divisor=1000, strides=DEFAULT_STRIDES,
                 instance_scales=DEFAULT_INSTANCE_SCALES, min_overlap=0.7, gaussian_sigma=3,
                 max_instances=100, size_divisor=32):
        if thing_ids is None:
            raise UserInputError("PanopticFCNTargetGenerator: give `thing_ids` (the dataset's thing classes, as in "
                                 "the model block) in the target_generator block")
        self.thing_ids = np.asarray(sorted({int(t) for t in thing_ids}), dtype=np.int64)
        self.ignore_index = int(ignore_index)
        self.strides = [int(s) for s in strides]
        self.instance_scales = [(float(lo), float(hi)) for lo, hi in instance_scales]
        if len(self.instance_scales) != len(self.strides):
            raise UserInputError("PanopticFCNTargetGenerator: {} instance_scales for {} strides".format(
                len(self.instance_scales), len(self.strides)))
        for s in self.strides:
            feature_size(1, s)  # checks powers of 2
        self.min_overlap = float(min_overlap)
        self.gaussian_sigma = float(gaussian_sigma)
        self.max_instances = int(max_instances)
        if self.max_instances < 1:
            raise UserInputError("max_instances must be >= 1, got {}".format(max_instances))
        self.size_divisor = int(size_divisor)
        if self.size_divisor % 4:
            raise UserInputError("size_divisor must be a multiple of 4, got {}".format(size_divisor))
        self.sample_keys = ("fcn_semantic4", "fcn_instance4", "fcn_classes", "fcn_levels") + tuple(
            "fcn_center_l{}".format(i) for i in range(len(self.strides)))

    def __call__(self, panoptic, segments_info):
        panoptic = np.asarray(panoptic)
        if panoptic.ndim != 2:
            raise ValueError("panoptic must be [H, W], got shape {}".format(panoptic.shape))
        h, w = panoptic.shape
        if h % self.size_divisor or w % self.size_divisor:
            raise UserInputError(
                "PanopticFCNTargetGenerator: sample of {}x{} (h x w) is not padded to a multiple of {}; "
                "end the transforms with PanopticPadding (or crop) to such a size".format(h, w, self.size_divisor))
        m_cap, num_t = self.max_instances, int(self.thing_ids.size)
        k = len(segments_info)
        seg_ids = np.array([int(s["id"]) for s in segments_info], dtype=np.int64)
        cats = np.array([int(s["category_id"]) for s in segments_info], dtype=np.int64)
        crowd = np.array([bool(s.get("iscrowd", 0)) for s in segments_info], dtype=bool)
        sidx = segment_index_map(panoptic, seg_ids)  # k marks void
        area = np.bincount(sidx.ravel(), minlength=k + 1)[:k]
        inst_seg = np.nonzero(np.isin(cats, self.thing_ids) & ~crowd & (area > 0))[0][:m_cap]
        n = inst_seg.size

        semantic_lut = np.append(cats, self.ignore_index)
        slot_lut = np.full(k + 1, m_cap, dtype=np.int64)
        slot_lut[inst_seg] = np.arange(n)
        slots = slot_lut[sidx]
        out = {
            "fcn_semantic4": subsample4(semantic_lut[sidx]).astype(np.int64),
            "fcn_instance4": subsample4(slots).astype(np.int64),
        }
        classes = np.zeros(m_cap, dtype=np.int64)
        classes[:n] = cats[inst_seg]
        out["fcn_classes"] = classes

        boxes = region_boxes(slots, n)
        box_h = (boxes[:, 2] - boxes[:, 0] + 1).astype(np.float64)
        box_w = (boxes[:, 3] - boxes[:, 1] + 1).astype(np.float64)
        on_level = assign_levels(np.sqrt(box_h * box_w), self.instance_scales)  # [L, n]
        levels = np.zeros((len(self.strides), m_cap), dtype=np.float32)
        levels[:, :n] = on_level
        out["fcn_levels"] = levels

        h4, w4 = h // 4, w // 4
        centers4, _ = mass_centers(out["fcn_instance4"], n)
        # A tiny instance can miss all four samples of every cell: it has no stride-4 support, no
        # mask target and no centre; it keeps its slot but is taken off every level.
        has_support = np.isfinite(centers4).all(axis=1) if n else np.zeros(0, dtype=bool)
        levels[:, :n] *= has_support.astype(np.float32)
        t_channel = np.searchsorted(self.thing_ids, classes[:n])
        for i, stride in enumerate(self.strides):
            hl, wl = feature_size(h, stride), feature_size(w, stride)
            sel = np.nonzero(levels[i, :n] > 0)[0]
            c = centers4[sel]
            cy = np.clip(np.floor(c[:, 0] * hl / h4), 0, hl - 1).astype(np.int64)
            cx = np.clip(np.floor(c[:, 1] * wl / w4), 0, wl - 1).astype(np.int64)
            radius = gaussian_radius(box_h[sel] * hl / h, box_w[sel] * wl / w, self.min_overlap)
            radius = np.maximum(radius, 0).astype(np.int64)
            out["fcn_center_l{}".format(i)] = draw_heatmaps(
                num_t, hl, wl, t_channel[sel], np.stack([cy, cx], axis=1), radius, self.gaussian_sigma)
        return out
