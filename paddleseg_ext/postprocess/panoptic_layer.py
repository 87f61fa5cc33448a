"""Panoptic-DeepLab's post-processing as nn.Layers that `paddle.jit.to_static` traces whole:
`PanopticPostprocess` (semantic map, heatmap, offsets -> panoptic map) and
`PanopticDeepLabPostprocess` (the model's `build_postprocess`: network outputs of the pipeline ->
the maps and instance scores at the original image size), used eagerly by val/predict and traced
into the exported model.

It runs the same `panoptic_ops` functions as the eager `panoptic_postprocess`; the only
differences are where the settings come from: the class tables are sized by `num_classes` once
(eagerly: by the largest class in each map), and the label_divisor overflow, checked eagerly on
the instance numbers, is ruled out here up front by requiring top_k < label_divisor.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..utils import UserInputError
from . import panoptic_ops
from .post_processing import DEFAULT_VOID_LABEL, POSTPROCESS_DEFAULTS, _check_nms_args, _thing_ids_array


class PanopticPostprocess(nn.Layer):
    """Panoptic-DeepLab post-processing with traceable ops; gives exactly what
    `paddleseg_ext.postprocess.panoptic_postprocess` gives for the same settings (see
    `panoptic_ops` for the rules and tie-breaking).

    Args:
        num_classes (int): number of semantic classes C (semantic values are in [0, C)).
        thing_ids: thing class ids, each in [0, C).
        label_divisor, void_label, threshold, nms_kernel, top_k, stuff_area: as for
            `panoptic_postprocess` (top_k must be < label_divisor).
        group_block (int or None): how the grouping splits its work (`panoptic_ops.nearest_center`):
            scores per block eagerly, number of parts traced (fixed into the graph); None uses
            `panoptic_ops.GROUP_BLOCK` and `TRACED_GROUP_PARTS`. The maps do not depend on it.

    forward(semantic int [H, W], center float32 [1, H, W], offset float32 [2, H, W]) ->
    (panoptic int64 [H, W], centers int64 [K, 2] (y, x)).
    """

    def __init__(self, num_classes, thing_ids, label_divisor=1000, void_label=DEFAULT_VOID_LABEL,
                 threshold=POSTPROCESS_DEFAULTS["threshold"], nms_kernel=POSTPROCESS_DEFAULTS["nms_kernel"],
                 top_k=POSTPROCESS_DEFAULTS["top_k"], stuff_area=POSTPROCESS_DEFAULTS["stuff_area"], group_block=None):
        super().__init__()
        _check_nms_args(threshold, nms_kernel, top_k)
        things = _thing_ids_array(thing_ids)
        if things.size and things[-1] >= num_classes:
            raise UserInputError("thing_ids: {} out of range for num_classes={}".format(
                things[things >= num_classes].tolist(), num_classes))
        if top_k is None or top_k >= label_divisor:
            raise UserInputError("top_k: {} instances of one class would not fit under label_divisor={}; "
                                 "use top_k < label_divisor".format(top_k, label_divisor))
        self.label_divisor = int(label_divisor)
        self.void_label = int(void_label)
        self.thing_code, self.thing_classes = panoptic_ops.class_tables(things, int(num_classes), self.void_label)
        self.threshold = float(threshold)
        self.nms_kernel = int(nms_kernel)
        self.top_k = int(top_k)
        self.stuff_area = int(stuff_area)
        self.group_block = group_block

    def forward(self, semantic, center, offset):
        return self.group(semantic, center, offset)  # find_centers reads [1, H, W] as it is: no squeezed copy

    def group(self, semantic, heat, offset, groups=None, clamp=True):
        """`panoptic_ops.panoptic_from_outputs` with this layer's settings: semantic int [H, W], heat
        float32 [H, W] or [1, H, W], offset float32 [2, H, W] -> (panoptic int64 [H, W], centers int64 [K, 2]);
        `groups` (a dict) is filled for `panoptic_ops.instance_scores`; `clamp`: see there."""
        # int32, the type the steps work in (the cast there is then elided; Paddle's shape op refuses int16)
        panoptic, centers, _ = panoptic_ops.panoptic_from_outputs(
            semantic.astype("int32"), heat, offset, self.thing_code, self.thing_classes, self.label_divisor,
            self.stuff_area, self.void_label, self.threshold, self.nms_kernel, self.top_k, self.group_block,
            groups=groups, clamp=clamp)
        return panoptic, centers


def restore_image_size(tensors, valid_hw, ori_hw, align_corners, offset_index=None):
    """Dense outputs of the network input -> the original image's size.

    Args:
        tensors: list of float32 [1, c, H, W] maps over the network input.
        valid_hw, ori_hw: int64 [2] tensors (or int pairs): the top-left region of the input holding
            the image, and the image's size before the val transforms.
        align_corners (bool): the model's bilinear convention.
        offset_index (int or None): which tensor holds (dy, dx) offsets in input pixels; they are
            rescaled with the resize.
    Returns:
        list of [c, h, w] tensors with (h, w) = ori_hw: cropped to `valid_hw` and, when the
        transforms resized the image, bilinearly resized back. Eagerly an unchanged size is not
        resampled; traced, the resize always runs (resampling to the same size is exact).
    """
    valid = paddle.to_tensor(valid_hw, dtype="int64") if not isinstance(valid_hw, paddle.Tensor) else valid_hw
    ori = paddle.to_tensor(ori_hw, dtype="int64") if not isinstance(ori_hw, paddle.Tensor) else ori_hw
    valid, ori = valid.astype("int64"), ori.astype("int64")
    cropped = [paddle.slice(t, axes=[2, 3], starts=[0, 0], ends=valid) for t in tensors]
    if paddle.in_dynamic_mode() and valid.numpy().tolist() == ori.numpy().tolist():
        return [t[0] for t in cropped]
    out = [F.interpolate(t, size=ori, mode="bilinear", align_corners=align_corners) for t in cropped]
    if offset_index is not None:
        v, o = valid.astype("float32"), ori.astype("float32")
        scale = (o - 1.0) / paddle.clip(v - 1.0, min=1.0) if align_corners else o / v
        out[offset_index] = out[offset_index] * scale.reshape([1, 2, 1, 1])
    return [t[0] for t in out]


class PanopticDeepLabPostprocess(nn.Layer):
    """Panoptic-DeepLab inference after the network, for one image (the model's `build_postprocess`).

    forward(outputs, valid_hw, ori_hw): `outputs` = [semantic probabilities [1, C, H, W], centre
    heatmap [1, 1, H, W], offsets [1, 2, H, W]] (`PanopticDeepLab.inference_outputs`);
    `valid_hw`, `ori_hw` int64 [2]. Returns (panoptic int64 [h, w], semantic int64 [h, w],
    instance_ids int64 [M], instance_scores float32 [M, 2]) at (h, w) = ori_hw; the score columns
    are the model's `score_modes` (see `panoptic_ops.instance_scores`).

    Args:
        num_classes, thing_ids, label_divisor, void_label, threshold, nms_kernel, top_k,
        stuff_area, group_block: as for `PanopticPostprocess`.
        align_corners (bool): the model's bilinear convention, for resizing back.
    """

    def __init__(self, num_classes, thing_ids, label_divisor=1000, void_label=DEFAULT_VOID_LABEL,
                 threshold=POSTPROCESS_DEFAULTS["threshold"], nms_kernel=POSTPROCESS_DEFAULTS["nms_kernel"],
                 top_k=POSTPROCESS_DEFAULTS["top_k"], stuff_area=POSTPROCESS_DEFAULTS["stuff_area"],
                 align_corners=False, group_block=None):
        super().__init__()
        self.panoptic = PanopticPostprocess(num_classes, thing_ids, label_divisor=label_divisor,
                                            void_label=void_label, threshold=threshold, nms_kernel=nms_kernel,
                                            top_k=top_k, stuff_area=stuff_area, group_block=group_block)
        self.align_corners = bool(align_corners)

    def forward(self, outputs, valid_hw, ori_hw):
        probs, center, offset = restore_image_size(list(outputs[:3]), valid_hw, ori_hw, self.align_corners,
                                                   offset_index=2)
        semantic = paddle.argmax(probs, axis=0)
        groups = {}
        # an argmax over C channels (C + 1 with the oracle's void channel): no value above C to clamp
        panoptic, _ = self.panoptic.group(semantic, center[0], offset, groups, clamp=False)
        ids, scores = panoptic_ops.instance_scores(groups, probs, center[0])
        return panoptic, semantic, ids, scores
