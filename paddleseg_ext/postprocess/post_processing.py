"""Panoptic-DeepLab post-processing (tech report "Panoptic-DeepLab in PyTorch", section 2.3), vectorised in Paddle.

Three steps: (1) centre NMS on the centre heatmap, (2) every 'thing' pixel goes to the centre
nearest to where its offset points, (3) each instance takes the majority thing class of its
pixels and stuff classes are pasted where their total area is large enough.

This file is the eager front end: it checks and converts the inputs, sizes the class tables
from the data and runs the steps of `panoptic_ops`, the same functions the exported inference
model traces (`PanopticPostprocess`), so both give the same maps by construction. Everything runs
as Paddle ops on the device of the inputs (numpy inputs run on Paddle's current device and come
back as numpy). No Python loop over instances or classes; the only loop is over blocks of thing
pixels in the grouping step, which bounds its memory (see `panoptic_ops.GROUP_BLOCK`).

Differences from the PyTorch reference (bowenc0221/panoptic-deeplab), all deliberate:
- top_k: the reference keeps the centres *strictly above* the k-th score once there are at least
  k of them, so it keeps k-1 centres when exactly k are found and drops ties at the boundary.
  Here the k highest are kept only when more than k are found (ties: lower raster index first).
- grouping distances are exact (see `panoptic_ops.nearest_center`) where the reference rounds
  them in float32; the two can differ only for a pixel pointing within float32 rounding of a
  Voronoi boundary between two centres.
"""
import contextlib

import numpy as np
import paddle

from panoptic_metrics.panoptic_io import DEFAULT_VOID_LABEL

from ..compat import cpu_view, gather_bool, label_masks, numpy_view
from ..utils import UserInputError
from . import panoptic_ops

#: Panoptic-DeepLab's post-processing settings (the paper's Cityscapes values), the defaults of
#: `panoptic_postprocess`, of the model's `postprocess_defaults` and of a config's ``postprocess:`` block.
POSTPROCESS_DEFAULTS = {"threshold": 0.1, "nms_kernel": 7, "top_k": 200, "stuff_area": 2048}

# Class ids are counted with a bincount of length max(class) + 1; refuse absurd ids early.
_MAX_CLASS_ID = 1 << 20
# instance_scores counts ids through a table over 0..max(panoptic) up to this size (class 255 at
# label_divisor 1000 needs 256k), and sorts them (paddle.unique) beyond.
_MAX_LABEL_SLOTS = 1 << 22


# ----------------------------------------------------------------------------- input handling

def _is_tensor(x):
    return isinstance(x, paddle.Tensor)


def _device_of(place):
    """Paddle device string ('cpu', 'gpu:0') of a tensor place, or None to keep the current one."""
    if place.is_gpu_place():
        return "gpu:%d" % place.gpu_device_id()
    if place.is_cpu_place() or place.is_cuda_pinned_place():
        return "cpu"
    return None


@contextlib.contextmanager
def _run_on_device_of(*arrays):
    """Make Paddle's current device that of the first tensor among `arrays`, so that the
    tensors this module creates (arange, look-up tables) live next to the inputs."""
    tensors = [a for a in arrays if _is_tensor(a)]
    device = _device_of(tensors[0].place) if tensors else None
    previous = paddle.get_device()
    if device is None or device == previous:
        yield
        return
    paddle.set_device(device)
    try:
        yield
    finally:
        paddle.set_device(previous)


def _as_tensor(x, name):
    if _is_tensor(x):
        return x
    try:
        arr = np.ascontiguousarray(np.asarray(x))
    except (TypeError, ValueError) as e:
        raise UserInputError("{}: expected a numpy array or paddle tensor, got {!r} ({})".format(
            name, type(x).__name__, e))
    if arr.dtype == object:
        raise UserInputError("{}: expected a numeric array, got dtype object".format(name))
    # On CPU a zero-copy view of the numpy buffer (read only here); to_tensor would copy ~40 MB for a
    # 1025x2049 frame.
    view = cpu_view(arr) if paddle.get_device() == "cpu" else None
    return paddle.to_tensor(arr) if view is None else view


def _cast(t, dtype):
    return t if t.dtype == getattr(paddle, dtype) else t.astype(dtype)


def _squeeze_to(t, ndim, name, expected):
    """Drop leading size-1 axes until `t` has `ndim` axes (accepts a batch of one)."""
    while t.ndim > ndim and t.shape[0] == 1:
        t = t.squeeze(0)
    if t.ndim != ndim:
        raise UserInputError("{}: expected shape {}, got {}".format(name, expected, list(t.shape)))
    return t


def _check_int_dtype(t, name):
    if t.dtype not in (paddle.int64, paddle.int32, paddle.int16, paddle.int8, paddle.uint8):
        raise UserInputError("{}: expected an integer class map, got dtype {} "
                             "(use semantic_from_logits for logits)".format(name, t.dtype))


def _input(x, name, ndim, expected, dtype):
    """`x` as a tensor of `ndim` axes (leading size-1 axes dropped); dtype "int" checks for an
    integer map, any other dtype casts."""
    t = _squeeze_to(_as_tensor(x, name), ndim, name, expected)
    if dtype == "int":
        _check_int_dtype(t, name)
        return t
    return _cast(t, dtype)


def _thing_ids_array(thing_ids):
    ids = np.unique(np.asarray(list(thing_ids) if thing_ids is not None else [], dtype=np.int64))
    if ids.size and ids[0] < 0:
        raise UserInputError("thing_ids: class ids must be >= 0, got {}".format(ids.tolist()))
    return ids


def _to_output(t, like_tensor):
    return t if like_tensor else t.numpy()


# ----------------------------------------------------------------------------- public helpers

def semantic_from_logits(logits):
    """Per-pixel class of semantic logits or probabilities.

    Args:
        logits: [C, H, W] or [1, C, H, W] float, numpy array or paddle tensor.
    Returns:
        [H, W] int64 (argmax over C), of the same kind (numpy / paddle) as `logits`.
    """
    was_tensor = _is_tensor(logits)
    with _run_on_device_of(logits):
        t = _squeeze_to(_as_tensor(logits, "logits"), 3, "logits", "[C, H, W] or [1, C, H, W]")
        out = paddle.argmax(t, axis=0).astype("int64")
    return _to_output(out, was_tensor)


def find_instance_centers(center_heatmap, threshold=POSTPROCESS_DEFAULTS["threshold"],
                          nms_kernel=POSTPROCESS_DEFAULTS["nms_kernel"], top_k=POSTPROCESS_DEFAULTS["top_k"]):
    """Centre points by point NMS: peaks of a k x k max-pool (stride 1) above `threshold`.

    A position is a centre when its value is > max(threshold, 0) and equals the maximum of its
    k x k window (plateaus keep every tied position, like the reference).

    Args:
        center_heatmap: [H, W], [1, H, W] or [1, 1, H, W] float, numpy array or paddle tensor.
        threshold (float): values <= threshold (compared in float32, like torch's F.threshold
            on a float32 map) are never centres.
        nms_kernel (int): odd window size k.
        top_k (int or None): keep the top_k highest centres when more are found (ties: lower
            raster index first); None keeps all.
    Returns:
        [K, 2] int64 (y, x) in raster order, of the same kind as `center_heatmap`.
    """
    was_tensor = _is_tensor(center_heatmap)
    _check_nms_args(threshold, nms_kernel, top_k)
    with _run_on_device_of(center_heatmap):
        heat = _input(center_heatmap, "center_heatmap", 2, "[H, W] or [1, H, W]", "float32")
        centers = panoptic_ops.find_centers(heat, threshold, nms_kernel, top_k)
    return _to_output(centers, was_tensor)


def _check_nms_args(threshold, nms_kernel, top_k):
    if not isinstance(nms_kernel, (int, np.integer)) or nms_kernel < 1 or nms_kernel % 2 == 0:
        raise UserInputError("nms_kernel: expected an odd positive integer, got {!r}".format(nms_kernel))
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise UserInputError("top_k: expected a positive integer or None, got {!r}".format(top_k))
    try:
        float(threshold)
    except (TypeError, ValueError):
        raise UserInputError("threshold: expected a number, got {!r}".format(threshold))


# ----------------------------------------------------------------------------- main entry

def panoptic_postprocess(semantic, center_heatmap, offsets, thing_ids, label_divisor=1000,
                         stuff_area=POSTPROCESS_DEFAULTS["stuff_area"], void_label=DEFAULT_VOID_LABEL,
                         threshold=POSTPROCESS_DEFAULTS["threshold"], nms_kernel=POSTPROCESS_DEFAULTS["nms_kernel"],
                         top_k=POSTPROCESS_DEFAULTS["top_k"]):
    """Panoptic segmentation from Panoptic-DeepLab's three outputs.

    Args:
        semantic: [H, W] (or [1, H, W]) int class map, e.g. `semantic_from_logits(logits)`.
            Values must be >= 0; every value not in `thing_ids` is a stuff class (so a void
            class such as 255 in the input is pasted as 255 * label_divisor when its area is
            large enough: pass void_label = 255 * label_divisor to keep void consistent).
        center_heatmap: [H, W], [1, H, W] or [1, 1, H, W] float.
        offsets: [2, H, W] or [1, 2, H, W] float, (dy, dx) from a pixel to its centre.
        thing_ids: iterable of thing class ids (may be empty).
        label_divisor (int): panoptic = class * label_divisor + instance.
        stuff_area (int): stuff classes with fewer pixels than this become void.
        void_label (int): label of void pixels.
        threshold, nms_kernel, top_k: centre NMS, see `find_instance_centers`.
        All arrays are numpy arrays or paddle tensors (any device, computed there).
    Returns:
        panoptic: [H, W] int64. Thing pixels: class * label_divisor + instance, instances
            numbered from 1 per class in centre order; stuff pixels: class * label_divisor;
            void_label for stuff classes smaller than stuff_area and for thing pixels when no
            centre is found.
        centers: [K, 2] int64 (y, x) of the centres used, in raster order.
        Both numpy if `semantic` is numpy, else paddle tensors on the device of the inputs.
    """
    was_tensor = _is_tensor(semantic)
    _check_nms_args(threshold, nms_kernel, top_k)
    things = _thing_ids_array(thing_ids)
    label_divisor, stuff_area, void_label = int(label_divisor), int(stuff_area), int(void_label)
    if label_divisor < 1:
        raise UserInputError("label_divisor: expected a positive integer, got {}".format(label_divisor))

    with _run_on_device_of(semantic, center_heatmap, offsets):
        sem = _input(semantic, "semantic", 2, "[H, W]", "int")
        heat = _input(center_heatmap, "center_heatmap", 2, "[H, W] or [1, H, W]", "float32")
        off = _input(offsets, "offsets", 3, "[2, H, W]", "float32")
        h, w = sem.shape
        if list(heat.shape) != [h, w] or list(off.shape) != [2, h, w]:
            raise UserInputError(
                "semantic {}, center_heatmap {} and offsets {} must share H, W (offsets [2, H, W])".format(
                    list(sem.shape), list(heat.shape), list(off.shape)))
        if sem.dtype not in (paddle.int64, paddle.int32):
            sem = sem.astype("int32")  # the int32 the steps work in (Paddle's shape op refuses int16)
        panoptic, centers = _panoptic(sem, heat, off, things, label_divisor, stuff_area,
                                      void_label, float(threshold), int(nms_kernel), top_k)
    return _to_output(panoptic, was_tensor), _to_output(centers, was_tensor)


def _panoptic(sem, heat, off, things, label_divisor, stuff_area, void_label, threshold, nms_kernel, top_k):
    if sem.size == 0:
        return paddle.zeros(sem.shape, dtype="int64"), paddle.zeros([0, 2], dtype="int64")
    hi = _largest_class_id(sem)
    # Class tables over 0..max(semantic) (the exported model sizes them by num_classes instead).
    thing_code, thing_classes = panoptic_ops.class_tables(things, hi + 1, void_label)
    panoptic, centers, number = panoptic_ops.panoptic_from_outputs(
        sem, heat, off, thing_code, thing_classes, label_divisor, stuff_area, void_label,
        threshold, nms_kernel, top_k, clamp=False)
    if centers.shape[0] >= label_divisor and int(number.max()) >= label_divisor:
        raise UserInputError("label_divisor: {} instances of one class do not fit under label_divisor={}; "
                             "lower top_k or raise label_divisor".format(int(number.max()), label_divisor))
    return panoptic, centers


def _largest_class_id(sem):
    """max(sem) of an integer class map, after checking every value is in [0, _MAX_CLASS_ID) (one line
    naming the range otherwise). On CPU one numpy pass over the buffer read as unsigned integers, where a
    negative id reads as a huge one (~0.4 ms for 1025 x 2049 int64, where Paddle's min and max take ~2.8 ms);
    elsewhere Paddle's min and max."""
    view = numpy_view(sem)
    if view is not None and view.dtype.kind in "iu":
        top = int(view.view(np.dtype("u{}".format(view.dtype.itemsize))).max())
        if top < _MAX_CLASS_ID:
            return top
        lo, hi = int(view.min()), int(view.max())
    else:
        wide = _cast(sem, "int64")  # Paddle's min and max have no kernel for uint8 and int16
        lo, hi = int(wide.min()), int(wide.max())
        if lo >= 0 and hi < _MAX_CLASS_ID:
            return hi
    raise UserInputError("semantic: class ids must be in [0, {}), got values in [{}, {}]".format(
        _MAX_CLASS_ID, lo, hi))


# ----------------------------------------------------------------------------- scores for AP

def instance_scores(panoptic, semantic_probs, center_heatmap, thing_ids, label_divisor=1000,
                    void_label=DEFAULT_VOID_LABEL, return_masks=False):
    """Per thing instance of a panoptic map: class, area and the two AP confidence scores.

    Follows the Panoptic-DeepLab evaluation format (the two AP columns of bowenc0221/panoptic-deeplab's model zoo):
    `score_semantic` = mean over the instance mask of the semantic probability of its class;
    `score_semantic_x_instance` = that times the centre heatmap at the mask's centroid
    (floor of the mean y, mean x of its pixels), the reference's "both" score.

    Args:
        panoptic: [H, W] int (class * label_divisor + instance), e.g. from panoptic_postprocess.
        semantic_probs: [C, H, W] or [1, C, H, W] float, softmax of the semantic logits.
        center_heatmap: [H, W], [1, H, W] or [1, 1, H, W] float.
        thing_ids: thing class ids; a segment is an instance when its class is a thing, its
            instance number is > 0 and it is not `void_label`.
        label_divisor, void_label: as given to panoptic_postprocess.
        return_masks (bool): also return `masks` [M, H, W] bool (M x H x W memory).
    Returns:
        dict with, for the M instances in increasing panoptic id order:
        `ids` [M] int64 panoptic ids (mask of instance m: panoptic == ids[m]),
        `classes` [M] int64, `areas` [M] int64, `score_semantic` [M] float32,
        `score_semantic_x_instance` [M] float32, and `masks` if asked.
        numpy arrays if `panoptic` is numpy, else paddle tensors.
    """
    was_tensor = _is_tensor(panoptic)
    things = _thing_ids_array(thing_ids)
    label_divisor, void_label = int(label_divisor), int(void_label)
    with _run_on_device_of(panoptic, semantic_probs, center_heatmap):
        pan = _input(panoptic, "panoptic", 2, "[H, W]", "int")
        probs = _input(semantic_probs, "semantic_probs", 3, "[C, H, W]", "float32")
        heat = _input(center_heatmap, "center_heatmap", 2, "[H, W] or [1, H, W]", "float32")
        h, w = pan.shape
        n_cls = probs.shape[0]
        if list(probs.shape[1:]) != [h, w] or list(heat.shape) != [h, w]:
            raise UserInputError("panoptic {}, semantic_probs {} and center_heatmap {} must share H, W".format(
                list(pan.shape), list(probs.shape), list(heat.shape)))
        pan = _cast(pan, "int64")
        out = _instance_scores(pan.flatten(), probs, heat, things, label_divisor, void_label)
        if return_masks:
            out["masks"] = label_masks(pan, out["ids"])
    return {k: _to_output(v, was_tensor) for k, v in out.items()}


def _empty_scores():
    return {"ids": paddle.zeros([0], dtype="int64"), "classes": paddle.zeros([0], dtype="int64"),
            "areas": paddle.zeros([0], dtype="int64"),
            "score_semantic": paddle.zeros([0], dtype="float32"),
            "score_semantic_x_instance": paddle.zeros([0], dtype="float32")}


def _instance_scores(pan, probs, heat, things, label_divisor, void_label):
    """Which pixels belong to which instance of the flat panoptic map `pan`; the scores themselves
    are `panoptic_ops.mask_scores`, shared with the traced post-processing."""
    n_cls = probs.shape[0]
    if pan.shape[0] == 0 or things.size == 0:
        return _empty_scores()
    lo, hi = int(pan.min()), int(pan.max())
    shift = 0
    if lo < 0:
        # negative ids (a void_label of -1) are never instances: fold them into one slot, 0
        pan = paddle.clip(pan, min=-1) + 1
        shift = 1
    n_slots = hi + shift + 1
    if n_slots <= _MAX_LABEL_SLOTS:
        # A table over every id value 0..max: one bincount gives all areas, no sort needed.
        labels_np = np.arange(n_slots, dtype=np.int64) - shift
        is_instance_np = (np.isin(labels_np // label_divisor, things) & (labels_np % label_divisor > 0)
                          & (labels_np != void_label) & (labels_np >= 0))
        counts = paddle.bincount(pan, minlength=n_slots)
        present = paddle.to_tensor(is_instance_np) & (counts > 0)
        slot = paddle.nonzero(present).flatten()  # [M] id + shift of each instance, increasing
        if slot.shape[0] == 0:
            return _empty_scores()
        pix = paddle.nonzero(gather_bool(present, pan)).flatten()
        compact = paddle.cumsum(present.astype("int64")) - 1  # slot -> instance index
        member = paddle.gather(compact, paddle.gather(pan, pix))
        ids = slot - shift
        areas = paddle.gather(counts, slot)
    else:
        labels = pan - shift
        cls = labels // label_divisor
        # classes clipped to [-1, max thing + 1] and shifted by one index a small thing table
        top = int(things[-1]) + 1
        is_thing_np = np.zeros(top + 2, dtype=bool)
        is_thing_np[things + 1] = True
        is_instance = (gather_bool(paddle.to_tensor(is_thing_np), paddle.clip(cls, min=-1, max=top) + 1)
                       & (labels % label_divisor > 0) & (labels != void_label))
        pix = paddle.nonzero(is_instance).flatten()
        if pix.shape[0] == 0:
            return _empty_scores()
        ids, member, areas = paddle.unique(paddle.gather(labels, pix), return_inverse=True, return_counts=True)
        member = member.flatten()
    classes = ids // label_divisor
    if int(classes.max()) >= n_cls:
        raise UserInputError("semantic_probs: has {} classes but panoptic holds class {}".format(
            n_cls, int(classes.max())))
    _, score_sem, score_both = panoptic_ops.mask_scores(member, pix, classes, ids.shape[0], probs, heat)
    return {"ids": ids, "classes": classes, "areas": areas.astype("int64"), "score_semantic": score_sem,
            "score_semantic_x_instance": score_both}
