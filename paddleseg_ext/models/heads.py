"""Panoptic-DeepLab decoders and prediction heads (semantic branch and instance branch).

Sub-layer names follow PaddleSeg's released Panoptic-DeepLab model (``aspp.aspp_blocks``,
``aspp.global_avg_pool``, ``aspp.conv_bn_relu``, ``project``, ``fuse``, ``classifier``,
``depthwise_conv``/``piontwise_conv`` -- sic), so its ``model.pdparams`` loads key for key.
Convolutions followed by batch norm have no bias (the checkpoint has none).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddleseg.models import layers

from ..utils import UserInputError


class DepthwiseSeparableConvBNReLU(nn.Layer):
    """Depthwise KxK conv+BN+ReLU, then pointwise 1x1 conv+BN+ReLU (the paper's separable conv).

    Unlike ``paddleseg.models.layers.SeparableConvBNReLU`` (no ReLU after the depthwise conv), this
    has a ReLU after both convs, as the original Panoptic-DeepLab and PaddleSeg's released model.
    [N, in_channels, H, W] float32 -> [N, out_channels, H', W'].
    """

    def __init__(self, in_channels, out_channels, kernel_size, padding="same", dilation=1):
        super().__init__()
        self.depthwise_conv = layers.ConvBNReLU(
            in_channels, in_channels, kernel_size, padding=padding, dilation=dilation,
            groups=in_channels, bias_attr=False)
        # "piontwise" is PaddleSeg's spelling; checkpoint keys depend on it.
        self.piontwise_conv = layers.ConvBNReLU(in_channels, out_channels, 1, bias_attr=False)

    def forward(self, x):
        return self.piontwise_conv(self.depthwise_conv(x))


class ASPP(nn.Layer):
    """Atrous spatial pyramid pooling with image pooling: [N, C_in, h, w] -> [N, out_channels, h, w].

    One branch per rate in ``aspp_ratios`` (rate 1: 1x1 conv; others: 3x3 conv dilated by the rate,
    depthwise-separable when ``use_dsconv``), plus a global-average-pool branch; the concatenation is
    projected by a 1x1 conv and passed through dropout.
    """

    def __init__(self, aspp_ratios, in_channels, out_channels, align_corners, use_dsconv=False,
                 dropout=0.1):
        super().__init__()
        self.align_corners = align_corners
        self.aspp_blocks = nn.LayerList()
        for ratio in aspp_ratios:
            if ratio == 1:
                block = layers.ConvBNReLU(in_channels, out_channels, 1, padding=0, bias_attr=False)
            elif use_dsconv:
                block = DepthwiseSeparableConvBNReLU(
                    in_channels, out_channels, 3, padding=ratio, dilation=ratio)
            else:
                block = layers.ConvBNReLU(in_channels, out_channels, 3, padding=ratio,
                                          dilation=ratio, bias_attr=False)
            self.aspp_blocks.append(block)
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2D(output_size=(1, 1)),
            layers.ConvBNReLU(in_channels, out_channels, 1, bias_attr=False))
        self.conv_bn_relu = layers.ConvBNReLU(
            out_channels * (len(aspp_ratios) + 1), out_channels, 1, bias_attr=False)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        outputs = [block(x) for block in self.aspp_blocks]
        pooled = self.global_avg_pool(x)
        # A 1x1 map broadcasts: tiling it is what bilinear upsampling of a constant gives. Expanded to
        # the runtime shape (paddle2onnx 2.1 converts `expand_as` with the traced shape, -1 for any size).
        outputs.append(paddle.expand(pooled, paddle.shape(outputs[0])))
        x = self.conv_bn_relu(paddle.concat(outputs, axis=1))
        return self.dropout(x)


class PanopticDecoder(nn.Layer):
    """ASPP on the deepest feature, then top-down fusion with projected low-level features.

    ``forward(features)`` takes the backbone's feature list; ``in_indices[-1]`` picks the ASPP input,
    ``in_indices[:-1]`` the low-level features in fusion order (coarse to fine). At each stage the
    running map is bilinearly resized to the low-level map, concatenated with its 1x1 projection
    (``[x, project(low)]``, this order), and fused by a 5x5 depthwise-separable conv.
    Returns [N, decoder_channels, h, w] at the last low-level feature's resolution (or the ASPP
    output, ``aspp_out_channels``, when there is no low-level feature).
    """

    def __init__(self, in_indices, in_channels, aspp_ratios, aspp_out_channels, decoder_channels,
                 low_level_channels_projects, align_corners, use_dsconv=False, aspp_dropout=0.1):
        super().__init__()
        self.in_indices = list(in_indices)
        self.align_corners = align_corners
        self.aspp = ASPP(aspp_ratios, in_channels[-1], aspp_out_channels, align_corners,
                         use_dsconv=use_dsconv, dropout=aspp_dropout)
        self.project = nn.LayerList()
        self.fuse = nn.LayerList()
        running = aspp_out_channels
        for low_channels, proj_channels in zip(in_channels[:-1], low_level_channels_projects):
            self.project.append(layers.ConvBNReLU(low_channels, proj_channels, 1, bias_attr=False))
            self.fuse.append(DepthwiseSeparableConvBNReLU(
                running + proj_channels, decoder_channels, 5, padding=2))
            running = decoder_channels
        self.out_channels = running

    def forward(self, features):
        x = self.aspp(features[self.in_indices[-1]])
        for i, (project, fuse) in enumerate(zip(self.project, self.fuse)):
            low = project(features[self.in_indices[i]])
            x = F.interpolate(x, size=paddle.shape(low)[2:], mode="bilinear",
                              align_corners=self.align_corners)
            x = fuse(paddle.concat([x, low], axis=1))
        return x


class PredictionHead(nn.Layer):
    """One 5x5 separable conv + 1x1 classifier per output: [N, C, h, w] -> list of [N, k_i, h, w]."""

    def __init__(self, in_channels, head_channels, num_outputs):
        super().__init__()
        self.classifier = nn.LayerList([
            nn.Sequential(
                DepthwiseSeparableConvBNReLU(in_channels, head_channels, 5, padding=2),
                nn.Conv2D(head_channels, k, 1))
            for k in num_outputs
        ])

    def forward(self, x):
        return [classifier(x) for classifier in self.classifier]


class PanopticDeepLabHead(nn.Layer):
    """Semantic decoder+head and instance decoder+head on shared backbone features.

    ``forward(features)`` returns ``[semantic [N,num_classes,h,w], center [N,1,h,w],
    offset [N,2,h,w]]`` at the decoders' output stride (4 for the standard configs), before the
    upsampling to the input size done by ``PanopticDeepLab``.
    """

    def __init__(self, num_classes, backbone_indices, backbone_channels, aspp_ratios,
                 aspp_out_channels, decoder_channels, low_level_channels_projects,
                 instance_aspp_out_channels, instance_decoder_channels,
                 instance_low_level_channels_projects, instance_num_classes,
                 instance_head_channels, align_corners, use_dsconv=False, aspp_dropout=0.1):
        super().__init__()
        n_low = len(backbone_indices) - 1
        for key, value in (("low_level_channels_projects", low_level_channels_projects),
                           ("instance_low_level_channels_projects",
                            instance_low_level_channels_projects)):
            if len(value) != n_low:
                raise UserInputError(
                    f"model.{key}: needs one entry per low-level feature, i.e. "
                    f"len(backbone_indices) - 1 = {n_low} entries; got {list(value)} "
                    f"(backbone_indices {list(backbone_indices)})")
        if list(instance_num_classes) != [1, 2]:
            raise UserInputError(
                f"model.instance_num_classes: must be [1, 2] (centre heatmap, (dy, dx) offset); "
                f"got {list(instance_num_classes)}")
        self.semantic_decoder = PanopticDecoder(
            backbone_indices, backbone_channels, aspp_ratios, aspp_out_channels, decoder_channels,
            low_level_channels_projects, align_corners, use_dsconv, aspp_dropout)
        self.semantic_head = PredictionHead(
            self.semantic_decoder.out_channels, decoder_channels, [num_classes])
        self.instance_decoder = PanopticDecoder(
            backbone_indices, backbone_channels, aspp_ratios, instance_aspp_out_channels,
            instance_decoder_channels, instance_low_level_channels_projects, align_corners,
            use_dsconv, aspp_dropout)
        self.instance_head = PredictionHead(
            self.instance_decoder.out_channels, instance_head_channels, instance_num_classes)

    def forward(self, features):
        (semantic,) = self.semantic_head(self.semantic_decoder(features))
        center, offset = self.instance_head(self.instance_decoder(features))
        return [semantic, center, offset]
