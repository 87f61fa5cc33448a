"""The Panoptic-DeepLab post-processing steps as Paddle tensor functions (tech report seed 004, 2.3).

One implementation for both uses: `panoptic_postprocess` calls these eagerly, and the exported
inference model (`PanopticPostprocess`) traces the very same calls into a static graph. For that,
every step is written with graph-friendly ops only: sizes that depend on the data (number of
centres K, of thing pixels P) stay tensors, and no Python branch depends on a tensor's value (the
branches here test Python settings such as `top_k is None` or the number of thing classes).
The functions are marked `not_to_static`, so tracing runs them as written instead of rewriting
their Python code.

Rules and tie-breaking (the contract of `panoptic_postprocess`):
1. centres: positions above max(threshold, 0) that equal their k x k window maximum; with more
   than top_k, the top_k highest (ties: lower raster index), kept in raster order;
2. every thing pixel joins the centre nearest to (y, x) + offset (exact float64 distances, ties:
   lower centre index);
3. each instance takes the majority thing class of its pixels (ties: smaller class id) and is
   numbered from 1 per class in centre order; stuff classes with fewer than stuff_area pixels
   and thing pixels when there is no centre become void.
"""
import numpy as np
import paddle
import paddle.nn.functional as F
from paddle.static.nn import while_loop

from ..compat import argsort_stable, bincount, flatten_bool, floor_divmod, raster_yx

# Thing pixels x centres per block of the grouping matmul: 2^18 float64 scores = 2 MB, small enough
# to stay in cache between the matmul and the argmin that reads it back (eager CPU, 525k thing
# pixels x 31: ~45 ms against ~50-90 ms with 2^21 and ~130 ms in one block). Grouping needs at
# most one such block beyond a few per-thing-pixel vectors, whatever K is, eagerly and traced.
GROUP_BLOCK = 1 << 18
# Where the extra "no centre" candidate sits: its squared distance (~2e16) exceeds that to any
# real centre, so it wins only when K = 0, and keeps argmin defined then without a branch.
_FAR_AWAY = 1e8


def class_tables(thing_ids, num_classes, void_label):
    """Look-up tables over class ids 0..num_classes-1, as numpy (constants of the graph).

    Args:
        thing_ids: sorted unique int64 numpy array of thing class ids (ids >= num_classes are
            ignored: they cannot occur in the semantic map).
        num_classes (int): length of the tables.
        void_label (int): the void label; thing codes are chosen below it and below 0.
    Returns:
        thing_code: [num_classes] int64, `base - t` for the thing class of index t, 0 elsewhere,
            where base = min(void_label, 0) - 1: a code below every valid label, which both marks
            a pixel as thing and names its class.
        thing_classes: [T] int64, the thing ids below num_classes (index t -> class id); their
            increasing order makes "smaller index" mean "smaller class id" in the vote.
    """
    things = np.asarray(thing_ids, dtype=np.int64)
    things = things[things < num_classes]
    code = np.zeros(num_classes, dtype=np.int64)
    code[things] = _thing_base(void_label) - np.arange(things.size)
    return code, things


def _thing_base(void_label):
    return min(int(void_label), 0) - 1


@paddle.jit.not_to_static
def find_centers(heat, threshold, nms_kernel, top_k):
    """Centre points by point NMS.

    Args:
        heat: [H, W] float32 centre heatmap.
        threshold (float), nms_kernel (odd int), top_k (int or None): see module docstring.
    Returns:
        [K, 2] int64 (y, x) in raster order.
    """
    width = paddle.shape(heat)[1].astype("int64")
    r = (nms_kernel - 1) // 2
    # Max over a k x k window = max over k x 1 then 1 x k: 2k comparisons per pixel, not k^2.
    # Thresholding before pooling (as the reference does) is not needed: any pixel above the
    # threshold has a window maximum above it too, so both give the same peaks.
    pooled = F.max_pool2d(heat.unsqueeze([0, 1]), kernel_size=(nms_kernel, 1), stride=1, padding=(r, 0))
    pooled = F.max_pool2d(pooled, kernel_size=(1, nms_kernel), stride=1, padding=(0, r))
    keep = paddle.logical_and(heat == pooled.squeeze([0, 1]), heat > max(float(threshold), 0.0))
    flat = paddle.nonzero(flatten_bool(keep)).flatten()
    if top_k is not None:
        # Stable descending sort keeps raster order among equal scores; a slice past the end
        # keeps all (no branch on K), and re-sorting the kept indices restores raster order.
        scores = paddle.gather(heat.flatten(), flat)
        best = argsort_stable(scores, descending=True)[:top_k]
        flat = paddle.gather(flat, paddle.sort(best))
    return raster_yx(flat, width)


@paddle.jit.not_to_static
def nearest_center(qy, qx, centers, block=None):
    """Index of the centre nearest to each point (ties: lowest index); K when there is no centre.

    Args:
        qy, qx: [P] float32, where each pixel's offset points.
        centers: [K, 2] int64 (y, x), K >= 0.
        block (int): pixels x (K + 1) scores computed at once (default GROUP_BLOCK).
    Returns:
        [P] int64 in [0, K] (K only when K = 0).

    argmin_k |q - c_k|^2 = argmin_k (|c_k|^2 - 2 q . c_k): one [B, 3] x [3, K + 1] matmul per
    block of B pixels, never an [P, K, 2] tensor. In float64 every term is exact (c are integers
    below 2^24, q float32), so the comparison is exact, unlike float32 where the expanded form
    would cancel catastrophically. The blocks run in a Python loop when eager and in a while op
    when traced, so memory stays bounded (one block of scores) in both.
    """
    c = paddle.concat([centers.astype("float64"), paddle.full([1, 2], _FAR_AWAY, dtype="float64")], axis=0)
    cy, cx = c[:, 0], c[:, 1]
    cmat = paddle.stack([-2.0 * cy, -2.0 * cx, cy * cy + cx * cx], axis=0)  # [3, K + 1]
    n = paddle.shape(qy)[0].astype("int64")
    per_block = paddle.full([], GROUP_BLOCK if block is None else int(block), dtype="int64")
    rows = paddle.maximum(per_block // paddle.shape(cmat)[1].astype("int64"), paddle.full([], 1, dtype="int64"))
    # Traced, the blocks run in a while op and their results go to a tensor array, concatenated
    # once at the end (no copy of the whole result per block). That concatenation wants parts of
    # equal length and at least one part, so the points are padded to a positive multiple of `rows`.
    blocks = paddle.maximum((n + rows - 1) // rows, paddle.full([], 1, dtype="int64"))
    pad = paddle.zeros([blocks * rows - n], dtype="float64")
    qy = paddle.concat([qy.astype("float64"), pad])
    qx = paddle.concat([qx.astype("float64"), pad])
    ones = paddle.ones([rows], dtype="float64")

    def block_argmin(i):
        start = i * rows
        q = paddle.stack([paddle.slice(qy, [0], [start], [start + rows]),
                          paddle.slice(qx, [0], [start], [start + rows]), ones], axis=1)  # [rows, 3]
        return paddle.argmin(paddle.matmul(q, cmat), axis=1)

    if paddle.in_dynamic_mode():
        # Eagerly, a plain loop: paddle's eager while_loop re-assigns every loop variable, each part
        # of the array included, on every step (measured 9x slower with 200 centres).
        nearest = paddle.concat([block_argmin(i) for i in range(int(blocks))])
    else:
        def not_done(i, parts):
            return i < blocks

        def next_block(i, parts):
            return i + 1, paddle.tensor.array_write(block_argmin(i), i, parts)

        _, parts = while_loop(not_done, next_block, [paddle.zeros([1], dtype="int64"),
                                                     paddle.tensor.create_array("int64")])
        nearest, _ = paddle.tensor.manipulation.tensor_array_to_tensor(parts, axis=0)
    return paddle.slice(nearest, [0], [0], [n])


@paddle.jit.not_to_static
def vote_and_number(instance, thing_index, num_slots, num_things):
    """Majority thing class and per-class instance number of each centre.

    Args:
        instance: [P] int64 centre index of each thing pixel, in [0, num_slots).
        thing_index: [P] int64 index (into the thing classes) of each thing pixel's class.
        num_slots: int or int64 scalar tensor, number of centres (+ 1 for "no centre").
        num_things (int): number of thing classes T >= 1.
    Returns:
        winner: [num_slots] int64 thing index of each centre's majority class (ties: smaller index).
        number: [num_slots] int64 instance number of each centre within its class, counted from 1
            in centre order over the centres that have pixels (0 for a centre without pixels).
    """
    votes = bincount(instance * num_things + thing_index, num_slots * num_things).reshape([-1, num_things])
    # Break ties towards the smallest class id without relying on argmax's tie rule:
    # count * T + (T - 1 - t) is unique per row and orders like (count, -t).
    tie_break = paddle.arange(num_things - 1, -1, -1, dtype="int64")
    winner = paddle.argmax(votes * num_things + tie_break, axis=1)
    has_pixels = (votes.sum(axis=1) > 0).astype("int64")
    # Instance numbers per class in centre order: running count of the centres with pixels that
    # won the same class.
    won = F.one_hot(winner, num_things).astype("int64") * has_pixels.unsqueeze(1)
    number = paddle.take_along_axis(paddle.cumsum(won, axis=0), winner.unsqueeze(1), axis=1).flatten()
    return winner, number * has_pixels


@paddle.jit.not_to_static
def panoptic_from_outputs(semantic, heat, offsets, thing_code, thing_classes, label_divisor, stuff_area,
                          void_label, threshold, nms_kernel, top_k, block=None, groups=None):
    """The whole post-processing on one image.

    Args:
        semantic: [H, W] int64 class map, values in [0, C); values >= C are void.
        heat: [H, W] float32 centre heatmap.
        offsets: [2, H, W] float32 (dy, dx).
        thing_code, thing_classes: numpy tables of `class_tables` for C classes.
        label_divisor, stuff_area, void_label (int), threshold, nms_kernel, top_k: see module.
        block: grouping block size, see `nearest_center`.
        groups (dict or None): when a dict, filled with the grouping for `instance_scores`:
            `pix` [P] raster index of each thing pixel, `instance` [P] its centre slot,
            `slot_class` [K + 1] class id and `slot_label` [K + 1] panoptic id of each slot
            (`void_label` for slot K and for slots without pixels), and `void_label`. Left empty
            without thing classes.
    Returns:
        panoptic: [H, W] int64; centers: [K, 2] int64 (y, x);
        number: [K + 1] int64 instance number of each centre within its class (0: no pixels),
        for callers that check it against label_divisor.
    """
    num_classes, num_things = thing_code.size, thing_classes.size
    # values >= C are void (the oracle's void channel, PanopticDeepLab.apply_oracle): one more table entry
    sem = paddle.minimum(semantic.flatten(), paddle.full([1], num_classes, dtype="int64"))
    width = paddle.shape(semantic)[1].astype("int64")
    # One per-class table gathered once per pixel: stuff classes map to their label (or void when
    # too small), thing classes to their code `base - t` (see class_tables).
    area = paddle.bincount(sem, minlength=num_classes + 1)[:num_classes]
    stuff_label = paddle.where(area < stuff_area, paddle.full([num_classes], void_label, dtype="int64"),
                               paddle.arange(num_classes, dtype="int64") * label_divisor)
    stuff_label = paddle.concat([stuff_label, paddle.full([1], void_label, dtype="int64")])
    code = paddle.to_tensor(np.concatenate([thing_code, [0]]).astype(np.int64))
    panoptic = paddle.gather(paddle.where(code < 0, code, stuff_label), sem)
    centers = find_centers(heat, threshold, nms_kernel, top_k)
    num_centers = paddle.shape(centers)[0].astype("int64")
    if num_things == 0:
        return panoptic.reshape(paddle.shape(semantic)), centers, paddle.zeros([num_centers + 1], dtype="int64")

    base = _thing_base(void_label)
    pix = paddle.nonzero(panoptic <= base).flatten()  # thing pixels, raster order
    thing_index = base - paddle.gather(panoptic, pix)
    # Where each thing pixel's offset points, in float32 like the network's output.
    y, x = floor_divmod(pix, width)
    qy = y.astype("float32") + paddle.gather(offsets[0].flatten(), pix)
    qx = x.astype("float32") + paddle.gather(offsets[1].flatten(), pix)
    instance = nearest_center(qy, qx, centers, block)  # [P] in [0, K]
    winner, number = vote_and_number(instance, thing_index, num_centers + 1, num_things)
    label = paddle.gather(paddle.to_tensor(thing_classes), winner) * label_divisor + number
    # slot K gathers the thing pixels of an image without centres: they are void
    label = paddle.where(paddle.arange(num_centers + 1, dtype="int64") < num_centers, label,
                         paddle.full_like(label, void_label))
    panoptic = paddle.scatter(panoptic, pix, paddle.gather(label, instance), overwrite=True)
    if groups is not None:
        groups.update(pix=pix, instance=instance, slot_class=paddle.gather(paddle.to_tensor(thing_classes), winner),
                      slot_label=paddle.where(number > 0, label, paddle.full_like(label, void_label)),
                      void_label=int(void_label))
    return panoptic.reshape(paddle.shape(semantic)), centers, number


@paddle.jit.not_to_static
def instance_scores(groups, probs, heat):
    """Confidences of the thing instances found by `panoptic_from_outputs`, for instance AP.

    Args:
        groups (dict): the `groups` that `panoptic_from_outputs` filled (empty: no thing classes).
        probs: [C, H, W] float32 semantic probabilities; heat: [H, W] float32 centre heatmap.
    Returns:
        ids [M] int64 panoptic ids of the instances (slots with pixels, centre order) and scores
        [M, 2] float32: column 0 the mean probability of the instance's class over its mask,
        column 1 that times the heatmap at the mask's centroid (floor of its mean y and mean x).
    """
    if not groups:
        return paddle.zeros([0], dtype="int64"), paddle.zeros([0, 2], dtype="float32")
    pix, instance, slot_class, slot_label = groups["pix"], groups["instance"], groups["slot_class"], \
        groups["slot_label"]
    num_classes = paddle.shape(probs)[0]
    width = paddle.shape(probs)[2].astype("int64")
    n_slots = paddle.shape(slot_label)[0]
    # One extra pixel (raster index 0) in the last slot, the void "no centre" one that is dropped below,
    # keeps every tensor here non-empty when there is no thing pixel (Paddle 2.6's empty-tensor ops).
    last = (n_slots - 1).astype("int64").reshape([1])
    pix = paddle.concat([pix, paddle.zeros([1], dtype="int64")])
    instance = paddle.concat([instance, last])
    count = bincount(instance, n_slots).astype("float64")
    safe = paddle.maximum(count, paddle.ones_like(count))
    # probability of each thing pixel for the class its instance took
    own = paddle.gather(probs.reshape([num_classes, -1]).flatten(),
                        paddle.gather(slot_class, instance) * paddle.shape(heat)[0].astype("int64") * width + pix)
    score = (bincount(instance, n_slots, own) / safe).astype("float32")
    y, x = floor_divmod(pix, width)
    cy = paddle.floor(bincount(instance, n_slots, y) / safe)
    cx = paddle.floor(bincount(instance, n_slots, x) / safe)
    at_centroid = paddle.gather(heat.flatten(), (cy * width.astype("float64") + cx).astype("int64"))
    keep = paddle.nonzero(paddle.logical_and(count > 0, slot_label != groups["void_label"])).flatten()
    scores = paddle.stack([score, score * at_centroid], axis=1)
    return paddle.gather(slot_label, keep), paddle.gather(scores, keep)
