"""PanopticFCN (Li et al., "Fully Convolutional Networks for Panoptic Segmentation", CVPR 2021)."""
import numpy as np
import paddle
from paddleseg.cvlibs import manager

from ...utils import UserInputError, log
from ..base import PanopticModel
from ..pretrained import load_pretrained_model
from . import assign
from .fpn import FPN, SemanticFPN
from .heads import FeatureEncoder, KernelEmbedding, KernelHead, PositionHead
from .layout import ClassLayout
from .losses import PanopticFCNDiceLoss, PanopticFCNFocalLoss
from .postprocess import DEFAULTS, PanopticFCNPostprocess
from .targets import DEFAULT_INSTANCE_SCALES
from .targets import DEFAULT_STRIDES as STRIDES


@manager.MODELS.add_component
class PanopticFCN(PanopticModel):
    """PanopticFCN on a PaddleSeg backbone, with an FPN (P2..P7) and the original's heads.

    ``forward(x)`` (x float32 [N, 3, H, W], H and W multiples of 32) returns a list, L = 5 levels:

    - ``[0:L]`` thing-centre logits [N, T, h_l, w_l] (T thing classes, see `ClassLayout`);
    - ``[L:2L]`` stuff-region logits [N, S', h_l, w_l] (S' = stuff classes + "things" channel);
    - ``[2L:3L]`` thing kernel maps [N, E, h_l, w_l]: the kernel head's output already passed through
      the thing generator's 1x1 embedding (a linear map, so embedding the map and gathering a
      position equals gathering and embedding, as the original does);
    - ``[3L:4L]`` stuff kernel maps [N, E, h_l, w_l]: the stuff embedding's weight applied, without
      its bias (stuff kernels are region averages; the bias is added after averaging);
    - ``[4L]`` encoded features [N, E, H/4, W/4]; ``[4L+1]`` the stuff embedding bias [1, E].

    Args:
        num_classes (int): train ids C of the dataset.
        thing_ids (list[int]): thing train ids (Cityscapes 11..18, COCO 0..79).
        backbone (nn.Layer): PaddleSeg backbone with ``feat_channels`` and 4 features at strides
            4, 8, 16, 32 (ResNet*_vd, MobileNetV3_*, ...).
        backbone_indices (list[int]): which backbone features are C2..C5 (0, 1, 2, 3).
        fpn_channels (int): FPN width (256).
        head_channels (int): position / kernel head width = kernel features C (256).
        head_num_convs (int): tower convs of both heads (3).
        position_use_dcn, kernel_use_dcn (bool): DCNv2 tower convs (True, False).
        semantic_fpn_channels (int): semantic-FPN width (256).
        encoder_channels (int): encoded features E = mask kernel size (64; Star: 256).
        encoder_num_convs (int): 3; encoder_use_dcn (bool): False (Star: True).
        norm_groups (int): GroupNorm groups of the heads and semantic FPN (32).
        with_thing (bool): the stuff head has a "things" channel (True).
        instance_scales (list[[lo, hi]]): sqrt(box area) range of P3..P7 (the targets must use the same).
        pos_num (int): top-k positive kernels per instance and level in training (7; 400/512: 3; 600: 5).
        max_instances (int): instance capacity M per image of the targets (100).
        pretrained (str): full-model weights (model.pdparams) to load.
    """

    postprocess_defaults = dict(DEFAULTS)
    score_modes = ("score",)
    oracle_keys = ()
    supports_tta = False

    def __init__(self, num_classes, thing_ids, backbone, backbone_indices=(0, 1, 2, 3), fpn_channels=256,
                 head_channels=256, head_num_convs=3, position_use_dcn=True, kernel_use_dcn=False,
                 semantic_fpn_channels=256, encoder_channels=64, encoder_num_convs=3, encoder_use_dcn=False,
                 norm_groups=32, with_thing=True, instance_scales=DEFAULT_INSTANCE_SCALES, pos_num=7,
                 max_instances=100, pretrained=None):
        super().__init__()
        self.layout = ClassLayout(num_classes, thing_ids, with_thing)
        if self.layout.num_things == 0:
            raise UserInputError("PanopticFCN: thing_ids is empty; the model needs at least one thing class")
        feat_channels = getattr(backbone, "feat_channels", None)
        if feat_channels is None:
            raise UserInputError("model.backbone: {} has no feat_channels; use a PaddleSeg backbone".format(
                type(backbone).__name__))
        self.backbone_indices = [int(i) for i in backbone_indices]
        if len(self.backbone_indices) != 4 or any(not -len(feat_channels) <= i < len(feat_channels)
                                                  for i in self.backbone_indices):
            raise UserInputError("model.backbone_indices: need 4 indices (strides 4..32) into {} features, got {}".format(
                len(feat_channels), list(backbone_indices)))
        self.instance_scales = [(float(a), float(b)) for a, b in instance_scales]
        if len(self.instance_scales) != len(STRIDES):
            raise UserInputError("model.instance_scales: need {} ranges (P3..P7), got {}".format(
                len(STRIDES), len(self.instance_scales)))
        self.num_classes = int(num_classes)
        self.thing_ids = [int(t) for t in self.layout.thing_ids]
        self.num_levels = len(STRIDES)
        self.pos_num = int(pos_num)
        self.max_instances = int(max_instances)
        self.encoder_channels = int(encoder_channels)
        self.backbone = backbone
        self.fpn = FPN([feat_channels[i] for i in self.backbone_indices], fpn_channels)
        self.semantic_fpn = SemanticFPN(fpn_channels, semantic_fpn_channels, norm_groups=norm_groups)
        self.encoder = FeatureEncoder(semantic_fpn_channels, encoder_channels, encoder_num_convs,
                                      use_dcn=encoder_use_dcn, norm_groups=None, coord=True)
        self.position_head = PositionHead(fpn_channels, head_channels, head_num_convs, self.layout.num_things,
                                          self.layout.num_stuff_channels, use_dcn=position_use_dcn,
                                          norm_groups=norm_groups)
        self.kernel_head = KernelHead(fpn_channels, head_channels, head_num_convs, use_dcn=kernel_use_dcn,
                                      norm_groups=norm_groups)
        self.thing_embed = KernelEmbedding(head_channels, encoder_channels)
        self.stuff_embed = KernelEmbedding(head_channels, encoder_channels)
        self.pretrained = pretrained
        if pretrained is not None:
            load_pretrained_model(self, pretrained)

    # ------------------------------------------------------------------ network

    def forward(self, x):
        feats = self.backbone(x)
        pyramid = self.fpn([feats[i] for i in self.backbone_indices])
        encode = self.encoder(self.semantic_fpn(pyramid[:4]))
        centers, regions, things, stuff = [], [], [], []
        for p in pyramid[1:]:
            c, r = self.position_head(p)
            k = self.kernel_head(p)
            centers.append(c)
            regions.append(r)
            things.append(self.thing_embed(k))
            stuff.append(self.stuff_embed(k, with_bias=False))
        return centers + regions + things + stuff + [encode, self.stuff_embed.bias.reshape([1, -1])]

    def split_outputs(self, outputs):
        """dict view of `forward`'s list: centers, regions, thing_maps, stuff_maps (lists), encode, stuff_bias."""
        n = self.num_levels
        if len(outputs) != 4 * n + 2:
            raise UserInputError("PanopticFCN expects {} outputs, got {}".format(4 * n + 2, len(outputs)))
        return {"centers": list(outputs[:n]), "regions": list(outputs[n:2 * n]),
                "thing_maps": list(outputs[2 * n:3 * n]), "stuff_maps": list(outputs[3 * n:4 * n]),
                "encode": outputs[4 * n], "stuff_bias": outputs[4 * n + 1]}

    # ------------------------------------------------------------------ training

    @staticmethod
    def _loss_layers(losses):
        types = list(losses.get("types", [])) if isinstance(losses, dict) else []
        coef = list(losses.get("coef", [])) if isinstance(losses, dict) else []
        if (len(types) != 2 or len(coef) != 2 or not isinstance(types[0], PanopticFCNFocalLoss)
                or not isinstance(types[1], PanopticFCNDiceLoss)):
            raise UserInputError(
                "PanopticFCN needs `loss: {{types: [{{type: PanopticFCNFocalLoss}}, {{type: PanopticFCNDiceLoss}}], "
                "coef: [position, mask]}}` (e.g. coef [1, 3]); got types {} coef {}".format(
                    [type(t).__name__ for t in types], coef))
        return types[0], types[1], float(coef[0]), float(coef[1])

    def loss(self, outputs, batch, losses):
        """Named, weighted loss terms of a batch (the original's normalisations):

        - ``position_thing``: focal loss over all thing heatmaps, summed, / max(N_th, 1) with N_th the
          number of (instance, level) pairs of the batch;
        - ``position_stuff``: focal loss averaged over the pixels of each (image, level, channel) map,
          summed, / N images;
        - ``mask_thing``: sum over (instance, level) pairs of the weighted dice of its k positive
          kernels' masks against its soft stride-4 mask, / max(N_th, 1);
        - ``mask_stuff``: sum over (image, level, stuff channel present at the level) of the dice of
          its pooled kernel's mask against the soft stride-4 one-hot map, / max(N_st, 1).

        Position terms use coef[0], mask terms coef[1]. Without instances (or stuff), the mask term is
        an exact 0 still connected to the graph; position terms stay finite (they penalise false
        positives).
        """
        focal, dice, c_pos, c_mask = self._loss_layers(losses)
        o = self.split_outputs(outputs)
        levels = self._check_targets(o, batch)
        encode = o["encode"]
        n, e, h4, w4 = encode.shape
        feats = encode.reshape([n, e, h4 * w4])
        pos_th, mask_th, norm_th = self._thing_terms(o, batch, levels, feats, focal, dice)
        pos_st, mask_st = self._stuff_terms(o, batch, feats, focal, dice)
        return {
            "position_thing": c_pos * pos_th / norm_th,
            "position_stuff": c_pos * pos_st / float(n),
            "mask_thing": c_mask * mask_th,
            "mask_stuff": c_mask * mask_st,
        }

    def _check_targets(self, o, batch):
        """Target shapes against the network's (every step: no device sync), and the target instances'
        classes against the model's thing_ids (host copies: on the first batch, and every batch with
        --verbose). Returns the instance levels, float32 [N, L, M]."""
        for i, c in enumerate(o["centers"]):
            key = "fcn_center_l{}".format(i)
            if key not in batch:
                raise UserInputError("PanopticFCN: the batch has no `{}`; set the datasets' "
                                     "`target_generator: {{type: PanopticFCNTargetGenerator}}`".format(key))
            if list(batch[key].shape) != list(c.shape):
                raise UserInputError("PanopticFCN: target {} has shape {} but the network gives {}; "
                                     "thing_ids, strides or padding differ between model and targets (the backbone must "
                                     "give strides 4, 8, 16, 32: set `output_stride: 32` for ResNet*_vd)".format(
                                         key, list(batch[key].shape), list(c.shape)))
        levels = batch["fcn_levels"].astype("float32")  # [N, L, M]
        if levels.shape[1] != self.num_levels:
            raise UserInputError("PanopticFCN: targets have {} levels, the model {}".format(
                levels.shape[1], self.num_levels))
        if getattr(self, "_classes_checked", False) and not log.is_verbose():
            return levels
        used_slots = (levels.sum(axis=1) > 0).numpy()
        stray = np.setdiff1d(batch["fcn_classes"].numpy()[used_slots], self.layout.thing_ids)
        if stray.size:
            raise UserInputError("PanopticFCN: the targets have instances of classes {} that are not among the "
                                 "model's thing_ids {}; give the same thing_ids to the target generator".format(
                                     stray.tolist(), self.thing_ids))
        self._classes_checked = True  # the target generator's classes do not change during a run
        return levels

    def _thing_terms(self, o, batch, levels, feats, focal, dice):
        """(position loss sum, normalised mask loss, max(N_th, 1)) of the thing instances."""
        lv, lay = self.num_levels, self.layout
        n, e, _ = feats.shape
        h4, w4 = o["encode"].shape[2:]
        n_th = levels.sum()
        norm_th = paddle.clip(n_th, min=1.0)
        pos_th = sum(focal(c, batch["fcn_center_l{}".format(i)]).sum() for i, c in enumerate(o["centers"]))
        used = (levels.sum(axis=1) > 0).astype("float32") * paddle.arange(1, levels.shape[2] + 1, dtype="float32")
        m = max(1, int(used.max()))
        masks4 = assign.soft_masks4(batch["fcn_instance4"], m)  # [N, m, h4, w4]
        thing_lut = paddle.to_tensor(lay.thing_channel_of_class, dtype="int64")
        cls = paddle.clip(batch["fcn_classes"][:, :m].astype("int64"), 0, self.num_classes)
        channels = paddle.clip(paddle.gather(thing_lut, cls.flatten()).reshape([n, m]), max=lay.num_things - 1)
        kern, wts = [], []
        for c, tm in zip(o["centers"], o["thing_maps"]):
            k_l, w_l = assign.select_thing_kernels(c, tm, masks4, channels, self.pos_num)
            kern.append(k_l)
            wts.append(w_l)
        kernels = paddle.stack(kern, axis=1).reshape([n, lv * m, self.pos_num, e])
        weights = paddle.stack(wts, axis=1).reshape([n, lv * m, self.pos_num])
        valid, (kernels, weights), index = assign.compact(levels[:, :, :m].reshape([n, lv * m]), [kernels, weights])
        q = valid.shape[1]
        slot = (index % m).unsqueeze(-1).expand([n, q, h4 * w4])
        target = paddle.take_along_axis(masks4.reshape([n, m, h4 * w4]), slot, axis=1)
        logits = paddle.matmul(kernels.reshape([n, q * self.pos_num, e]), feats)
        d = dice(logits.reshape([n * q, self.pos_num, h4 * w4]), target.reshape([n * q, h4 * w4]),
                 weights.reshape([n * q, self.pos_num]))
        return pos_th, (d * valid.flatten()).sum() / norm_th, norm_th

    def _stuff_terms(self, o, batch, feats, focal, dice):
        """(position loss sum, normalised mask loss) of the stuff channels."""
        lv, s = self.num_levels, self.layout.num_stuff_channels
        n, e, _ = feats.shape
        h4, w4 = o["encode"].shape[2:]
        stuff_lut = paddle.to_tensor(self.layout.stuff_channel_of_class, dtype="int64")
        soft4 = assign.stuff_soft4(batch["fcn_semantic4"], stuff_lut, s)  # [N, S', h4, w4]
        pos_st, kern, present = 0.0, [], []
        bias = o["stuff_bias"].reshape([1, 1, e])
        for r, sm in zip(o["regions"], o["stuff_maps"]):
            tgt = assign.level_stuff_targets(soft4, r.shape[2:])
            pos_st = pos_st + focal(r, tgt).mean(axis=[2, 3]).sum()
            binary = (tgt > 0).astype("float32")
            present.append((binary.sum(axis=[2, 3]) > 0).astype("float32"))
            kern.append(assign.pool_stuff_kernels(binary, sm) + bias)
        kernels = paddle.stack(kern, axis=1).reshape([n, lv * s, e])
        valid = paddle.stack(present, axis=1).reshape([n, lv * s])
        n_st = valid.sum()
        valid, (kernels,), index = assign.compact(valid, [kernels])
        q = valid.shape[1]
        chan = (index % s).unsqueeze(-1).expand([n, q, h4 * w4])
        target = paddle.take_along_axis(soft4.reshape([n, s, h4 * w4]), chan, axis=1)
        logits = paddle.matmul(kernels, feats)
        d = dice(logits.reshape([n * q, 1, h4 * w4]), target.reshape([n * q, h4 * w4]))
        return pos_st, (d * valid.flatten()).sum() / paddle.clip(n_st, min=1.0)

    # ------------------------------------------------------------------ inference

    def build_postprocess(self, meta, params):
        """`PanopticFCNPostprocess` for this model's classes; `meta` must agree with the model."""
        nc = int(meta.num_classes)
        things = sorted(int(t) for t in meta.thing_ids)
        if nc != self.num_classes or things != self.thing_ids:
            raise UserInputError("PanopticFCN was built for {} classes with things {}, the data has {} with {}".format(
                self.num_classes, self.thing_ids, nc, things))
        div = int(meta.label_divisor)
        void = int(meta.void_label)
        p = dict(params or {})
        return PanopticFCNPostprocess(self.num_levels, self.layout, label_divisor=div, void_label=void, **p)
