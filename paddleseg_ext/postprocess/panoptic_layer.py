"""`PanopticPostprocess`: the post-processing as an nn.Layer that `paddle.jit.to_static` traces whole,
for the exported inference model (`paddleseg_ext.core.export`).

It runs the same `panoptic_ops` functions as the eager `panoptic_postprocess`; the only
differences are where the settings come from: the class tables are sized by `num_classes` once
(eagerly: by the largest class in each map), and the label_divisor overflow, checked eagerly on
the instance numbers, is ruled out here up front by requiring top_k < label_divisor.
"""
import paddle.nn as nn

from ..utils import UserInputError
from . import panoptic_ops
from .post_processing import _check_nms_args, _thing_ids_array


class PanopticPostprocess(nn.Layer):
    """Panoptic-DeepLab post-processing with traceable ops; gives exactly what
    `paddleseg_ext.postprocess.panoptic_postprocess` gives for the same settings (see
    `panoptic_ops` for the rules and tie-breaking).

    Args:
        num_classes (int): number of semantic classes C (semantic values are in [0, C)).
        thing_ids: thing class ids, each in [0, C).
        label_divisor, void_label, threshold, nms_kernel, top_k, stuff_area: as for
            `panoptic_postprocess` (top_k must be < label_divisor).
        group_block (int or None): grouping block size (`panoptic_ops.nearest_center`); None
            uses `panoptic_ops.GROUP_BLOCK`, fixed into the graph when traced.

    forward(semantic int [H, W], center float32 [1, H, W], offset float32 [2, H, W]) ->
    (panoptic int64 [H, W], centers int64 [K, 2] (y, x)).
    """

    def __init__(self, num_classes, thing_ids, label_divisor=1000, void_label=255 * 1000, threshold=0.1,
                 nms_kernel=7, top_k=200, stuff_area=2048, group_block=None):
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
        panoptic, centers, _ = panoptic_ops.panoptic_from_outputs(
            semantic.astype("int64"), center.squeeze(0), offset, self.thing_code, self.thing_classes,
            self.label_divisor, self.stuff_area, self.void_label, self.threshold, self.nms_kernel, self.top_k,
            self.group_block)
        return panoptic, centers
