"""Feature pyramid (P2..P7) and the semantic-FPN merge to stride 4, as PanopticFCN uses them.

- `FPN`: lateral 1x1 and output 3x3 convolutions on the backbone's C2..C5 (strides 4..32), sum
  fusion with nearest-neighbour top-down upsampling, no normalisation (detectron2's FPN default);
  P6 = 3x3 stride-2 conv on P5 (the *output* P5, RetinaNet's "P6P7 from P5"), P7 = 3x3 stride-2
  conv on ReLU(P6). Weights use detectron2's ``c2_xavier_fill`` (Kaiming uniform, a = 1).
- `SemanticFPN`: for each of P2..P5, max(1, log2(stride / 4)) x [conv3x3, GroupNorm, ReLU], each
  followed by a bilinear x2 upsampling while above stride 4; the four maps are summed.

Upsamplings go to the size of the next finer map (the same as x2 when the input side is a
multiple of 32, and still well defined otherwise).
"""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...utils import UserInputError


def _xavier_fill():
    # detectron2 c2_xavier_fill: kaiming_uniform_(a=1) -> U(-sqrt(3 / fan_in), sqrt(3 / fan_in))
    return paddle.ParamAttr(initializer=nn.initializer.KaimingUniform(negative_slope=1.0, nonlinearity="leaky_relu"))


def _msra_fill():
    # detectron2 c2_msra_fill: kaiming_normal_(mode="fan_out", nonlinearity="relu")
    return paddle.ParamAttr(initializer=nn.initializer.KaimingNormal(nonlinearity="relu"))


def group_norm(num_groups, channels):
    """nn.GroupNorm with a clear error when `channels` is not a multiple of `num_groups`."""
    if channels % num_groups:
        raise UserInputError("GroupNorm: {} channels are not divisible by norm_groups={}; "
                             "choose channel widths that are multiples of norm_groups".format(channels, num_groups))
    return nn.GroupNorm(num_groups, channels)


class ConvGNReLU(nn.Layer):
    """3x3 conv (no bias, MSRA init) + GroupNorm + ReLU; the norm is named `norm` so that optimizer
    rules matching "norm" (e.g. no weight decay) find it."""

    def __init__(self, in_channels, channels, norm_groups):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, channels, 3, padding=1, weight_attr=_msra_fill(), bias_attr=False)
        self.norm = group_norm(norm_groups, channels)

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)))


class FPN(nn.Layer):
    """Backbone features C2..C5 -> [P2, P3, P4, P5, P6, P7], each `out_channels` wide.

    Args:
        in_channels (list[int]): channels of C2..C5 (finest first).
        out_channels (int): pyramid width (256).
    """

    def __init__(self, in_channels, out_channels=256):
        super().__init__()
        if len(in_channels) != 4:
            raise UserInputError("FPN needs 4 backbone features (strides 4..32), got {}".format(len(in_channels)))
        zero = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
        self.lateral = nn.LayerList([nn.Conv2D(c, out_channels, 1, weight_attr=_xavier_fill(), bias_attr=zero)
                                     for c in in_channels])
        self.output = nn.LayerList([nn.Conv2D(out_channels, out_channels, 3, padding=1, weight_attr=_xavier_fill(),
                                              bias_attr=zero) for _ in in_channels])
        self.p6 = nn.Conv2D(out_channels, out_channels, 3, stride=2, padding=1, weight_attr=_xavier_fill(),
                            bias_attr=zero)
        self.p7 = nn.Conv2D(out_channels, out_channels, 3, stride=2, padding=1, weight_attr=_xavier_fill(),
                            bias_attr=zero)

    def forward(self, feats):
        laterals = [conv(f) for conv, f in zip(self.lateral, feats)]
        merged = [None] * 4
        merged[3] = laterals[3]
        for i in (2, 1, 0):
            up = F.interpolate(merged[i + 1], size=paddle.shape(laterals[i])[2:], mode="nearest")
            merged[i] = laterals[i] + up
        outs = [conv(m) for conv, m in zip(self.output, merged)]
        p6 = self.p6(outs[3])
        p7 = self.p7(F.relu(p6))
        return outs + [p6, p7]


class SemanticFPN(nn.Layer):
    """[P2, P3, P4, P5] -> one stride-4 map of `channels` (Panoptic FPN's semantic branch).

    Args:
        in_channels (int): width of the pyramid maps.
        channels (int): output width (256).
        strides (list[int]): strides of the inputs, finest first (4, 8, 16, 32).
        norm_groups (int): GroupNorm groups (32).
    """

    def __init__(self, in_channels, channels=256, strides=(4, 8, 16, 32), norm_groups=32):
        super().__init__()
        self.strides = [int(s) for s in strides]
        common = self.strides[0]
        self.heads = nn.LayerList()
        for s in self.strides:
            n = max(1, int(round(math.log2(s) - math.log2(common))))
            self.heads.append(nn.LayerList([ConvGNReLU(in_channels if k == 0 else channels, channels, norm_groups)
                                            for k in range(n)]))

    def forward(self, feats):
        sizes = [paddle.shape(f)[2:] for f in feats]
        out = None
        for i, (convs, f) in enumerate(zip(self.heads, feats)):
            x = f
            for k, conv in enumerate(convs):
                x = conv(x)
                if i > 0:  # upsample towards stride 4, one octave per conv
                    x = F.interpolate(x, size=sizes[i - k - 1], mode="bilinear", align_corners=False)
            out = x if out is None else out + x
        return out
