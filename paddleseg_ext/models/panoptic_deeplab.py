"""The Panoptic-DeepLab network (Cheng et al., CVPR 2020) on a PaddleSeg backbone."""
import paddle
import paddle.nn.functional as F
from paddleseg.cvlibs import manager

from ..losses.panoptic_losses import compute_panoptic_loss
from ..postprocess.panoptic_layer import PanopticDeepLabPostprocess
from ..postprocess.post_processing import POSTPROCESS_DEFAULTS
from ..utils import UserInputError
from .base import PanopticModel
from .heads import PanopticDeepLabHead
from .pretrained import load_pretrained_model


@manager.MODELS.add_component
class PanopticDeepLab(PanopticModel):
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

    As a `PanopticModel`: `loss` gives the weighted ``semantic`` / ``center`` / ``offset`` terms,
    `inference_outputs` the semantic probabilities (softmax), centre heatmap and offsets, averaged
    over test-time scales and flips, and `build_postprocess` the centre grouping of
    `postprocess.PanopticDeepLabPostprocess`.
    """

    postprocess_defaults = POSTPROCESS_DEFAULTS
    score_modes = ("semantic", "semantic_x_instance")
    oracle_keys = ("semantic", "center", "offset")
    supports_tta = True

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

    # ------------------------------------------------------------------ PanopticModel interface

    def loss(self, outputs, batch, losses):
        """Weighted terms ``{"semantic", "center", "offset"}`` (see `compute_panoptic_loss`)."""
        _, terms = compute_panoptic_loss(outputs, batch, losses)
        return {k: c * v for (k, v), c in zip(terms.items(), losses["coef"])}

    def inference_outputs(self, x, scales=(1.0,), flip=False):
        """[semantic probabilities [N, C, H, W], centre [N, 1, H, W], offset [N, 2, H, W]] at the input's
        size, each the mean over the input resized by every scale (and mirrored, with `flip`)."""
        H, W = x.shape[2], x.shape[3]
        sums, n = None, 0
        for s in [float(v) for v in scales]:
            xs = x if s == 1.0 else F.interpolate(
                x, size=[max(int(round(H * s)), 1), max(int(round(W * s)), 1)], mode="bilinear",
                align_corners=self.align_corners)
            for flipped in ((False, True) if flip else (False,)):
                sem, ctr, off = self(paddle.flip(xs, [3]) if flipped else xs)[:3]
                sem = F.softmax(sem, axis=1)
                if flipped:
                    sem, ctr, off = paddle.flip(sem, [3]), paddle.flip(ctr, [3]), paddle.flip(off, [3])
                    off = paddle.concat([off[:, :1], -off[:, 1:]], axis=1)  # dx changes sign
                if s != 1.0:
                    sem, ctr, off = (F.interpolate(t, size=[H, W], mode="bilinear", align_corners=self.align_corners)
                                     for t in (sem, ctr, off))
                    off = off / s
                outs = [sem, ctr, off]
                sums = outs if sums is None else [a + b for a, b in zip(sums, outs)]
                n += 1
        return sums if n == 1 else [t / n for t in sums]

    def build_postprocess(self, meta, params):
        return PanopticDeepLabPostprocess(
            meta.num_classes, meta.thing_ids, label_divisor=meta.label_divisor, void_label=meta.void_label,
            align_corners=self.align_corners, **params)

    def apply_oracle(self, outputs, sample, keys):
        """Replace semantic probabilities, centre heatmap and/or offsets by the sample's targets.

        The oracle semantics are one-hot over C + 1 channels [1, C + 1, H, W]: channel C marks the
        void pixels of the ground truth (`ignore_index`, and crowd with `ignore_crowd_in_semantic`),
        which the post-processing leaves void. Counting them as class 0 instead let them join the
        nearest instance when class 0 is a thing (COCO's person) and outvote small instances.
        """
        probs, center, offset = outputs
        for key in keys:
            if key not in self.oracle_keys:
                raise UserInputError("--oracle: unknown item {!r}; choose from {}".format(
                    key, ",".join(self.oracle_keys)))
        if "semantic" in keys:
            num_classes = probs.shape[1]
            sem = paddle.to_tensor(sample["semantic"][None].astype("int64"))
            void = paddle.logical_or(sem < 0, sem >= num_classes)
            sem = paddle.where(void, paddle.full_like(sem, num_classes), sem)
            probs = F.one_hot(sem, num_classes + 1).transpose([0, 3, 1, 2]).astype(probs.dtype)
        if "center" in keys:
            center = paddle.to_tensor(sample["center"][None])
        if "offset" in keys:
            offset = paddle.to_tensor(sample["offset"][None])
        return [probs, center, offset]
