"""PanopticFCN heads: position head, kernel head, feature encoder and the kernel embeddings.

- `PositionHead` (shared over P3..P7): num_convs x [3x3 conv (modulated deformable by default),
  GroupNorm, ReLU], then ``out_inst`` 3x3 -> thing-centre logits and ``out_sem`` 3x3 -> stuff-region
  logits, both initialised N(0, 0.01) with bias -2.19 (prior 0.1).
- `KernelHead` (shared over P3..P7): coordinate features (+2 channels), num_convs x [3x3 conv,
  GroupNorm, ReLU], ``out_conv`` 3x3 -> kernel features, N(0, 0.01), bias 0.
- `FeatureEncoder` (on the stride-4 semantic-FPN map): coordinate features, num_convs x [3x3
  conv, ReLU] (no norm by default; the "Star" variant uses deformable convs and 256 channels).
- `KernelEmbedding`: the thing / stuff generators' 1x1 ``embed_extractor`` (kernel features ->
  encoder channels), N(0, 0.01), bias 0.

Modulated deformable convolution (DCNv2): a 3x3 conv predicts 3*k*k channels, the first 2*k*k
are the offsets and the last k*k the mask logits (mask = sigmoid); it starts at zero, i.e. as a
plain convolution with mask 0.5. Paddle: `paddle.vision.ops.DeformConv2D(x, offset, mask)`.
"""
import paddle
import paddle.nn as nn
from paddle.vision.ops import DeformConv2D

from ...compat import linspace
from .fpn import group_norm

PRIOR_BIAS = -2.19  # log((1 - 0.1) / 0.1): initial probability 0.1


def _normal(std):
    return paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, std))


def _constant(value):
    return paddle.ParamAttr(initializer=nn.initializer.Constant(value))


def coord_features(x):
    """Append two channels: linspace(-1, 1) along the rows, then along the columns (CoordConv).

    x: [N, C, H, W] -> [N, C + 2, H, W].
    """
    shape = paddle.shape(x)
    # compat.linspace: paddle.linspace's values, exported to ONNX correctly for a 1-pixel side too
    ys = linspace(-1.0, 1.0, shape[2], dtype=x.dtype).reshape([1, 1, -1, 1])
    xs = linspace(-1.0, 1.0, shape[3], dtype=x.dtype).reshape([1, 1, 1, -1])
    zeros = paddle.zeros_like(x[:, :1])  # broadcasts the grids to [N, 1, H, W]
    return paddle.concat([x, ys + zeros, xs + zeros], axis=1)


class ModulatedDeformConv(nn.Layer):
    """3x3 DCNv2: offsets and mask from a zero-initialised 3x3 conv on the same input."""

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=1, bias=True):
        super().__init__()
        kk = kernel_size * kernel_size
        self.kk = kk
        self.offset_mask = nn.Conv2D(in_channels, 3 * kk, kernel_size, padding=padding,
                                     weight_attr=_constant(0.0), bias_attr=_constant(0.0))
        self.conv = DeformConv2D(in_channels, out_channels, kernel_size, padding=padding,
                                 bias_attr=None if bias else False)

    def forward(self, x):
        om = self.offset_mask(x)
        offset = om[:, :2 * self.kk]
        mask = paddle.nn.functional.sigmoid(om[:, 2 * self.kk:])
        return self.conv(x, offset, mask)


class ConvNormReLU(nn.Layer):
    """3x3 conv (or DCNv2) + optional GroupNorm + ReLU; the conv has a bias only without norm."""

    def __init__(self, in_channels, out_channels, use_dcn=False, norm_groups=None):
        super().__init__()
        bias = norm_groups is None
        if use_dcn:
            self.conv = ModulatedDeformConv(in_channels, out_channels, bias=bias)
        else:
            self.conv = nn.Conv2D(in_channels, out_channels, 3, padding=1, bias_attr=None if bias else False)
        self.norm = group_norm(norm_groups, out_channels) if norm_groups else None
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.act(x)


class _Tower(nn.Layer):
    def __init__(self, in_channels, channels, num_convs, use_dcn, norm_groups, coord):
        super().__init__()
        self.coord = bool(coord)
        first = in_channels + (2 if self.coord else 0)
        self.convs = nn.LayerList([ConvNormReLU(first if k == 0 else channels, channels, use_dcn, norm_groups)
                                   for k in range(num_convs)])

    def forward(self, x):
        if self.coord:
            x = coord_features(x)
        for conv in self.convs:
            x = conv(x)
        return x


class PositionHead(nn.Layer):
    """Feature map -> (thing-centre logits [N, T, h, w], stuff-region logits [N, S', h, w]).

    Args:
        in_channels, channels (int): input and tower width (256, 256); num_convs (int): 3.
        num_things, num_stuff (int): output channels T and S' (80 and 54 on COCO).
        use_dcn (bool): deformable tower convs (True); norm_groups (int or None): GroupNorm (32).
        coord (bool): coordinate features (False); bias_value (float): output bias (-2.19).
    """

    def __init__(self, in_channels, channels, num_convs, num_things, num_stuff, use_dcn=True, norm_groups=32,
                 coord=False, bias_value=PRIOR_BIAS):
        super().__init__()
        self.tower = _Tower(in_channels, channels, num_convs, use_dcn, norm_groups, coord)
        self.out_inst = nn.Conv2D(channels, num_things, 3, padding=1, weight_attr=_normal(0.01),
                                  bias_attr=_constant(bias_value))
        self.out_sem = nn.Conv2D(channels, num_stuff, 3, padding=1, weight_attr=_normal(0.01),
                                 bias_attr=_constant(bias_value))

    def forward(self, x):
        x = self.tower(x)
        return self.out_inst(x), self.out_sem(x)


class KernelHead(nn.Layer):
    """Feature map -> kernel features [N, channels, h, w] (coordinates on by default)."""

    def __init__(self, in_channels, channels, num_convs, use_dcn=False, norm_groups=32, coord=True):
        super().__init__()
        self.tower = _Tower(in_channels, channels, num_convs, use_dcn, norm_groups, coord)
        self.out_conv = nn.Conv2D(channels, channels, 3, padding=1, weight_attr=_normal(0.01),
                                  bias_attr=_constant(0.0))

    def forward(self, x):
        return self.out_conv(self.tower(x))


class FeatureEncoder(nn.Layer):
    """Stride-4 map -> encoded features [N, channels, H/4, W/4] (coordinates, no norm by default)."""

    def __init__(self, in_channels, channels=64, num_convs=3, use_dcn=False, norm_groups=None, coord=True):
        super().__init__()
        self.tower = _Tower(in_channels, channels, num_convs, use_dcn, norm_groups, coord)

    def forward(self, x):
        return self.tower(x)


class KernelEmbedding(nn.Layer):
    """The generators' 1x1 ``embed_extractor``: kernel features (C) -> mask kernels (E).

    It is linear, so it is applied to whole kernel maps (``forward``): gathering a position and
    embedding commute exactly. For stuff, where kernels are averages over a region,
    ``forward(x, with_bias=False)`` gives W x and the bias is added after the average (a 1x1 conv
    on the average equals the average of W x, plus b).
    """

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.weight = self.create_parameter([out_channels, in_channels, 1, 1], attr=_normal(0.01))
        self.bias = self.create_parameter([out_channels], attr=_constant(0.0), is_bias=True)

    def forward(self, x, with_bias=True):
        return paddle.nn.functional.conv2d(x, self.weight, self.bias if with_bias else None)
