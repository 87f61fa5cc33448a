"""Thresholds and argmaxes of x4 bilinear upsampled maps, upsampling only where they are undecided.

Paddle's bilinear resize by 4 (``align_corners=False``, half-pixel centres) reads, for output row y,
the source rows around y / 4 - 3 / 8 (clamped at the borders), so output rows 4a - 2 .. 4a + 1 all
read source rows a - 1 and a. We call the output pixels of rows 4a - 2 .. 4a + 1 and columns
4b - 2 .. 4b + 1 the dual cell (a, b), a in [0, h], b in [0, w] (the edge cells keep 2 rows or
columns, which read one source row or column). Every pixel of a cell is a convex combination of its
4 corner values with dyadic weights, so it lies between their minimum and maximum up to the float
rounding of 4 products and 3 sums (under 1e-6 for values in [0, 1], far below MARGIN). Hence:

- a mask ``up(prob) > t`` is decided for the whole cell when all 4 corners are above t + MARGIN or
  all at most t - MARGIN;
- a per-pixel argmax over channels is decided for the whole cell when no other channel's maximum
  comes within MARGIN of the best minimum.

Only the undecided (channel, cell) pairs are upsampled: the 2x2 source patch of each, resized to 8x8
by the same ``F.interpolate`` call, gives bit for bit the values the full map's resize gives at the
same pixels (same source coordinates, weights and clamping; tested on Paddle 2.6 and 3.x). With
masks of a trained network or the benchmark's blobs about 1 % of the (mask, cell) pairs and 15 % of
the stuff cells are undecided, so the pixels computed drop from K x H x W to a few per cent of that.

Eager only (the sizes of the undecided sets follow the data); the crop to `valid_hw` is exact, a
further resize to another original size is not covered (the caller upsamples the full maps then).
"""
import paddle
import paddle.nn.functional as F

from ...postprocess.panoptic_ops import count_values

#: decided when the corner values clear the threshold (or the runner-up) by this much; the rounding
#: of the interpolation is < 1e-6 for values in [0, 1]
MARGIN = 1e-5

#: bits per float64 word of a pixel's covering set (sums of distinct powers of 2 below 2^53 are exact),
#: built from float32 parts of PART_BITS bits (exact below 2^24): float32 matmuls and casts are ~10x
#: faster than float64 ones on CPU
WORD_BITS = 53
PART_BITS = 24


def _i64(x):
    return paddle.cast(x, "int64")


def cell_bounds(maps):
    """Upper and lower bounds of each dual cell's upsampled values.

    Args:
        maps: [C, h, w] float32 stride-4 maps.
    Returns:
        (upper, lower) [C, (h + 1) * (w + 1)] float32: max and min of the cell's corner values.
    """
    c = maps.shape[0]
    x = maps.unsqueeze(0)
    # the pooling's padding is left out of the maximum: the edge cells see their 1 or 2 corners
    upper = F.max_pool2d(x, 2, stride=1, padding=1)
    lower = -F.max_pool2d(-x, 2, stride=1, padding=1)
    return upper.reshape([c, -1]), lower.reshape([c, -1])


def slot_of_pixel(grid):
    """[vh * vw] int64: each crop pixel's slot, 16 * its dual cell + its place in the cell's 4x4
    (row-major). grid = (h, w, vh, vw) ints."""
    h, w, vh, vw = grid
    gy = paddle.arange(vh, dtype="int64") + 2
    gx = paddle.arange(vw, dtype="int64") + 2
    rows = gy // 4 * ((w + 1) * 16) + gy % 4 * 4
    cols = gx // 4 * 16 + gx % 4
    return (rows.unsqueeze(1) + cols.unsqueeze(0)).flatten()


def cell_values(maps, channel, cell, grid):
    """The upsampled values at the 16 slots of some dual cells, bit for bit those of the full resize.

    Args:
        maps: [C, h, w] float32 (h, w >= 2); channel, cell: [N] int64; grid = (h, w, vh, vw).
    Returns:
        [N, 16] float32 (row-major 4x4); the slots outside the map (edge cells) hold any value.
    """
    h, w = grid[0], grid[1]
    a, b = cell // (w + 1), cell % (w + 1)
    zero = paddle.zeros_like(a)
    p = paddle.minimum(paddle.maximum(a - 1, zero), zero + (h - 2))  # patch = source rows p, p + 1
    q = paddle.minimum(paddle.maximum(b - 1, zero), zero + (w - 2))
    corner = (channel * (h * w) + p * w + q).unsqueeze(1) + paddle.to_tensor([0, 1, w, w + 1], dtype="int64")
    patch = paddle.gather(maps.flatten(), corner.flatten()).reshape([-1, 1, 2, 2])
    up = F.interpolate(patch, size=[8, 8], mode="bilinear", align_corners=False).reshape([-1, 64])
    # output row 4a - 2 + r is row 4a - 2 + r - 4p of the patch's 8x8 resize (2 + r inside the map)
    first = (4 * (a - p) - 2) * 8 + 4 * (b - q) - 2  # [N]: the 8x8 index of slot 0
    local = first.unsqueeze(1) + paddle.to_tensor([[8 * r + c for r in range(4) for c in range(4)]], dtype="int64")
    local = paddle.clip(_f32(local), 0, 63).astype("int64")
    return paddle.take_along_axis(up, local, axis=1)


def _f32(x):
    return paddle.cast(x, "float32")


def thing_units(probs, threshold, grid):
    """Group the crop's pixels into units of equal covering sets by the masks ``up(prob) > threshold``
    (not necessarily one unit per set: `postprocess.patterns_of_words` merges them).

    A pixel's set is its cell's decided masks plus the undecided ones covering it; units are the
    cells without undecided masks and, in the others, the distinct sets among the 16 slots.
    Args:
        probs: [K, h, w] float32 stride-4 probabilities; threshold: float; grid = (h, w, vh, vw).
    Returns:
        words: ceil(K / WORD_BITS) [U] float64 tensors (bit b of word j: mask j * WORD_BITS + b
        covers the unit), unit_of_slot [D * 16] int64 (the unit of each slot, `slot_of_pixel`);
        None when more than half of the (mask, cell) pairs are undecided (then the full resize
        is cheaper).
    """
    k, d = probs.shape[0], (grid[0] + 1) * (grid[1] + 1)
    # per corner 0 (at most threshold - MARGIN), 1 (near the threshold) or 2 (above threshold + MARGIN),
    # summed over each cell's 4 corners by a 2x2 convolution (3x faster than pooling on CPU) with the edge
    # rows and columns repeated (an edge cell's 1 or 2 corners then count 4 times): 8 when the whole
    # cell is inside, 0 when it is outside, else undecided (integers: the halves only absorb rounding)
    level = (_f32(probs > threshold - MARGIN) + _f32(probs > threshold + MARGIN)).unsqueeze(1)
    level = paddle.concat([level[:, :, :1], level, level[:, :, -1:]], axis=2)
    level = paddle.concat([level[:, :, :, :1], level, level[:, :, :, -1:]], axis=3)
    total = F.conv2d(level, paddle.ones([1, 1, 2, 2], dtype="float32")).reshape([k, -1])
    inside = total > 7.5
    sure = _f32(inside)  # [K, D]
    undecided = paddle.logical_and(total > 0.5, paddle.logical_not(inside))
    pairs = paddle.nonzero(undecided.transpose([1, 0]))  # (cell, mask), by cell
    if 2 * pairs.shape[0] > k * d:  # noise-like masks: a patch costs 4x a cell of the full resize
        return None
    cell_words = []
    for lo in range(0, k, WORD_BITS):
        word = 0.0
        for q in range(lo, min(lo + WORD_BITS, k), PART_BITS):  # float32 matmuls of PART_BITS bits are exact
            pow2 = paddle.to_tensor([[float(2 ** b) for b in range(min(PART_BITS, k - q, lo + WORD_BITS - q))]],
                                    dtype="float32")
            part = paddle.matmul(pow2, sure[q:q + pow2.shape[1]])[0]
            word = word + paddle.cast(part, "float64") * float(2 ** (q - lo))
        cell_words.append(word)
    if pairs.shape[0] == 0:
        return _units(cell_words, None, None, d)
    return _units(cell_words, _undecided(probs, threshold, grid, pairs), pairs, d)


def _undecided(probs, threshold, grid, pairs):
    """The undecided pairs' bits at the slots of their cells: [Dd, 16] float64 per word, and a [Dd, 16]
    float64 code of the set within the cell (bit r: the cell's r-th undecided mask), exact when the
    cell has at most WORD_BITS undecided masks."""
    k, d = probs.shape[0], (grid[0] + 1) * (grid[1] + 1)
    count = count_values(pairs[:, 0], d)
    dirty = paddle.nonzero(count > 0).flatten()
    place = paddle.scatter(paddle.zeros([d], dtype="int64"), dirty, paddle.arange(dirty.shape[0], dtype="int64"))
    start = paddle.cumsum(count) - count
    rank = paddle.arange(pairs.shape[0], dtype="int64") - paddle.gather(start, pairs[:, 0])  # in its cell
    hits = paddle.nonzero((cell_values(probs, pairs[:, 1], pairs[:, 0], grid) > threshold).flatten()).flatten()
    size = dirty.shape[0] * 16
    if hits.shape[0] == 0:
        zero = paddle.zeros([dirty.shape[0], 16], dtype="float64")
        return dirty, [zero] * len(range(0, k, WORD_BITS)), zero, paddle.gather(count, dirty)
    pair = hits // 16
    slot = paddle.gather(place, paddle.gather(pairs[:, 0], pair)) * 16 + hits % 16
    mask, bit = paddle.gather(pairs[:, 1], pair), paddle.gather(rank, pair)
    pow2 = paddle.to_tensor([float(2 ** b) for b in range(WORD_BITS)], dtype="float64")
    code = count_values(slot, size, paddle.gather(pow2, paddle.clip(_f32(bit), 0, WORD_BITS - 1).astype("int64")))
    words = []
    for lo in range(0, k, WORD_BITS):
        b = mask - lo
        weight = paddle.gather(pow2, paddle.clip(_f32(b), 0, WORD_BITS - 1).astype("int64"))
        weight = weight * paddle.cast(paddle.logical_and(b >= 0, b < WORD_BITS), "float64")
        words.append(count_values(slot, size, weight).reshape([-1, 16]))
    return dirty, words, code.reshape([-1, 16]), paddle.gather(count, dirty)


def _units(cell_words, undecided, pairs, d):
    """`thing_units`' units from the words of the cells [D] and `_undecided`'s slot words and codes.
    Units are numbered by cell (one per cell without undecided masks), then by first slot."""
    cell = paddle.arange(d, dtype="int64")
    if undecided is None:
        return cell_words, (cell.unsqueeze(1) + paddle.zeros([1, 16], dtype="int64")).flatten()
    dirty, slot_words, code, count = undecided
    # the slots of equal codes: sort each cell's 16 codes, a run of equal codes goes to its first slot
    order = paddle.argsort(code, axis=1)
    ordered = paddle.take_along_axis(code, order, axis=1)
    new = paddle.concat([paddle.ones([code.shape[0], 1], dtype="bool"), ordered[:, 1:] != ordered[:, :-1]], 1)
    start = paddle.cummax(_i64(new) * paddle.arange(16, dtype="int64"), axis=1)[0]
    first = paddle.put_along_axis(order, order, paddle.take_along_axis(order, start, axis=1), axis=1)
    own = paddle.arange(16, dtype="int64").unsqueeze(0) + paddle.zeros_like(first)
    first = paddle.where((count <= WORD_BITS).unsqueeze(1), first, own)  # codes exact only up to WORD_BITS
    is_rep = _i64(first == own)
    per_cell = paddle.scatter(paddle.ones([d], dtype="int64"), dirty, is_rep.sum(axis=1))
    offset = paddle.cumsum(per_cell) - per_cell  # first unit of each cell
    rank = paddle.take_along_axis(paddle.cumsum(is_rep, axis=1) - 1, first, axis=1)  # [Dd, 16] in the cell
    table = offset.unsqueeze(1) + paddle.zeros([1, 16], dtype="int64")
    unit_of_slot = paddle.scatter(table, dirty, paddle.gather(offset, dirty).unsqueeze(1) + rank).flatten()
    reps = paddle.nonzero(is_rep)  # [Ud, 2]: (dirty cell, slot), in unit order
    rep_unit = paddle.gather(unit_of_slot, paddle.gather(dirty, reps[:, 0]) * 16 + reps[:, 1])
    cell_of_unit = paddle.repeat_interleave(cell, per_cell)
    words = []
    for cell_word, slot_word in zip(cell_words, slot_words):
        extra = paddle.gather_nd(slot_word, reps)  # the undecided masks' bits of the dirty units
        word = paddle.gather(cell_word, cell_of_unit)
        words.append(paddle.scatter(word, rep_unit, paddle.gather(word, rep_unit) + extra))
    return words, unit_of_slot


def argmax_channel(maps, grid):
    """Per-slot argmax over the channels of the upsampled maps (ties: the lower channel).

    Args:
        maps: [C, h, w] float32 stride-4 maps (values in [0, 1]); grid = (h, w, vh, vw).
    Returns:
        [D * 16] int64 channel per slot (`slot_of_pixel`); None when more than half of the
        (channel, cell) pairs are candidates somewhere undecided (then the full resize is cheaper).
    """
    upper, lower = cell_bounds(maps)
    d = upper.shape[1]
    cand = paddle.cast(upper >= lower.max(axis=0, keepdim=True) - MARGIN, "int32")  # [C, D]: may be the argmax
    count = _i64(cand.sum(axis=0))
    # where a cell has one candidate, it is the channel of the best lower bound
    channel = paddle.argmax(lower, axis=0).unsqueeze(1).expand([d, 16])
    amb = paddle.nonzero(count >= 2).flatten()  # [A] undecided cells
    if amb.shape[0] == 0:
        return channel.flatten()
    # the candidates of each undecided cell, by cell then channel: a [A, m] table (m = most candidates)
    pairs = paddle.nonzero(paddle.gather(cand, amb, axis=1).transpose([1, 0]))  # [N, 2]: (j, channel)
    if 2 * pairs.shape[0] > maps.shape[0] * d:
        return None
    values = cell_values(maps, pairs[:, 1], paddle.gather(amb, pairs[:, 0]), grid)
    m, a = int(count.max()), amb.shape[0]
    n_cand = paddle.gather(count, amb)
    start = paddle.cumsum(n_cand) - n_cand  # first pair of each cell
    pos = pairs[:, 0] * m + paddle.arange(pairs.shape[0], dtype="int64") - paddle.gather(start, pairs[:, 0])
    table = paddle.scatter(paddle.full([a * m, 16], -1.0, dtype="float32"), pos, values)  # -1: no candidate
    chans = paddle.scatter(paddle.zeros([a * m], dtype="int64"), pos, pairs[:, 1]).reshape([a, m])
    best = paddle.take_along_axis(chans, paddle.argmax(table.reshape([a, m, 16]), axis=1), axis=1)  # [A, 16]
    return paddle.scatter(channel, amb, best).flatten()
