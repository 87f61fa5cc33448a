"""The Panoptic-DeepLab network (Cheng et al., CVPR 2020) on a PaddleSeg backbone."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddleseg.cvlibs import manager

from ..utils import UserInputError
from .heads import PanopticDeepLabHead
from .pretrained import load_pretrained_model


@manager.MODELS.add_component
class PanopticDeepLab(nn.Layer):
    """Panoptic-DeepLab: semantic logits, instance-centre heatmap and centre offsets.

    ``forward(x)`` with ``x`` float32 [N, 3, H, W] returns, in train and eval mode,
    ``[semantic_logits [N, num_classes, H, W], center [N, 1, H, W], offset [N, 2, H, W]]``,
    all bilinearly upsampled from the decoders' output stride to the input size.

    Offset convention: ``offset[:, 0]`` is dy and ``offset[:, 1]`` is dx, in pixels of the *input*
    resolution, pointing from each pixel to its instance centre (what the target generator
    produces at input resolution). The heads predict offsets in pixels of their own (stride-4)
    grid; after upsampling they are multiplied per axis by the grid-to-input scale, which is
    ``(H_in - 1) / (h - 1)`` with ``align_corners=True`` (corner pixels coincide, e.g. 1025 from
    257 -> 4) and ``H_in / h`` with ``align_corners=False`` (pixel areas coincide), likewise for x.

    Args:
        num_classes (int): semantic classes (19 for Cityscapes, 133 for COCO).
        backbone (nn.Layer): a PaddleSeg backbone with ``feat_channels``; returns a feature list.
        backbone_indices (list[int]): indices into the backbone's feature list: low-level features
            coarse to fine, then the ASPP input last. (2, 1, 0, 3) for ResNet/MobileNet (1/16, 1/8,
            1/4 low-level, deepest for ASPP); len(backbone_indices) - 1 low-level features are fused.
        aspp_ratios (list[int]): ASPP dilation rates, (1, 6, 12, 18) at OS16, (1, 3, 6, 9) at OS32.
        aspp_out_channels, decoder_channels (int): semantic ASPP / decoder width (256, 256).
        low_level_channels_projects (list[int]): semantic 1x1 projection widths (128, 64, 32).
        instance_aspp_out_channels, instance_decoder_channels (int): instance branch (256, 128).
        instance_low_level_channels_projects (list[int]): instance projections (64, 32, 16).
        instance_num_classes (list[int]): must be (1, 2): centre heatmap, offset.
        instance_head_channels (int): instance head width (32).
        align_corners (bool): bilinear resize convention; True for odd sizes such as 1025x2049.
        use_dsconv (bool): depthwise-separable 3x3 convs in the ASPPs (the paper's "DSConv").
            Decoder fuse convs and heads are 5x5 depthwise-separable either way.
        aspp_dropout (float): dropout after the ASPP projection.
        pretrained (str): URL or local path of a full-model checkpoint (``model.pdparams``).
        instance_class_key: accepted for PaddleSeg config compatibility; must be center, offset.
    """

    def __init__(self,
                 num_classes,
                 backbone,
                 backbone_indices=(2, 1, 0, 3),
                 aspp_ratios=(1, 6, 12, 18),
                 aspp_out_channels=256,
                 decoder_channels=256,
                 low_level_channels_projects=(128, 64, 32),
                 instance_aspp_out_channels=256,
                 instance_decoder_channels=128,
                 instance_low_level_channels_projects=(64, 32, 16),
                 instance_num_classes=(1, 2),
                 instance_head_channels=32,
                 align_corners=False,
                 use_dsconv=False,
                 aspp_dropout=0.1,
                 pretrained=None,
                 instance_class_key=("center", "offset")):
        super().__init__()
        if list(instance_class_key) != ["center", "offset"]:
            raise UserInputError(
                "model.instance_class_key: must be [center, offset]; got "
                f"{list(instance_class_key)}")
        feat_channels = getattr(backbone, "feat_channels", None)
        if feat_channels is None:
            raise UserInputError(
                f"model.backbone: {type(backbone).__name__} has no feat_channels; use a PaddleSeg "
                "backbone (ResNet50_vd, MobileNetV2_x1_0, HRNet_W48, ...)")
        backbone_indices = [int(i) for i in backbone_indices]
        bad = [i for i in backbone_indices if not -len(feat_channels) <= i < len(feat_channels)]
        if bad or not backbone_indices:
            raise UserInputError(
                f"model.backbone_indices: {backbone_indices} is out of range for "
                f"{type(backbone).__name__}, which returns {len(feat_channels)} features "
                f"with channels {list(feat_channels)}")
        self.backbone = backbone
        self.backbone_indices = backbone_indices
        self.align_corners = align_corners
        self.head = PanopticDeepLabHead(
            num_classes=num_classes,
            backbone_indices=backbone_indices,
            backbone_channels=[feat_channels[i] for i in backbone_indices],
            aspp_ratios=aspp_ratios,
            aspp_out_channels=aspp_out_channels,
            decoder_channels=decoder_channels,
            low_level_channels_projects=list(low_level_channels_projects),
            instance_aspp_out_channels=instance_aspp_out_channels,
            instance_decoder_channels=instance_decoder_channels,
            instance_low_level_channels_projects=list(instance_low_level_channels_projects),
            instance_num_classes=list(instance_num_classes),
            instance_head_channels=instance_head_channels,
            align_corners=align_corners,
            use_dsconv=use_dsconv,
            aspp_dropout=aspp_dropout)
        self.pretrained = pretrained
        if pretrained is not None:
            load_pretrained_model(self, pretrained)

    def forward(self, x):
        semantic, center, offset = self.head(self.backbone(x))
        # Tensor shapes (not Python ints) so that exported models accept any input size.
        in_hw = paddle.shape(x)[2:]
        head_hw = paddle.cast(paddle.shape(offset)[2:], "float32")
        in_hw_f = paddle.cast(in_hw, "float32")
        if self.align_corners:
            scale = (in_hw_f - 1.0) / paddle.clip(head_hw - 1.0, min=1.0)
        else:
            scale = in_hw_f / head_hw
        outputs = [
            F.interpolate(t, size=in_hw, mode="bilinear", align_corners=self.align_corners)
            for t in (semantic, center, offset)
        ]
        outputs[2] = outputs[2] * paddle.reshape(scale, [1, 2, 1, 1])
        return outputs
