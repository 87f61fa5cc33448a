"""Differences between the supported Paddle versions (2.6 and 3.x), in one place.

Each function names the Paddle version that needs its fallback path. The fallbacks give exactly
what the native op gives on the newer version (the tests in tests/test_compat.py check both paths
on whichever Paddle is installed), and they stay vectorised and traceable (`paddle.jit.to_static`).
"""
import inspect

import numpy as np
import paddle


def _parse_version(text):
    """(major, minor) of a Paddle version string; develop builds ('0.0.0') count as the newest."""
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 2:
        parts.append(0)
    version = tuple(parts)
    return (99, 0) if version == (0, 0) else version


PADDLE_VERSION = _parse_version(paddle.__version__)
# The oldest supported Paddle (setup.py, requirements.txt): older ones lack ops the project uses.
MIN_PADDLE = (2, 6)


def check_paddle_version(text):
    """Raise a one-line ImportError when the Paddle version `text` is older than MIN_PADDLE."""
    if _parse_version(text) < MIN_PADDLE:
        raise ImportError("paddleseg_ext needs paddlepaddle (or paddlepaddle-gpu) >= {}; installed: {}".format(
            ".".join(map(str, MIN_PADDLE)), text))


check_paddle_version(paddle.__version__)

# Paddle 2.6: paddle.argsort has no `stable` argument (added in 3.0).
_HAS_STABLE_ARGSORT = "stable" in inspect.signature(paddle.argsort).parameters
# Paddle 2.6: gather has no bool kernel and static-graph flatten refuses bool (3.0 takes both).
_HAS_BOOL_GATHER = PADDLE_VERSION >= (3, 0)
# Paddle 2.6: empty tensors break some ops (3.0 fixed them): a binary op between an empty tensor
# and a broadcast one ("The meta data must be valid when call the mutable data function"), stack
# or concat of only empty tensors, and bincount (ignores minlength on an empty input).
_EMPTY_OPS_OK = PADDLE_VERSION >= (3, 0)


def cpu_view(arr):
    """A CPU paddle tensor that shares the memory of the numpy array `arr` (no copy), or None where that is
    not possible (not C-contiguous, read only, a dtype without a DLPack code) and on Paddle 2.6, whose
    from_dlpack takes only a capsule and aborts the process on numpy's."""
    if PADDLE_VERSION < (3, 0) or not (isinstance(arr, np.ndarray) and arr.flags.c_contiguous
                                       and arr.flags.writeable):
        return None
    try:
        return paddle.utils.dlpack.from_dlpack(arr)
    except (AttributeError, BufferError, TypeError, ValueError, RuntimeError):
        return None


def numpy_view(tensor):
    """A numpy array sharing the memory of the CPU paddle tensor `tensor` (no copy), or None where that is
    not possible (another device, Paddle 2.6: its tensors have no ``__dlpack__``)."""
    if not tensor.place.is_cpu_place():
        return None
    try:
        return np.from_dlpack(tensor)
    except (AttributeError, BufferError, TypeError, ValueError, RuntimeError):
        return None


def argsort_stable(x, descending=False):
    """Indices that sort the 1-D tensor `x`, equal values kept in index order (like numpy's
    ``argsort(kind="stable")``; descending: order by (-x, index)). `x` must hold no NaN."""
    if _HAS_STABLE_ARGSORT:
        return paddle.argsort(x, descending=descending, stable=True)
    return argsort_stable_by_key(x, descending)  # Paddle 2.6


def argsort_stable_by_key(x, descending=False):
    """`argsort_stable` without argsort's `stable` flag (Paddle 2.6; runs on every version).

    A first (not necessarily stable) argsort puts equal values next to each other; numbering the
    runs of equal values gives each element the rank of its value, and the unique int64 keys
    rank * m + index (m = number of elements) sort in the stable order, whatever the second
    argsort does with ties (it has none). One padding element, whose key is made the largest,
    keeps every tensor non-empty when `x` is empty (see `_EMPTY_OPS_OK`).
    """
    n = paddle.shape(x)[0]
    padded = paddle.concat([x, paddle.zeros([1], dtype=x.dtype)])
    m = paddle.shape(padded)[0].astype("int64")
    order = paddle.argsort(padded, descending=descending)
    ordered = paddle.gather(padded, order)
    new_run = paddle.concat([paddle.ones([1], dtype="int64"), (ordered[1:] != ordered[:-1]).astype("int64")])
    rank = paddle.scatter(paddle.zeros_like(order), order, paddle.cumsum(new_run) - 1, overwrite=True)
    rank = paddle.concat([rank[:-1], m.reshape([1])])  # the padding element sorts last
    key = rank * m + paddle.arange(m, dtype="int64")
    return paddle.slice(paddle.argsort(key), [0], [0], [n])


def gather_bool(mask, index):
    """``paddle.gather`` of a bool tensor along axis 0."""
    if _HAS_BOOL_GATHER:
        return paddle.gather(mask, index)
    return paddle.gather(mask.astype("int32"), index).astype("bool")  # Paddle 2.6 (int32: a kernel on CPU and GPU)


def nonzero_1d(mask):
    """[N] int64 indices of the True values of a 1-D bool tensor (N may be 0). A reshape of nonzero's [N, 1]
    where it can (Paddle Inference copies a flatten's input, and reshapes a fresh tensor in place); Paddle 2.6's
    static graph needs flatten for N = 0."""
    found = paddle.nonzero(mask)
    return found.reshape([-1]) if _EMPTY_OPS_OK else found.flatten()


def floor_divmod(flat, width):
    """(flat // width, flat % width) of int64 `flat` ([N], N may be 0) by a scalar int64 tensor."""
    if _EMPTY_OPS_OK:
        return flat // width, flat % width
    # Paddle 2.6: one padding element keeps N > 0, dropped at the end.
    n = paddle.shape(flat)[0]
    padded = paddle.concat([flat, paddle.zeros([1], dtype=flat.dtype)])
    return paddle.slice(padded // width, [0], [0], [n]), paddle.slice(padded % width, [0], [0], [n])


def write_at(x, index, values, inplace=True):
    """x with x[index] = values, for a 1-D `x`, [M] int64 `index` without repeats (M may be 0) and [M] values:
    index_put, in place unless `inplace` is False (x must then be the caller's own tensor). Paddle 2.6's
    index_put fails on M = 0 ("The expanded size cannot be zero"): scatter there."""
    if not _EMPTY_OPS_OK:
        return paddle.scatter(x, index, values, overwrite=True)
    return paddle.index_put_(x, (index,), values) if inplace else paddle.index_put(x, (index,), values)


def bincount(x, length, weights=None):
    """Counts (or, with float `weights` [N], sums of weights) of the values of `x` ([N] int64, N may be
    0, values in [0, length)): [length] int64 (float64 with weights). `length` is an int or an int64
    scalar tensor."""
    if weights is not None:
        weights = weights.astype("float64")
    if _EMPTY_OPS_OK:
        out = paddle.bincount(x, weights=weights, minlength=length)
    else:
        # Paddle 2.6: a padding value `length` (weight 0) makes the input non-empty; its bin is dropped.
        pad = paddle.full([1], length, dtype=x.dtype) if isinstance(length, int) else length.astype(x.dtype).reshape([1])
        if weights is not None:
            weights = paddle.concat([weights, paddle.zeros([1], dtype="float64")])
        out = paddle.slice(paddle.bincount(paddle.concat([x, pad]), weights=weights, minlength=length),
                           [0], [0], [length])
    # a weighted bincount of no values comes back int64
    return out if weights is None else out.astype("float64")


def label_masks(labels, ids):
    """[M, H, W] bool masks ``labels == ids[m]`` of an [H, W] label map and [M] ids (M may be 0).
    Eager only (reads the sizes)."""
    if _EMPTY_OPS_OK or ids.shape[0] > 0:
        return labels.unsqueeze(0) == ids.reshape([-1, 1, 1])
    return paddle.zeros([0] + list(labels.shape), dtype="bool")  # Paddle 2.6: no empty broadcast


# Paddle 3.x's linspace kernel computes the first half as start + step * i and the second half as
# stop - step * (num - 1 - i) (float32 step); Paddle 2.6 rounds differently. paddle2onnx 2.1 converts
# linspace with step (stop - start) / (num - 1), NaN for num = 1 (a 1-pixel-high map).
_LINSPACE_HALVES = PADDLE_VERSION >= (3, 0)


def linspace(start, stop, num, dtype="float32"):
    """``paddle.linspace(start, stop, num, dtype)`` for python float `start`/`stop` and an int64 scalar
    tensor (or int) `num` >= 1, bit for bit, written with ops that paddle2onnx converts exactly
    (num = 1 included) on Paddle 3.x; Paddle 2.6 (no ONNX export) uses paddle.linspace itself."""
    if not _LINSPACE_HALVES:
        return paddle.linspace(start, stop, num, dtype=dtype)  # Paddle 2.6
    n = num.astype("int64").reshape([]) if isinstance(num, paddle.Tensor) else paddle.full([], int(num), "int64")
    i = paddle.arange(n, dtype="int64")
    step = (paddle.full([], float(stop) - float(start), dtype) /
            paddle.maximum(n - 1, paddle.ones([], "int64")).astype(dtype))
    low = float(start) + step * i.astype(dtype)
    high = float(stop) - step * (n - 1 - i).astype(dtype)
    return paddle.where((i < n // 2) | (n == 1), low, high)
