"""The Panoptic-DeepLab post-processing steps as Paddle tensor functions (tech report "Panoptic-DeepLab in
PyTorch", Cheng et al., section 2.3).

One implementation for both uses: `panoptic_postprocess` calls these eagerly, and the exported
inference model (`PanopticPostprocess`) traces the very same calls into a static graph. For that,
every step is written with graph-friendly ops only: sizes that depend on the data (number of
centres K, of thing pixels P) stay tensors, full-size maps are flattened by `reshape` (Paddle Inference
copies a `flatten`'s input), and no Python branch depends on a tensor's value (the
branches here test Python settings such as `top_k is None` or the number of thing classes).
The functions are marked `not_to_static`, so tracing runs them as written instead of rewriting
their Python code. The traced graph also converts to ONNX (paddle2onnx 2.1, opset 17) and runs in
onnxruntime: paddle2onnx has no converter for `bincount` (traced under `onnx_compatible`, counting is a
`scatter_nd_add`, ONNX's ScatterND with reduction "add"), and onnxruntime cannot load the while loop with
tensor arrays that collected the grouping's pixel blocks (traced, `nearest_center` writes a fixed number
of parts).

Rules and tie-breaking (the contract of `panoptic_postprocess`):
1. centres: positions above max(threshold, 0) that equal their k x k window maximum; with more
   than top_k, the top_k highest (ties: lower raster index), kept in raster order;
2. every thing pixel joins the centre nearest to (y, x) + offset (exact float64 distances, ties:
   lower centre index);
3. each instance takes the majority thing class of its pixels (ties: smaller class id) and is
   numbered from 1 per class in centre order; stuff classes with fewer than stuff_area pixels
   and thing pixels when there is no centre become void.
"""
import contextlib

import numpy as np
import paddle
import paddle.nn.functional as F

from ..compat import argsort_stable, bincount, floor_divmod, nonzero_1d, write_at

# Thing pixels x centres per block of the grouping matmul: 2^18 float64 scores = 2 MB, small enough
# to stay in cache between the matmul and the argmin that reads it back (eager CPU, 525k thing
# pixels x 31: ~45 ms against ~50-90 ms with 2^21 and ~130 ms in one block). Grouping needs at
# most one such block beyond a few per-thing-pixel vectors, whatever K is, eagerly and traced.
GROUP_BLOCK = 1 << 18
# Traced, the thing pixels are split into this many parts (see nearest_center): 525k thing pixels x 31
# centres -> 8 MB of float64 scores per part.
TRACED_GROUP_PARTS = 16
# Where the extra "no centre" candidate sits: its squared distance (~2e16) exceeds that to any
# real centre, so it wins only when K = 0, and keeps argmin defined then without a branch.
_FAR_AWAY = 1e8
# Side of the square cells that screen the grouping (see nearest_center): 16 px cells over a 1025 x 2049
# image are 8.3k cells, so the cell x centre tables stay small next to the P thing pixels.
SCREEN_CELL = 16


def count_values(x, length, weights=None):
    """Counts (or, with `weights` [N], sums of the weights in float64) of the values of `x`.

    Args:
        x: [N] int32 or int64, N may be 0, values in [0, length).
        length: int or int64 scalar tensor.
        weights: None or [N] float/int tensor.
    Returns:
        [length] int64 counts, or float64 sums with weights.

    Paddle's bincount, except while tracing for ONNX (`onnx_compatible`): paddle2onnx 2.1 has no bincount
    converter, so there counting is a ScatterND with reduction "add" (`scatter_nd_add`; 4-5x slower in Paddle
    Inference), with one padding value `length` (weight 0), counted in a dropped extra bin, that keeps the
    input non-empty (Paddle 2.6's empty-tensor ops, see compat). Both add the values in index order, so the
    sums are the same.
    """
    if not _tracing_for_onnx():
        return bincount(x, length, weights)
    end = paddle.full([1], length, dtype="int64") if isinstance(length, int) else length.astype("int64").reshape([1])
    index = paddle.concat([x.astype("int64"), end]).unsqueeze(1)
    if weights is None:
        values, dtype = paddle.ones([paddle.shape(index)[0]], dtype="int64"), "int64"
    else:
        values, dtype = paddle.concat([weights.astype("float64"), paddle.zeros([1], dtype="float64")]), "float64"
    table = paddle.zeros(end + 1, dtype=dtype)
    return paddle.slice(paddle.scatter_nd_add(table, index, values), [0], [0], end)


_ONNX_TRACING = [False]


def _tracing_for_onnx():
    """True while tracing under `onnx_compatible` (eager calls inside it run the fast ops)."""
    return _ONNX_TRACING[0] and not paddle.in_dynamic_mode()


def _write(x, index, values):
    """`x` ([N], a tensor of the caller's own) with x[index] = values ([M] int64 index, no repeats).

    In place (`compat.write_at`): the 525k thing pixels of the benchmark are written in ~1.3 ms, where
    out-of-place index_put or scatter first copy the whole map (~3 ms on 2 cores). paddle2onnx 2.1 converts
    only the out-of-place index_put, so that is what tracing under `onnx_compatible` writes."""
    return write_at(x, index, values, inplace=not _tracing_for_onnx())


@contextlib.contextmanager
def onnx_compatible():
    """Within the block, tracing writes only ops that paddle2onnx converts (see `count_values`): trace the
    graph that goes to ONNX under it, the one for Paddle Inference outside it."""
    previous, _ONNX_TRACING[0] = _ONNX_TRACING[0], True
    try:
        yield
    finally:
        _ONNX_TRACING[0] = previous


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
        heat: [H, W] or [1, H, W] float32 centre heatmap.
        threshold (float), nms_kernel (odd int), top_k (int or None): see module docstring.
    Returns:
        [K, 2] int64 (y, x) in raster order.

    Only the N pixels above the threshold can be centres, so only they are read, by their (y, x) (`gather_nd`
    on the map as it comes: no flattened copy), instead of max pooling the whole map. A centre is at least
    as high as each of its neighbours, so two cheap tests come first, each on the survivors of the one
    before: the left and right neighbours (on a smooth heatmap one pixel per row of a blob is left), then the
    upper and lower ones; only the few survivors read their whole k x k window. Neighbours are clipped to
    the image, as max pooling ignores its padding; a pixel at or below the threshold never beats a candidate
    (candidates are above it), so reading it is harmless. The cost grows with N (at worst every pixel).
    """
    lead = len(heat.shape) - 2  # 0 or 1 leading axes of size 1
    size = paddle.shape(heat).astype("int64")
    height, width = size[lead], size[lead + 1]
    r = (nms_kernel - 1) // 2
    yx = paddle.nonzero(heat > max(float(threshold), 0.0))
    n = paddle.shape(yx)[0]
    # one padding candidate (0, 0) at position n, never kept, keeps every tensor non-empty (Paddle 2.6)
    yx = paddle.concat([yx, paddle.zeros([1, lead + 2], dtype="int64")])
    y, x = yx[:, lead], yx[:, lead + 1]
    value = paddle.gather_nd(heat, yx)
    keep = paddle.arange(n + 1, dtype="int64")  # positions in `yx` still in the running
    tests = [(0, 1), (1, 0), None] if r >= 1 else []  # kernel 1: every candidate is a centre
    for step in tests:
        cy, cx, v = paddle.gather(y, keep), paddle.gather(x, keep), paddle.gather(value, keep)
        if step is None:
            peak = v >= _window_max(heat, cy, cx, height, width, r)
        else:
            dy, dx = step
            peak = paddle.logical_and(v >= _heat_at(heat, _clip(cy - dy, height), _clip(cx - dx, width)),
                                      v >= _heat_at(heat, _clip(cy + dy, height), _clip(cx + dx, width)))
        keep = paddle.gather(keep, nonzero_1d(paddle.logical_and(peak, keep < n)))
        keep = paddle.concat([keep, n.reshape([1]).astype("int64")])  # the padding candidate again
    keep = paddle.slice(keep, [0], [0], [paddle.shape(keep)[0] - 1])
    if top_k is not None:
        # Stable descending sort keeps raster order among equal scores; a slice past the end
        # keeps all (no branch on K), and re-sorting the kept positions restores raster order.
        best = argsort_stable(paddle.gather(value, keep), descending=True)[:top_k]
        keep = paddle.gather(keep, paddle.sort(best))
    centers = paddle.gather(yx, keep)  # a gather of rows, where stacking y and x fails on K = 0 (Paddle 2.6)
    return centers[:, lead:] if lead else centers


def _clip(v, size):
    """[N] int64 `v` clipped to [0, size - 1] (size: an int64 scalar tensor)."""
    return paddle.maximum(paddle.minimum(v, size - 1), paddle.zeros([1], dtype="int64"))


def _heat_at(heat, y, x):
    """Values of `heat` ([H, W] or [1, H, W]) at (y, x) ([...] int64 each)."""
    index = [y, x] if len(heat.shape) == 2 else [paddle.zeros_like(y), y, x]
    return paddle.gather_nd(heat, paddle.stack(index, axis=-1))


def _window_max(heat, y, x, height, width, r):
    """[N] float32 maximum of `heat` over the (2r + 1)^2 window around each (y, x) ([N] int64), clipped to
    the image.

    The N x k^2 rows and columns of the window cells come from one float64 matmul each, of the k clipped
    rows (columns) with a constant 0/1 selection matrix (exact: small integers). A broadcasting add of that
    size is several times slower in Paddle's CPU kernels, and the tile/expand alternatives do not survive
    Paddle Inference's and paddle2onnx's shape handling.
    """
    k = 2 * r + 1
    d = paddle.arange(-r, r + 1, dtype="int64")
    rows = _clip(y.unsqueeze(1) + d, height).astype("float64")  # [N, k]
    cols = _clip(x.unsqueeze(1) + d, width).astype("float64")
    # window cell (i, j), i * k + j: row i, column j
    pick_row = paddle.to_tensor(np.repeat(np.eye(k), k, axis=1))
    pick_col = paddle.to_tensor(np.tile(np.eye(k), (1, k)))
    cell_y = paddle.matmul(rows, pick_row).astype("int64")
    cell_x = paddle.matmul(cols, pick_col).astype("int64")
    return _heat_at(heat, cell_y, cell_x).max(axis=1)


@paddle.jit.not_to_static
def nearest_center(qy, qx, centers, block=None, extent=None):
    """Index of the centre nearest to each point (ties: lowest index); K when there is no centre.

    Args:
        qy, qx: [P] float32, where each pixel's offset points.
        centers: [K, 2] int64 (y, x), K >= 0.
        block (int): eagerly, pixels x centres scores computed at once (default GROUP_BLOCK);
            traced, the number of parts the pixels are split into (default TRACED_GROUP_PARTS).
        extent: None, or (height, width) int64 scalar tensors: screen the points by cells of the image
            first (see `_cell_owner`), so that only the points of cells that several centres may own, or
            outside the image, are compared with every centre. The answer is the same either way.
    Returns:
        [P] int64 in [0, K] (K only when K = 0).

    Screening: for a trained network the offsets point into small discs around the centres, so almost every
    point lies in a cell that one centre owns (1025 x 2049 benchmark: 525k points, 30 centres: 35 ms -> a few ms).
    """
    c = paddle.concat([centers.astype("float64"), paddle.full([1, 2], _FAR_AWAY, dtype="float64")], axis=0)
    cy, cx = c[:, 0], c[:, 1]
    cmat = paddle.stack([-2.0 * cy, -2.0 * cx, cy * cy + cx * cx], axis=0)  # [3, K + 1]
    if extent is None:
        return _nearest_exact(qy, qx, cmat, block)
    n = paddle.shape(qy)[0].astype("int64")
    # One padding point outside the image (so sent to the exact path) keeps every tensor non-empty (Paddle 2.6).
    qy = paddle.concat([qy, paddle.full([1], -1.0, dtype=qy.dtype)])
    qx = paddle.concat([qx, paddle.full([1], -1.0, dtype=qx.dtype)])
    ny, nx = _grid_shape(extent)
    owner = _cell_owner(c, ny, nx)

    def ring_index(q, count):  # cell index + 1 along one axis: 0 and count + 1 are the ring outside the image
        i = paddle.floor(q * (1.0 / SCREEN_CELL)) + 1.0  # exact: a power of two, then an integer + 1
        # clip with tensor bounds runs as one unary kernel, where minimum/maximum with a scalar tensor take
        # Paddle's broadcasting path (4x slower); clip keeps NaN, handled below
        return paddle.clip(i, 0.0, (count + 1).astype(q.dtype).reshape([1]))

    cell = paddle.scale(ring_index(qy, ny), scale=(nx + 2).astype(qy.dtype).reshape([1])) + ring_index(qx, nx)
    cell = paddle.where(paddle.isnan(cell), paddle.zeros_like(cell), cell)  # NaN offsets -> ring cell 0
    choice = paddle.gather(owner, cell.astype("int64"))  # < 2^24 cells: exact in float32
    todo = nonzero_1d(choice < 0)
    exact = _nearest_exact(paddle.gather(qy, todo), paddle.gather(qx, todo), cmat, block)
    return paddle.slice(paddle.scatter(choice, todo, exact, overwrite=True), [0], [0], n.reshape([1]))


def _grid_shape(extent):
    """(ny, nx) int64 scalar tensors: the cells of side SCREEN_CELL that tile an image of `extent`
    ((height, width) int64 scalar tensors), ny = ceil(height / SCREEN_CELL), nx likewise."""
    return (extent[0] + SCREEN_CELL - 1) // SCREEN_CELL, (extent[1] + SCREEN_CELL - 1) // SCREEN_CELL


def _cell_owner(c, ny, nx):
    """The one centre that can be nearest to any point of each cell, or -1.

    Args:
        c: [K + 1, 2] float64 centres (y, x), the last one the far-away "no centre".
        ny, nx: int64 scalar tensors, the cells of side SCREEN_CELL along each axis (`_grid_shape`).
    Returns:
        [(ny + 2) * (nx + 2)] int64 owner index per cell (row-major, with a ring of ownerless cells around
        the image).

    A centre can be nearest to a point of a cell only if its smallest distance to the cell is at most the
    smallest, over all centres, of the largest distance to the cell; a cell where a single centre passes
    that test belongs to it, strictly: every other centre is farther from every point of the cell. All
    terms are integers below 2^53 (cell corners and centres), so the test is exact in float64.
    """
    s = float(SCREEN_CELL)

    def axis_bounds(n, centre):  # [n, K + 1] smallest and largest squared distance along one axis
        lo = paddle.arange(n, dtype="int64").astype("float64").unsqueeze(1) * s
        above, below = centre - lo, (lo + s) - centre  # signed distances to the cell's two edges
        near = paddle.maximum(-paddle.minimum(above, below), paddle.zeros([1], dtype="float64"))
        far = paddle.maximum(above, below)
        return near * near, far * far

    near_y, far_y = axis_bounds(ny, c[:, 0].unsqueeze(0))
    near_x, far_x = axis_bounds(nx, c[:, 1].unsqueeze(0))
    # cells with a ring of cells outside the image around them ((ny + 2) x (nx + 2), row-major), where
    # nearest_center sends the points beyond the image; the ring's cells belong to nobody
    cells = paddle.arange((ny + 2) * (nx + 2), dtype="int64")
    row_of, col_of = cells // (nx + 2) - 1, cells % (nx + 2) - 1
    inside = paddle.logical_and(paddle.logical_and(row_of >= 0, row_of < ny),
                                paddle.logical_and(col_of >= 0, col_of < nx))
    row_of, col_of = _clip(row_of, ny), _clip(col_of, nx)
    nearest = paddle.gather(near_y, row_of) + paddle.gather(near_x, col_of)  # [cells, K + 1]
    farthest = paddle.gather(far_y, row_of) + paddle.gather(far_x, col_of)
    candidate = (nearest <= farthest.min(axis=1, keepdim=True)).astype("int64")
    single = paddle.logical_and(candidate.sum(axis=1) == 1, inside)
    return paddle.where(single, paddle.argmax(candidate, axis=1), paddle.full_like(single, -1, dtype="int64"))


def _nearest_exact(qy, qx, cmat, block):
    """`nearest_center` by comparing every point with every centre: argmin_k |q - c_k|^2 =
    argmin_k (|c_k|^2 - 2 q . c_k), one [B, 3] x [3, K + 1] matmul (`cmat`, float64) per block of B points,
    never a [P, K, 2] tensor. In float64 every term is exact (c are integers below 2^24, q float32), so the
    comparison is exact, unlike float32 where the expanded form would cancel catastrophically; hence any
    split into blocks gives the same answer. Eagerly the blocks run in a Python loop (a block of scores stays
    in cache). Traced, the points are split into a fixed number of equal parts written out in the graph,
    without a loop op: ONNX cannot express the tensor-array loop that collected the blocks before, and a
    while op carrying the result measured 2x slower in Paddle Inference. Memory: one part's scores.
    """
    n = paddle.shape(qy)[0].astype("int64")
    if paddle.in_dynamic_mode():
        if int(n) == 0:  # Paddle 2.6 cannot stack empty tensors
            return paddle.zeros([0], dtype="int64")
        rows = max((GROUP_BLOCK if block is None else int(block)) // int(cmat.shape[1]), 1)
        q = paddle.stack([qy.astype("float64"), qx.astype("float64"), paddle.ones_like(qy, dtype="float64")], axis=1)
        return paddle.concat([paddle.argmin(paddle.matmul(q[i:i + rows], cmat), axis=1)
                              for i in range(0, int(n), rows)])
    parts = TRACED_GROUP_PARTS if block is None else int(block)
    # Padding to a positive multiple of `parts` keeps every part non-empty (Paddle 2.6) and equal.
    rows = n // parts + 1
    pad = paddle.zeros([rows * parts - n], dtype="float64")
    q = paddle.stack([paddle.concat([qy.astype("float64"), pad]), paddle.concat([qx.astype("float64"), pad]),
                      paddle.ones([rows * parts], dtype="float64")], axis=1).reshape([parts, -1, 3])
    # q[i]: one slice op per part (bounds computed in the graph would add four more ops each)
    nearest = [paddle.argmin(paddle.matmul(q[i], cmat), axis=1) for i in range(parts)]
    return paddle.slice(paddle.concat(nearest), [0], [0], [n])


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
    votes = count_values(instance * num_things + thing_index, num_slots * num_things).reshape([-1, num_things])
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
                          void_label, threshold, nms_kernel, top_k, block=None, groups=None, clamp=True):
    """The whole post-processing on one image.

    Args:
        semantic: [H, W] integer class map (any integer dtype), values in [0, C); values >= C are void.
        heat: [H, W] or [1, H, W] float32 centre heatmap.
        offsets: [2, H, W] float32 (dy, dx).
        thing_code, thing_classes: numpy tables of `class_tables` for C classes.
        label_divisor, stuff_area, void_label (int), threshold, nms_kernel, top_k: see module.
        block: grouping block size, see `nearest_center`.
        groups (dict or None): when a dict, filled with the grouping for `instance_scores`:
            `pix` [P] raster index of each thing pixel, `instance` [P] its centre slot,
            `slot_class` [K + 1] class id and `slot_label` [K + 1] panoptic id of each slot
            (`void_label` for slot K and for slots without pixels), and `void_label`. Left empty
            without thing classes.
        clamp (bool): map semantic values above C to C (void). False where the caller knows no value
            exceeds C (an argmax over C or C + 1 channels; the eager `panoptic_postprocess`, whose tables
            cover the map's maximum): a full-size pass less.
    Returns:
        panoptic: [H, W] int64; centers: [K, 2] int64 (y, x);
        number: [K + 1] int64 instance number of each centre within its class (0: no pixels),
        for callers that check it against label_divisor.
    """
    num_classes, num_things = thing_code.size, thing_classes.size
    # values >= C are void (the oracle's void channel, PanopticDeepLab.apply_oracle): one more table entry
    # int32 for the full-size passes (class ids are small): half the memory traffic of int64, and Paddle
    # Inference's int64 clip is several times slower than its int32 one
    # cast before flattening: Paddle Inference copies a reshape of a model input, not one of a fresh tensor
    sem = semantic.astype("int32").reshape([-1])
    if clamp:
        sem = paddle.clip(sem, 0, num_classes)
    width = paddle.shape(semantic)[1].astype("int64")
    # One per-class table gathered once per pixel: stuff classes map to their label (or void when
    # too small), thing classes to their code `base - t` (see class_tables).
    area = count_values(sem, num_classes + 1)[:num_classes].astype("int64")  # value num_classes: void (an oracle's)
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
    # thing pixels, raster order; against a [1] tensor: eagerly, comparing an int64 map with a Python int
    # first fills a whole map with it (2.0 ms against 1.5 ms at 1025 x 2049)
    pix = nonzero_1d(panoptic <= paddle.full([1], base, dtype="int64"))
    thing_index = base - paddle.gather(panoptic, pix)
    # Where each thing pixel's offset points, in float32 like the network's output.
    y, x = floor_divmod(pix, width)
    qy = y.astype("float32") + paddle.gather(offsets[0].reshape([-1]), pix)
    qx = x.astype("float32") + paddle.gather(offsets[1].reshape([-1]), pix)
    instance = nearest_center(qy, qx, centers, block, (paddle.shape(semantic)[0].astype("int64"), width))
    winner, number = vote_and_number(instance, thing_index, num_centers + 1, num_things)
    label = paddle.gather(paddle.to_tensor(thing_classes), winner) * label_divisor + number
    # slot K gathers the thing pixels of an image without centres: they are void
    label = paddle.where(paddle.arange(num_centers + 1, dtype="int64") < num_centers, label,
                         paddle.full_like(label, void_label))
    panoptic = _write(panoptic, pix, paddle.gather(label, instance))
    if groups is not None:
        groups.update(pix=pix, instance=instance, slot_class=paddle.gather(paddle.to_tensor(thing_classes), winner),
                      slot_label=paddle.where(number > 0, label, paddle.full_like(label, void_label)),
                      void_label=int(void_label))
    return panoptic.reshape(paddle.shape(semantic)), centers, number


@paddle.jit.not_to_static
def mask_scores(member, pix, member_class, num_members, probs, heat):
    """The two AP confidences of masks given as lists of pixels (Panoptic-DeepLab's evaluation).

    Args:
        member: [P] int64 mask index of each listed pixel, in [0, num_members).
        pix: [P] int64 raster index of each listed pixel.
        member_class: [num_members] int64 class of each mask (any value for masks without pixels).
        num_members: int or int64 scalar tensor.
        probs: [C, H, W] float32 semantic probabilities; heat: [H, W] float32 centre heatmap.
    Returns:
        count [num_members] float64 pixels per mask; score [num_members] float32, the mean
        probability of the mask's class over the mask; score x the heatmap at the mask's centroid
        (floor of its mean y and mean x), float32. Masks without pixels score 0 (count clipped to 1).
    """
    count = count_values(member, num_members).astype("float64")
    safe = paddle.maximum(count, paddle.ones_like(count))
    width = paddle.shape(heat)[1].astype("int64")
    area = paddle.shape(heat)[0].astype("int64") * width
    own = paddle.gather(probs.reshape([-1]), paddle.gather(member_class, member) * area + pix)
    score = (count_values(member, num_members, own) / safe).astype("float32")
    y, x = floor_divmod(pix, width)
    cy = paddle.floor(count_values(member, num_members, y) / safe)
    cx = paddle.floor(count_values(member, num_members, x) / safe)
    at_centroid = paddle.gather(heat.reshape([-1]), (cy * width.astype("float64") + cx).astype("int64"))
    return count, score, score * at_centroid


@paddle.jit.not_to_static
def instance_scores(groups, probs, heat):
    """Confidences of the thing instances found by `panoptic_from_outputs`, for instance AP.

    Args:
        groups (dict): the `groups` that `panoptic_from_outputs` filled (empty: no thing classes).
        probs: [C, H, W] float32 semantic probabilities; heat: [H, W] float32 centre heatmap.
    Returns:
        ids [M] int64 panoptic ids of the instances (slots with pixels, centre order) and scores
        [M, 2] float32: the two columns of `mask_scores`.
    """
    if not groups:
        return paddle.zeros([0], dtype="int64"), paddle.zeros([0, 2], dtype="float32")
    slot_label = groups["slot_label"]
    n_slots = paddle.shape(slot_label)[0].astype("int64")
    # One extra pixel (pixel 0) in an extra slot keeps every tensor non-empty when no pixel is a thing's
    # (Paddle 2.6's gather and elementwise ops, eager and in Paddle Inference, fail on empty tensors); the
    # extra slot is its own bin and is dropped, so the real slots' sums are unchanged.
    member = paddle.concat([groups["instance"], n_slots.reshape([1])])
    pix = paddle.concat([groups["pix"], paddle.zeros([1], dtype="int64")])
    member_class = paddle.concat([groups["slot_class"], paddle.zeros([1], dtype=groups["slot_class"].dtype)])
    count, score, both = (paddle.slice(t, [0], [0], n_slots.reshape([1]))
                          for t in mask_scores(member, pix, member_class, n_slots + 1, probs, heat))
    keep = nonzero_1d(paddle.logical_and(count > 0, slot_label != groups["void_label"]))
    return paddle.gather(slot_label, keep), paddle.gather(paddle.stack([score, both], axis=1), keep)
