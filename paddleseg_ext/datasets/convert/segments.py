"""Segments of a painted label: per-pixel class and instance key -> segment id map + segments_info,
with np.bincount-style grouping (no loop over pixels, instances or classes)."""
import numpy as np

from panoptic_metrics.formats import segment_boxes


def compact_ids(values):
    """Group equal non-negative ints.

    Args:
        values: int array (any shape), values >= 0.
    Returns:
        (index int32 array of `values`' shape, 0..K-1 in increasing value order; the K distinct values
        int64 [K]; their counts int64 [K]). A bincount over the value range when it is small (a few
        times the number of elements), np.unique otherwise.
    """
    flat = np.asarray(values).ravel()
    if flat.size == 0:
        return np.zeros(np.shape(values), np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    vmax = int(flat.max())
    if vmax < max(4 * flat.size, 1 << 16):
        counts = np.bincount(flat, minlength=vmax + 1)
        present = np.flatnonzero(counts)
        lut = np.zeros(vmax + 1, np.int32)
        lut[present] = np.arange(present.size, dtype=np.int32)
        return lut[values], present.astype(np.int64), counts[present].astype(np.int64)
    uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    return inverse.reshape(np.shape(values)).astype(np.int32), uniq.astype(np.int64), counts.astype(np.int64)


def build_segments(class_map, instance_map, isthing):
    """Segments of one image, COCO panoptic style.

    Args:
        class_map: int [H, W] train id (index into the categories), -1 on void.
        instance_map: int [H, W] >= 0; pixels of a thing class with the same positive key form one
            instance, key 0 on a thing class is its crowd region (one segment per class). Ignored on
            stuff (all pixels of a stuff class form one segment) and on void.
        isthing: bool [C] per train id.
    Returns:
        (segment ids int32 [H, W], 0 on void and 1..N ordered by (class, instance key); dict of [N]
        arrays 'class', 'instance' (the key), 'area', 'iscrowd', 'bbox' ([N, 4] x, y, w, h)).
    """
    class_map = np.asarray(class_map)
    isthing = np.asarray(isthing, bool)
    # class -1 (void) picks the appended False: one gather, no mask of the labelled pixels
    keep_instance = np.append(isthing, False)[class_map]
    instance_map = np.where(keep_instance, instance_map, 0)
    top = int(instance_map.max(initial=0)) + 1
    if (isthing.size + 1) * top <= 4 * instance_map.size:
        # small id range (8/16-bit PNGs): the keys below stay small without renumbering the instances
        inst_idx, inst_values = instance_map, np.arange(top, dtype=np.int64)
    else:
        inst_idx, inst_values, _ = compact_ids(instance_map)
    k = max(inst_values.size, 1)
    # void pixels (class -1, instance key 0 -> index 0) get key 0; every other key is >= 1
    dtype = np.int32 if (isthing.size + 1) * k < 2 ** 31 else np.int64
    key = (class_map.astype(dtype, copy=False) + 1) * k + inst_idx
    seg_idx, keys, areas = compact_ids(key)
    if keys.size and keys[0] == 0:
        seg_map, keys, areas = seg_idx, keys[1:], areas[1:]
    else:
        seg_map = seg_idx + 1
    n = keys.size
    classes = keys // k - 1
    instances = inst_values[keys % k] if inst_values.size else np.zeros(n, np.int64)
    x0, y0, bw, bh = segment_boxes(seg_map, n)
    return seg_map.astype(np.int32, copy=False), {
        "class": classes, "instance": instances, "area": areas,
        "iscrowd": isthing[classes] & (instances == 0) if n else np.zeros(0, bool),
        "bbox": np.stack([x0, y0, bw, bh], axis=1) if n else np.zeros((0, 4), np.int64)}


def segments_info(segments, category_ids):
    """The json ``segments_info`` list of `build_segments`' arrays (ids 1..N, the user's category ids)."""
    cats = np.asarray(category_ids, np.int64)[segments["class"]]
    return [{"id": i + 1, "category_id": c, "iscrowd": int(crowd), "area": a, "bbox": box}
            for i, (c, crowd, a, box) in enumerate(zip(cats.tolist(), segments["iscrowd"].tolist(),
                                                       segments["area"].tolist(), segments["bbox"].tolist()))]
