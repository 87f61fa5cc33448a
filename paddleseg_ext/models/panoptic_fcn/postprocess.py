"""PanopticFCN inference: network outputs of one image -> panoptic / semantic maps and instances.

One implementation for eager use and for the exported graph: fixed-capacity tensors with
validity masks, no Python branch on a tensor value, no Python loop over kernels, instances or
classes (the loops below run over FPN levels and over fixed blocks of channels, both set by the
configuration). Steps and rules (the original's ``panoptic_seg.py`` / ``head.py``):

1. Thing candidates per level: p = sigmoid(centre logits); p = (p + avgpool_k(p)) / 2 (k = 3, 3,
   3, 5, 5 for P3..P7, padding counted: ``exclusive=False``); 3x3 max-pool NMS (ties all kept);
   two-stage top-K with K = min(h*w, top_per_level) (per class, then across classes); keep
   score > thing_threshold; the kernel is the (embedded) thing kernel map at the peak.
2. Stuff candidates per level: q = sigmoid(region logits), per-pixel argmax; class score = mean q
   of the class over its argmax pixels; keep > stuff_threshold; kernel = average over the level
   map of (argmax mask x stuff kernel map) (+ the embedding bias).
3. Thing fusion, candidates sorted by score (ties: lower level, then lower rank): cosine
   similarity >= similarity_threshold (and same class when class_specific). A kernel is kept
   when no higher-scoring kernel is similar to it; a kept kernel becomes the mean of itself and
   of the later kernels whose *first* similar predecessor it is (a later kernel whose first
   similar predecessor was itself dropped disappears). Stuff fusion: mean kernel and mean score
   over the levels of each class.
4. Masks at stride 4: sigmoid(kernel . encoded features); a thing's score is multiplied by the mean
   probability inside its mask (prob > mask_threshold); keep score >= score_threshold, at most
   max_instances by score. Masks are upsampled x4 (bilinear), cropped to `valid_hw`, resized to
   `ori_hw` and thresholded at mask_threshold again; stuff maps likewise, then a per-pixel
   argmax over the stuff channels (classes without a kernel have probability 0).
5. Combine (panopticapi's heuristic): things in score order with score >= instance_threshold;
   skip one whose mask is empty or whose overlap with the already painted pixels is more than
   overlap_threshold of its area, otherwise paint its free pixels; then each stuff class (not
   the "things" channel) on the free pixels where it is the argmax, if that area >= stuff_area.
   Everything else is void.

How step 5 avoids a loop over instances: each pixel's set of covering masks (K <= max_instances
bits) is packed into float64 words (53 bits each, exact), the distinct sets ("patterns") are found
by sorting (`group_values`), and the sequential acceptance is solved on the small [patterns x K]
table: a kernel's acceptance depends only on earlier ones, so iterating ``accept = f(accept)`` from
any start reaches the sequential result after at most K + 1 rounds, and stops as soon as nothing
changes (2-7 rounds in our runs). R, the number of distinct covering sets, is 5 on the demo frames
with the demo model, 12.7k for the benchmark's 100 heavily overlapping blobs.

Where the pixels come from. Eagerly, when the crop `valid_hw` is the original size (no resize after
it: the padding configs), nothing is upsampled whole: `dual_cells` decides each mask and the stuff
argmax per 4x4 block of output pixels from the 4 stride-4 values they interpolate, upsamples only
the undecided (mask, block) pairs, bit for bit as the full resize would (about 1 % of the pairs and
15 % of the stuff blocks on the benchmark), and groups pixels by block before the pattern sort.
Otherwise (traced, or a resize to another size) the masks are upsampled to the original size in
blocks of `mask_block` (6-13 ms per map at 800x1333 on a CPU core; eagerly only the kept slots and
the stuff channels that have a kernel, since a dropped slot's mask and a channel without kernel are
0 everywhere; traced, all of them, the block loop needing static sizes). Same maps either way
(tested): the eager shortcuts only leave out work whose result is known.

Semantic output: the class of the panoptic segment; elsewhere the stuff argmax class when it is
a stuff class, else the class of the best-scoring kept thing mask covering the pixel, else the
best stuff class (this last fallback is read at stride 4, nearest-upsampled).
"""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.static.nn import while_loop

from panoptic_metrics.panoptic_io import DEFAULT_VOID_LABEL

from ...compat import argsort_stable, gather_bool
from ...postprocess.panoptic_ops import count_values
from ...utils import UserInputError
from .dual_cells import PART_BITS, WORD_BITS, _f32, _i64, argmax_channel, slot_of_pixel, thing_units


DEFAULTS = {
    "thing_threshold": 0.05,      # THING.THRES (FAST: 0.2)
    "stuff_threshold": 0.05,      # STUFF.THRES (FAST: 0.1)
    "top_per_level": 50,          # min(hw, TOP_NUM // 2) candidates per level
    "pool_sizes": [3, 3, 3, 5, 5],
    "similarity_threshold": 0.9,  # INFERENCE.SIMILAR_THRES (cosine)
    "class_specific": True,       # INFERENCE.CLASS_SPECIFIC
    "mask_threshold": 0.4,        # INFERENCE.INST_THRES
    "score_threshold": 0.05,      # rescored instance scores below are dropped
    "max_instances": 100,         # THING.TOP_NUM
    "overlap_threshold": 0.5,     # COMBINE.OVERLAP_THRESH
    "stuff_area": 4096,           # COMBINE.STUFF_AREA_LIMIT
    "instance_threshold": 0.2,    # COMBINE.INST_THRESH
    "mask_block": 4,              # maps upsampled to the original size at once (memory bound)
}


# the type each scalar setting is read as (pool_sizes, a list, is checked on its own)
_SETTING_TYPES = {"thing_threshold": float, "stuff_threshold": float, "top_per_level": int,
                  "similarity_threshold": float, "class_specific": bool, "mask_threshold": float,
                  "score_threshold": float, "max_instances": int, "overlap_threshold": float,
                  "stuff_area": float, "instance_threshold": float, "mask_block": int}


@paddle.jit.not_to_static
def sort_desc(scores):
    """Permutation sorting `scores` [K] (float32) in decreasing order, ties by lower index.

    Computed from pairwise comparisons (K is a few hundred): deterministic on every backend and
    free of a stable-sort argument. Returns int64 [K]: ``perm[r]`` is the index of rank r.
    """
    k = scores.shape[0]
    s_i = scores.unsqueeze(1)
    s_j = scores.unsqueeze(0)
    idx = paddle.arange(k, dtype="int64")
    earlier = idx.unsqueeze(0) < idx.unsqueeze(1)  # [i, j]: j < i
    beats = paddle.logical_or(s_j > s_i, paddle.logical_and(s_j == s_i, earlier))
    rank = _i64(beats).sum(axis=1)
    return paddle.scatter(paddle.zeros([k], dtype="int64"), rank, idx, overwrite=True)


@paddle.jit.not_to_static
def thing_candidates(center_logit, kernel_map, pool_size, top_k, threshold):
    """Step 1 on one level. center_logit [1, T, h, w], kernel_map [1, E, h, w] ->
    (scores [top_k], classes [top_k] int64 (thing channels), kernels [top_k, E], valid [top_k] bool)."""
    t = center_logit.shape[1]
    e = kernel_map.shape[1]
    p = F.sigmoid(center_logit)
    pad = (pool_size - 1) // 2
    p = (p + F.avg_pool2d(p, pool_size, stride=1, padding=pad, exclusive=False)) / 2.0
    peak = F.max_pool2d(p, 3, stride=1, padding=1)
    p = p * _f32(p == peak)
    shape = paddle.shape(p)
    hw = _i64(shape[2]) * _i64(shape[3])
    k_eff = paddle.minimum(hw, paddle.full_like(hw, top_k))
    flat = paddle.concat([p.reshape([t, -1]), paddle.full([t, top_k], -1.0, dtype=p.dtype)], axis=1)
    s1, i1 = paddle.topk(flat, top_k, axis=1)  # [T, K] within each class
    rank = paddle.arange(top_k, dtype="int64").unsqueeze(0)
    s1 = paddle.where(rank < k_eff, s1, paddle.full_like(s1, -1.0))
    s2, i2 = paddle.topk(s1.flatten(), top_k)  # across classes
    classes = i2 // top_k
    pos = paddle.gather(i1.flatten(), i2)
    valid = paddle.logical_and(s2 > threshold, paddle.arange(top_k, dtype="int64") < k_eff)
    pos = paddle.minimum(pos, hw - 1)
    kernels = paddle.gather(kernel_map.reshape([e, -1]).transpose([1, 0]), pos)
    return s2, classes, kernels, valid


@paddle.jit.not_to_static
def stuff_candidates(region_logit, stuff_map, bias, threshold):
    """Step 2 on one level. region_logit [1, S', h, w], stuff_map [1, E, h, w] (W x), bias [E] ->
    (scores [S'], kernels [S', E], valid [S'] bool)."""
    s = region_logit.shape[1]
    e = stuff_map.shape[1]
    q = F.sigmoid(region_logit).reshape([s, -1])
    onehot = F.one_hot(paddle.argmax(q, axis=0), s).transpose([1, 0])  # [S', hw] float32
    count = onehot.sum(axis=1)
    score = (q * onehot).sum(axis=1) / paddle.clip(count, min=1.0)
    valid = paddle.logical_and(count > 0, score > threshold)
    hw = _f32(paddle.shape(q)[1])
    kernels = paddle.matmul(onehot, stuff_map.reshape([e, -1]), transpose_y=True) / hw + bias.reshape([1, e])
    return score, kernels, valid


@paddle.jit.not_to_static
def fuse_things(kernels, scores, classes, valid, similarity_threshold=0.9, class_specific=True):
    """Step 3 on candidates already sorted by decreasing score (invalid ones anywhere).

    Args:
        kernels [K, E], scores [K], classes [K] int64, valid [K] bool.
    Returns:
        (kernels [K, E] fused, keep [K] bool): row i is the fused kernel of candidate i when
        keep[i]; scores and classes are unchanged.
    """
    k = kernels.shape[0]
    norm = paddle.clip(paddle.sqrt((kernels * kernels).sum(axis=1, keepdim=True)), min=1e-8)
    unit = kernels / norm
    sim = paddle.matmul(unit, unit, transpose_y=True)
    idx = paddle.arange(k, dtype="int64")
    upper = idx.unsqueeze(1) <= idx.unsqueeze(0)  # [i, j]: i <= j
    link = paddle.logical_and(sim >= similarity_threshold, upper)
    if class_specific:
        link = paddle.logical_and(link, classes.unsqueeze(1) == classes.unsqueeze(0))
    both = paddle.logical_and(valid.unsqueeze(1), valid.unsqueeze(0))
    link = paddle.logical_and(link, both)
    # a kernel is always similar to itself (also a zero kernel, whose cosine is 0)
    eye = idx.unsqueeze(1) == idx.unsqueeze(0)
    link = paddle.logical_or(link, paddle.logical_and(eye, both))
    first = paddle.cumsum(_f32(link), axis=0) < 2.0  # [i, j]: at most one similar i' <= i
    # the diagonal, as a gather (paddle2onnx 2.1 has no diagonal converter)
    keep = paddle.logical_and(paddle.gather(_f32(first).flatten(), idx * (k + 1)) > 0.5, valid)
    members = _f32(paddle.logical_and(link, first))  # row i: the j whose first similar predecessor is i
    fused = paddle.matmul(members, kernels) / paddle.clip(members.sum(axis=1, keepdim=True), min=1.0)
    return fused, keep


@paddle.jit.not_to_static
def upsample_to_original(x, valid_hw, ori_hw, stride=4):
    """[1, c, h, w] stride-`stride` maps -> x `stride` (bilinear), crop to valid_hw, resize to ori_hw.

    The last resize is skipped (a graph `cond`, not a Python branch) when valid_hw equals ori_hw:
    a bilinear resize to the same size is the identity.
    """
    up = F.interpolate(x, size=_scaled_size(x, stride), mode="bilinear", align_corners=False)
    up = paddle.slice(up, axes=[2, 3], starts=[0, 0], ends=paddle.cast(valid_hw, "int64"))
    same = paddle.all(paddle.cast(valid_hw, "int64") == paddle.cast(ori_hw, "int64"))
    return paddle.static.nn.cond(
        same, lambda: up,
        lambda: F.interpolate(up, size=paddle.cast(ori_hw, "int32"), mode="bilinear", align_corners=False))


def _scaled_size(x, stride):
    """[2] int32 tensor: x's height and width times `stride`. Resizing to this size is resizing by the
    factor `stride` (both give the source step 1 / stride), and, unlike a scale factor, paddle2onnx 2.1
    converts it."""
    return paddle.cast(paddle.shape(x)[2:], "int32") * int(stride)


def _blocks(total, block):
    return [(s, min(s + block, total)) for s in range(0, total, block)]


@paddle.jit.not_to_static
def group_values(*keys):
    """Group the positions of equal tuples of 1-D tensors (a sort-based `unique`; `paddle.unique`
    mis-types its outputs in Paddle 3.3's static graphs).

    Args:
        keys: one or more [n] tensors; positions group when all keys are equal.
    Returns:
        inverse [n] int64 (group of each element, groups numbered in increasing lexicographic
        order of the keys), counts [R] int64, first [R] int64 (an element of each group).

    Several keys are sorted lexicographically by sorting on the last key, then stably on each
    earlier one: one sort per key, instead of grouping each key and re-grouping the pairs.
    """
    order = None
    for key in reversed(keys):
        if order is None:
            order = paddle.argsort(key)
        else:
            order = paddle.gather(order, argsort_stable(paddle.gather(key, order)))
    change = None
    for key in keys:
        ordered = paddle.gather(key, order)
        diff = ordered[1:] != ordered[:-1]
        change = diff if change is None else paddle.logical_or(change, diff)
    change = _i64(change)
    group = paddle.cumsum(paddle.concat([paddle.zeros([1], dtype="int64"), change]))
    inverse = paddle.scatter(paddle.zeros_like(group), order, group, overwrite=True)
    starts = paddle.nonzero(paddle.concat([paddle.ones([1], dtype="int64"), change])).flatten()
    first = paddle.gather(order, starts)
    counts = count_values(group, group[-1] + 1)
    return inverse, counts, first


@paddle.jit.not_to_static
def mask_patterns(probs, valid_hw, ori_hw, threshold, block, stride=4):
    """Covering sets of K stride-4 probability maps at the original size, as patterns.

    Args:
        probs: [K, h, w] float32; a mask is ``upsample_to_original(prob) > threshold``.
    Returns:
        bits [R, K] float32 (pattern r contains mask k), counts [R] float32 (pixels),
        inverse [H*W] int64 (pattern of each pixel).
    """
    k = probs.shape[0]
    words = []
    for lo in range(0, k, WORD_BITS):
        hi = min(lo + WORD_BITS, k)
        parts = {}  # float32 sums per part of PART_BITS bits, exact; cast to float64 once per word
        for s, e in _blocks(hi - lo, block):
            m = upsample_to_original(probs[lo + s:lo + e].unsqueeze(0), valid_hw, ori_hw, stride)[0]
            m = paddle.cast(m > threshold, "float32").reshape([e - s, -1])
            touched = sorted({b // PART_BITS for b in range(s, e)})  # the parts this block touches
            pow2 = [[float(2 ** (b - q * PART_BITS)) if b // PART_BITS == q else 0.0 for b in range(s, e)]
                    for q in touched]
            sums = paddle.matmul(paddle.to_tensor(pow2, dtype="float32"), m)
            for j, q in enumerate(touched):
                parts[q] = sums[j] if q not in parts else parts[q] + sums[j]
        word = None
        for q in sorted(parts):
            value = paddle.cast(parts[q], "float64") * float(2 ** (q * PART_BITS))
            word = value if word is None else word + value
        words.append(word)
    return patterns_of_words(words, k, paddle.cast(paddle.prod(ori_hw), "int64").reshape([1]))


def patterns_of_words(words, k, num_pixels):
    """Group pixels by their covering set. words: one [P] float64 tensor per WORD_BITS masks (bit b of
    word j: mask j * WORD_BITS + b covers the pixel), none when K = 0; num_pixels [1] int64 (P).
    Returns `mask_patterns`' (bits [R, K], counts [R], inverse [P])."""
    # rep: one pixel of each pattern; no mask at all: one empty pattern
    inverse, counts, rep = group_values(*(words or [paddle.zeros(num_pixels, dtype="int64")]))
    bits = []
    for lo, word in zip(range(0, k, WORD_BITS), words):
        n = min(WORD_BITS, k - lo)
        value = paddle.gather(word, rep).unsqueeze(1)  # [R, 1] float64
        pow2 = paddle.to_tensor([float(2 ** b) for b in range(n)], dtype="float64").reshape([1, -1])
        bits.append(_f32(paddle.floor(value / pow2) - 2.0 * paddle.floor(value / (2.0 * pow2))))
    if not bits:
        bits = [paddle.zeros(paddle.concat([_i64(paddle.shape(counts)), paddle.zeros([1], dtype="int64")]),
                             dtype="float32")]
    return paddle.concat(bits, axis=1), _f32(counts), inverse


@paddle.jit.not_to_static
def first_cover(bits, accept):
    """Index of the first accepted mask of each pattern; K when none. bits [R, K], accept [K] float."""
    k = bits.shape[1]
    weight = paddle.arange(k + 1, 1, -1, dtype="float32")  # K + 1 .. 2: earlier masks weigh more
    cover = bits * (accept * weight).unsqueeze(0)
    sentinel = paddle.full_like(cover.sum(axis=1, keepdim=True), 0.5)  # [R, 1], also when K = 0
    return paddle.argmax(paddle.concat([cover, sentinel], axis=1), axis=1)


@paddle.jit.not_to_static
def accept_things(bits, counts, eligible, overlap_threshold):
    """Sequential overlap rule on patterns (see module docstring).

    Args:
        bits [R, K] float32, counts [R] float32, eligible [K] bool (valid, score high enough).
    Returns:
        accept [K] bool, area [K] float32 (full mask areas).
    """
    k = bits.shape[1]
    area = paddle.matmul(counts.unsqueeze(0), bits).flatten()
    eligible = _f32(paddle.logical_and(eligible, area > 0))
    idx = paddle.arange(k + 1, dtype="int64")
    earlier = _f32(idx.unsqueeze(1) < idx[:k].unsqueeze(0))  # [K + 1, K]: j < k
    # only patterns covered by two masks or more can make an overlap; a zero row keeps the table
    # non-empty when there is none
    multi = paddle.nonzero(_i64(bits.sum(axis=1) >= 2)).flatten()
    bits = paddle.concat([paddle.gather(bits, multi), paddle.zeros_like(bits[:1])])
    counts = paddle.concat([paddle.gather(counts, multi), paddle.zeros_like(counts[:1])])
    weighted = counts.unsqueeze(1) * bits  # [R, K] pixels

    def step(accept):
        # pixels of mask k whose first accepted mask j comes before k: the [j, k] sums of a one-hot
        # matmul (integer sums below 2^24: exact in float32, in any order)
        by_first = paddle.matmul(F.one_hot(first_cover(bits, accept), k + 1), weighted, transpose_x=True)
        inter = (by_first * earlier).sum(axis=0)
        return eligible * _f32(inter <= overlap_threshold * area)

    def cond(accept, changed, it):
        return paddle.logical_and(changed, it <= k)

    def body(accept, changed, it):
        new = step(accept)
        return new, (new != accept).any(), it + 1

    # eager while_loop writes the results into the initial loop variables: start from a copy
    accept, _, _ = while_loop(cond, body, [paddle.assign(eligible), paddle.full([], True, dtype="bool"),
                                           paddle.full([], 0, dtype="int64")])
    return accept > 0.5, area


class PanopticFCNPostprocess(nn.Layer):
    """The whole inference after the network, for one image (batch 1); traceable.

    Args:
        num_levels (int): position levels L (5).
        layout (ClassLayout): class / channel tables.
        label_divisor, void_label (int): panoptic id encoding.
        common_stride (int): stride of the encoded features (4).
        the keys of `DEFAULTS`.

    forward(outputs, valid_hw, ori_hw) -> (panoptic int64 [H, W], semantic int64 [H, W],
    instance_ids int64 [M], instance_scores float32 [M, 1]) with `outputs` as
    `PanopticFCN.forward` returns them.
    """

    def __init__(self, num_levels, layout, label_divisor=1000, void_label=DEFAULT_VOID_LABEL, common_stride=4, **params):
        super().__init__()
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise UserInputError("PanopticFCN post-processing: unknown setting(s) {} (known: {})".format(
                unknown, ", ".join(sorted(DEFAULTS))))
        p = dict(DEFAULTS)
        p.update(params)
        self.num_levels = int(num_levels)
        self.pool_sizes = [int(s) for s in p["pool_sizes"]]
        if len(self.pool_sizes) != self.num_levels or any(s < 1 or s % 2 == 0 for s in self.pool_sizes):
            raise UserInputError("postprocess.pool_sizes must be {} odd sizes, got {}".format(
                self.num_levels, p["pool_sizes"]))
        self.layout = layout
        self.label_divisor = int(label_divisor)
        self.void_label = int(void_label)
        self.common_stride = int(common_stride)
        for key, kind in _SETTING_TYPES.items():
            setattr(self, key, kind(p[key]))
        if self.top_per_level < 1 or self.max_instances < 1 or self.mask_block < 1:
            raise UserInputError("postprocess: top_per_level, max_instances and mask_block must be >= 1")
        if self.max_instances >= self.label_divisor:
            raise UserInputError("postprocess.max_instances {} must be below label_divisor {}".format(
                self.max_instances, self.label_divisor))
        self.params = p

    def forward(self, outputs, valid_hw, ori_hw):
        lv = self.num_levels
        centers, regions = outputs[:lv], outputs[lv:2 * lv]
        thing_maps, stuff_maps = outputs[2 * lv:3 * lv], outputs[3 * lv:4 * lv]
        encode, stuff_bias = outputs[4 * lv], outputs[4 * lv + 1]
        lay = self.layout
        e = encode.shape[1]
        feats = encode[0].reshape([e, -1])  # [E, hw4]
        enc_hw = paddle.shape(encode)[2:]

        # 1 + 3: thing candidates of all levels, sorted, fused
        cands = [thing_candidates(c, k, ps, self.top_per_level, self.thing_threshold)
                 for c, k, ps in zip(centers, thing_maps, self.pool_sizes)]
        scores = paddle.concat([c[0] for c in cands])
        classes = paddle.concat([c[1] for c in cands])
        kernels = paddle.concat([c[2] for c in cands])
        valid = paddle.concat([c[3] for c in cands])
        order = sort_desc(paddle.where(valid, scores, paddle.full_like(scores, -1.0)))
        scores, classes = paddle.gather(scores, order), paddle.gather(classes, order)
        kernels, valid = paddle.gather(kernels, order), paddle.gather(_i64(valid), order) > 0
        kernels, keep = fuse_things(kernels, scores, classes, valid, self.similarity_threshold, self.class_specific)

        # 4: masks at stride 4, rescoring, top instances. Only the kept kernels' masks are computed
        # (a dropped one is never used, and half or more of the candidates are dropped); one padding
        # row (kernel 0) keeps the tensors non-empty (Paddle 2.6) and stands for the dropped ones.
        k = scores.shape[0]
        kept = paddle.nonzero(_i64(keep)).flatten()
        rows = paddle.concat([kept, paddle.zeros([1], dtype="int64")])
        prob = F.sigmoid(paddle.matmul(paddle.gather(kernels, rows), feats))  # [kept + 1, hw4]
        inside = _f32(prob > self.mask_threshold)  # 0 / 1: the products and counts are exact
        mean_inside = (prob * inside).sum(axis=1) / (inside.sum(axis=1) + 1e-6)
        slots = paddle.concat([kept, paddle.full([1], k, dtype="int64")])  # padding -> extra slot k
        mean_inside = paddle.scatter(paddle.zeros([k + 1], dtype="float32"), slots, mean_inside)[:k]
        row_of = paddle.scatter(paddle.full([k + 1], 1, dtype="int64") * (paddle.shape(rows)[0].astype("int64") - 1),
                                slots, paddle.arange(paddle.shape(rows)[0], dtype="int64"))[:k]
        scores = scores * mean_inside
        keep = paddle.logical_and(keep, scores >= self.score_threshold)
        top = min(self.max_instances, int(scores.shape[0]))
        order = sort_desc(paddle.where(keep, scores, paddle.full_like(scores, -1.0)))[:top]
        scores, classes = paddle.gather(scores, order), paddle.gather(classes, order)
        keep = paddle.gather(_i64(keep), order) > 0
        probs = paddle.gather(prob, paddle.gather(row_of, order)) * _f32(keep).unsqueeze(1)
        probs = probs.reshape(paddle.concat([paddle.full([1], top, dtype="int32"), paddle.cast(enc_hw, "int32")]))

        # 2 + 3: stuff candidates, fused per class over the levels
        s_scores, s_kernels, s_valid = 0.0, 0.0, 0.0
        for r, sm in zip(regions, stuff_maps):
            sc, kr, va = stuff_candidates(r, sm, stuff_bias.flatten(), self.stuff_threshold)
            va = _f32(va)
            s_scores, s_kernels, s_valid = s_scores + sc * va, s_kernels + kr * va.unsqueeze(1), s_valid + va
        s_kernels = s_kernels / paddle.clip(s_valid, min=1.0).unsqueeze(1)
        s_prob = F.sigmoid(paddle.matmul(s_kernels, feats)) * _f32(s_valid > 0).unsqueeze(1)
        s_prob = s_prob.reshape(paddle.concat([paddle.full([1], lay.num_stuff_channels, dtype="int32"),
                                               paddle.cast(enc_hw, "int32")]))
        return self.combine(probs, scores, classes, keep, s_prob, valid_hw, ori_hw)

    def combine(self, probs, scores, classes, keep, stuff_prob, valid_hw, ori_hw):
        """Steps 4 (end) and 5: masks at the original size and the panoptic combination.

        Args:
            probs [K, h, w]: thing mask probabilities at stride `common_stride`, in decreasing score
                order; scores [K]; classes [K] int64 thing channels; keep [K] bool;
            stuff_prob [S', h, w]: fused stuff probabilities (0 for channels without a kernel).
        Returns:
            the `forward` tuple.
        """
        if probs.shape[0] == 0:  # one empty, invalid slot instead: Paddle 2.6 has no 0-size matmul / reduce
            probs = paddle.zeros([1] + list(probs.shape[1:]), dtype=probs.dtype)
            scores, classes = paddle.zeros([1], dtype=scores.dtype), paddle.zeros([1], dtype=classes.dtype)
            keep = paddle.zeros([1], dtype="bool")
        top = probs.shape[0]
        eligible = paddle.logical_and(keep, scores >= self.instance_threshold)
        # eager, no resize after the crop: only the undecided cells are upsampled (dual_cells)
        grid = self._cell_grid(probs, valid_hw, ori_hw)
        units = None if grid is None else thing_units(probs, self.mask_threshold, grid)
        pixel_slot = None if grid is None else slot_of_pixel(grid)
        if units is None:
            slot, any_slot, accept = self._upsampled_slots(probs, keep, eligible, valid_hw, ori_hw)
        else:
            bits, _, pattern = patterns_of_words(units[0], top, None)
            pattern = paddle.gather(paddle.gather(pattern, units[1]), pixel_slot)  # [HW]
            counts = _f32(count_values(pattern, bits.shape[0]))
            accept, _ = accept_things(bits, counts, eligible, self.overlap_threshold)
            slot = paddle.gather(first_cover(bits, _f32(accept)), pattern)  # [HW] in [0, K]
            any_slot = paddle.gather(first_cover(bits, _f32(keep)), pattern)
        stuff_channel = None if grid is None else argmax_channel(stuff_prob, grid)
        if stuff_channel is None:
            stuff_channel = self._stuff_argmax(stuff_prob, valid_hw, ori_hw)
        else:
            stuff_channel = paddle.gather(stuff_channel, pixel_slot)
        best_stuff = self._best_stuff(stuff_prob, valid_hw, ori_hw, resize=grid is None)
        return self._assemble(slot, any_slot, stuff_channel, best_stuff, accept, scores, classes, ori_hw, top)

    def _cell_grid(self, probs, valid_hw, ori_hw):
        """(h, w, vh, vw) when `dual_cells` gives the maps exactly: eager, stride 4, maps of 2x2 or
        more, the original size equal to the crop `valid_hw` (no resize); None otherwise."""
        if not paddle.in_dynamic_mode() or self.common_stride != 4:
            return None
        h, w = int(probs.shape[1]), int(probs.shape[2])
        vh, vw = (int(v) for v in paddle.cast(valid_hw, "int64").numpy())
        same = [vh, vw] == [int(v) for v in paddle.cast(ori_hw, "int64").numpy()]
        if not same or min(h, w) < 2 or not (0 < vh <= 4 * h and 0 < vw <= 4 * w):
            return None
        return h, w, vh, vw

    def _upsampled_slots(self, probs, keep, eligible, valid_hw, ori_hw):
        """Step 5's thing part on upsampled masks (traced, or a resize to another original size):
        (slot [HW] int64: first accepted mask of each pixel, K if none; any_slot [HW]: first kept
        mask; accept [K] bool)."""
        top = probs.shape[0]
        live, sub_keep = None, keep
        if paddle.in_dynamic_mode():
            # Eagerly only the kept slots' masks are upsampled: a dropped slot's mask is all zero, it
            # covers no pixel, so leaving it out changes no pattern. (Traced, the block loop needs the
            # static number of slots.) Slot 0, dropped, stands in when no slot is kept.
            live = paddle.nonzero(_i64(keep)).flatten()
            if int(live.shape[0]) == 0:
                live = paddle.zeros([1], dtype="int64")
            probs = paddle.gather(probs, live)
            sub_keep, eligible = gather_bool(keep, live), gather_bool(eligible, live)
        bits, counts, inverse = mask_patterns(probs, valid_hw, ori_hw, self.mask_threshold, self.mask_block,
                                              self.common_stride)
        accept, _ = accept_things(bits, counts, eligible, self.overlap_threshold)
        slot = paddle.gather(first_cover(bits, _f32(accept)), inverse)  # [HW] in [0, K]
        any_slot = paddle.gather(first_cover(bits, _f32(sub_keep)), inverse)
        if live is not None:  # back to slot numbers (K: none)
            to_slot = paddle.concat([live, paddle.full([1], top, dtype="int64")])
            slot, any_slot = paddle.gather(to_slot, slot), paddle.gather(to_slot, any_slot)
            accept = paddle.scatter(paddle.zeros([top], dtype="int64"), live, _i64(accept)) > 0
        return slot, any_slot, accept

    def _stuff_argmax(self, s_prob, valid_hw, ori_hw):
        """Per-pixel argmax [HW] int64 over the stuff channels at the original size, upsampling
        `mask_block` channels at a time (ties: lower channel)."""
        lay = self.layout
        maps, channel, dropped = s_prob, None, None
        if paddle.in_dynamic_mode():
            # Eagerly only the channels with a kernel (probabilities > 0) are upsampled; a trained
            # network's image has a few stuff classes of the dataset's dozens. The others are 0
            # everywhere: where the best upsampled value is 0 too, the lowest such channel wins the tie.
            live = np.flatnonzero(s_prob.reshape([lay.num_stuff_channels, -1]).max(axis=1).numpy() > 0)
            if 0 < live.size < lay.num_stuff_channels:
                dropped = int(np.flatnonzero(np.isin(np.arange(lay.num_stuff_channels), live, invert=True))[0])
                channel = paddle.to_tensor(live, dtype="int64")
                maps = paddle.gather(s_prob, channel)
        best_v = best_i = None
        for s, e in _blocks(maps.shape[0], self.mask_block):
            up = upsample_to_original(maps[s:e].unsqueeze(0), valid_hw, ori_hw, self.common_stride)[0]
            up = up.reshape([e - s, -1])
            v, i = paddle.max(up, axis=0), paddle.argmax(up, axis=0) + s
            if best_v is None:
                best_v, best_i = v, i
            else:
                better = v > best_v
                best_v, best_i = paddle.maximum(v, best_v), paddle.where(better, i, best_i)  # no NaN
        if channel is not None:
            best_i = paddle.gather(channel, best_i)
            best_i = paddle.where(best_v > 0, best_i, paddle.minimum(best_i, paddle.full_like(best_i, dropped)))
        return best_i

    def _best_stuff(self, s_prob, valid_hw, ori_hw, resize=True):
        """For the semantic map's rare fallback: [HW] int64, the best stuff class channel (not the
        "things" channel) taken at stride 4 and upsampled (nearest); 0 without stuff classes.
        resize=False: ori_hw is known to equal valid_hw (a nearest resize to the same size is the identity)."""
        lay = self.layout
        first = 1 if lay.with_thing else 0
        if lay.num_stuff_channels <= first:  # no stuff class at all
            return paddle.zeros(paddle.cast(paddle.prod(paddle.cast(ori_hw, "int64")), "int64").reshape([1]),
                                dtype="int64")
        coarse = _f32(paddle.argmax(s_prob[first:], axis=0) + first).unsqueeze(0).unsqueeze(0)
        up = F.interpolate(coarse, size=_scaled_size(coarse, self.common_stride), mode="nearest")
        up = paddle.slice(up, axes=[2, 3], starts=[0, 0], ends=paddle.cast(valid_hw, "int64"))
        if resize:
            up = F.interpolate(up, size=paddle.cast(ori_hw, "int32"), mode="nearest")
        return _i64(up.flatten() + 0.5)

    def _assemble(self, slot, any_slot, stuff_channel, best_stuff, accept, scores, classes, ori_hw, top):
        lay = self.layout
        div, void = self.label_divisor, self.void_label
        thing_ids = paddle.to_tensor(lay.thing_ids if lay.num_things else [0], dtype="int64")
        class_of_slot = paddle.gather(thing_ids, classes)  # train ids
        # instance numbers per class in painting (score) order
        onehot = F.one_hot(classes, max(lay.num_things, 1)) * _f32(accept).unsqueeze(1)
        number = paddle.take_along_axis(paddle.cumsum(onehot, axis=0), classes.unsqueeze(1), axis=1).flatten()
        slot_id = paddle.where(accept, class_of_slot * div + _i64(number), paddle.full_like(class_of_slot, void))
        slot_id = paddle.concat([slot_id, paddle.full([1], void, dtype="int64")])
        slot_class = paddle.concat([class_of_slot, paddle.full([1], -1, dtype="int64")])

        free = slot == top
        s = lay.num_stuff_channels
        area = count_values(paddle.where(free, stuff_channel, paddle.full_like(stuff_channel, s)), s + 1)[:s]
        chan_class = paddle.to_tensor(lay.class_of_stuff_channel, dtype="int64")
        is_stuff = chan_class >= 0
        stuff_ok = paddle.logical_and(is_stuff, _f32(area) >= self.stuff_area)
        stuff_id = paddle.where(stuff_ok, chan_class * div, paddle.full_like(chan_class, void))
        panoptic = paddle.where(free, paddle.gather(stuff_id, stuff_channel), paddle.gather(slot_id, slot))

        pan_class = panoptic // div
        st_class = paddle.gather(chan_class, stuff_channel)
        fallback = paddle.where(any_slot < top, paddle.gather(slot_class, any_slot),
                                paddle.gather(chan_class, best_stuff))
        semantic = paddle.where(panoptic != void, pan_class, paddle.where(st_class >= 0, st_class, fallback))
        semantic = paddle.where(semantic >= 0, semantic, paddle.full_like(semantic, int(lay.thing_ids[0])
                                                                          if lay.num_things else 0))
        hw = paddle.cast(ori_hw, "int64")
        panoptic = panoptic.reshape(hw)
        semantic = semantic.reshape(hw)
        kept = paddle.nonzero(_i64(accept)).flatten()
        ids = paddle.gather(slot_id, kept)
        inst_scores = paddle.gather(scores, kept).unsqueeze(1)
        return panoptic, semantic, ids, inst_scores
