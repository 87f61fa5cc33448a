"""Panoptic-DeepLab training losses: top-k cross-entropy, weighted MSE (centre), weighted L1 (offset).

Each loss is registered in ``manager.LOSSES``, takes ``ignore_index`` (PaddleSeg's builder passes it
to every loss) and has ``forward(pred, target, weights)`` returning a float32 scalar tensor that is
0 (and finite) when nothing is weighted. ``compute_panoptic_loss`` combines the three with the
config's coefficients (paper, bowenc0221, detectron2: 1, 200, 0.01; PaddleSeg's release: 1, 200,
0.001 with the offset normalised per channel element). The reference implementations differ in
how the top-k CE counts pixels and how the regressions are normalised: the options
``top_k_over``, ``weighting``, ``normalize`` name each choice; the defaults are this project's
original behaviour, which the demo configs train (docs/config_audit.md lists every config's).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddleseg.cvlibs import manager
from paddleseg.models.losses import CrossEntropyLoss as PaddleSegCrossEntropyLoss
from paddleseg.models.losses import L1Loss as PaddleSegL1Loss
from paddleseg.models.losses import MSELoss as PaddleSegMSELoss

from ..utils import UserInputError


_TOP_K_OVER = ("valid", "all")
_WEIGHTING = ("before_top_k", "after_top_k")
_NORMALIZE_CE = ("selected_count", "selected_weight")
_NORMALIZE_REG = ("pixel", "channel_element")


def _check_choice(loss_name, key, value, choices):
    if value not in choices:
        raise UserInputError(
            f"loss {loss_name}.{key}: must be one of {', '.join(choices)}; got {value!r}")
    return value


@manager.LOSSES.add_component
class TopKCrossEntropyLoss(nn.Layer):
    """Pixel-weighted softmax cross-entropy averaged over the hardest pixels (DeepLab's top-k CE).

    ``CE`` is the per-pixel cross-entropy, 0 on ignored pixels (label == ignore_index), ``w`` the
    pixel weight (1 without weights). The three options name the conventions of the reference
    implementations (docs/config_audit.md says which config uses which):

    - ``top_k_over``: ``"valid"`` (default): ``k = max(1, floor(p * n_valid))`` and ignored
      pixels are never selected; ``"all"``: ``k = max(1, floor(p * n_all))`` over every pixel of
      the batch, ignored ones taking part with loss 0 (PaddleSeg's ``CrossEntropyLoss``,
      bowenc0221's and detectron2's ``DeepLabCE``).
    - ``weighting``: ``"before_top_k"`` (default, all references): pixels are ranked by ``w * CE``;
      ``"after_top_k"``: ranked by ``CE``, then the selected ones are weighted.
    - ``normalize``: ``"selected_count"`` (default, all references): the selected sum is divided
      by ``k``; ``"selected_weight"``: by the sum of the selected pixels' weights (``k`` times
      their mean weight, as PaddleSeg's ``CrossEntropyLoss`` divides by the mean class weight of
      the selected pixels).

    No valid pixel (or, with ``"selected_weight"``, a zero weight sum) -> 0.

    Args:
        ignore_index (int): label value excluded from the loss (255).
        top_k_percent_pixels (float): fraction ``p`` in (0, 1] of the pixels kept (0.2).
        top_k_over, weighting, normalize (str): see above.
    """

    def __init__(self, ignore_index=255, top_k_percent_pixels=0.2, top_k_over="valid",
                 weighting="before_top_k", normalize="selected_count"):
        super().__init__()
        if not 0.0 < float(top_k_percent_pixels) <= 1.0:
            raise UserInputError(
                f"loss TopKCrossEntropyLoss.top_k_percent_pixels: must be in (0, 1], "
                f"got {top_k_percent_pixels}")
        self.ignore_index = ignore_index
        self.top_k_percent_pixels = float(top_k_percent_pixels)
        name = "TopKCrossEntropyLoss"
        self.top_k_over = _check_choice(name, "top_k_over", top_k_over, _TOP_K_OVER)
        self.weighting = _check_choice(name, "weighting", weighting, _WEIGHTING)
        self.normalize = _check_choice(name, "normalize", normalize, _NORMALIZE_CE)

    def forward(self, logit, label, weights=None):
        """logit float32 [N, C, H, W]; label int [N, H, W]; weights float32 [N, H, W] or None."""
        label = label.astype("int64")
        valid = label != self.ignore_index
        safe_label = paddle.where(valid, label, paddle.zeros_like(label))
        log_prob = F.log_softmax(logit, axis=1)
        pixel_loss = -paddle.take_along_axis(log_prob, safe_label.unsqueeze(1), axis=1).squeeze(1)
        if weights is None:
            weights = paddle.ones_like(pixel_loss)
        weights = weights.astype(pixel_loss.dtype)
        ranked = pixel_loss * weights if self.weighting == "before_top_k" else pixel_loss
        if self.top_k_over == "valid":
            # Invalid pixels get -1, below every valid (non-negative) loss: top-k never picks them.
            ranked = paddle.where(valid, ranked, paddle.full_like(ranked, -1.0)).flatten()
            # k in float64 so that floor(p * n) equals Python's int(p * n).
            n_valid = valid.astype("float64").sum()
            k = paddle.floor(self.top_k_percent_pixels * n_valid)
            k = paddle.where(n_valid > 0, paddle.maximum(k, paddle.ones_like(k)), k)
        else:
            # Ignored pixels rank with loss 0 (they may be selected and add 0).
            ranked = paddle.where(valid, ranked, paddle.zeros_like(ranked)).flatten()
            k = paddle.full([], float(max(1, int(self.top_k_percent_pixels * ranked.shape[0]))),
                            dtype="float64")
        # k <= k_cap for every batch of this size, so a fixed-size topk suffices.
        k_cap = max(1, int(self.top_k_percent_pixels * ranked.shape[0]))
        hardest, index = paddle.topk(ranked, k_cap)
        in_k = paddle.arange(k_cap, dtype="float64") < k
        selected_w = paddle.gather(weights.flatten(), index)
        if self.weighting == "after_top_k":
            hardest = paddle.where(hardest > 0, hardest, paddle.zeros_like(hardest)) * selected_w
        selected = paddle.where(in_k, hardest, paddle.zeros_like(hardest))
        if self.normalize == "selected_count":
            return selected.sum() / paddle.maximum(k, paddle.ones_like(k)).astype(selected.dtype)
        # Weights of ignored pixels do not count (gathered as floats: Paddle 2.6 has no bool gather).
        valid_w = paddle.where(valid, weights, paddle.zeros_like(weights)).flatten()
        selected_valid_w = paddle.gather(valid_w, index)
        norm = paddle.where(in_k, selected_valid_w, paddle.zeros_like(selected_valid_w)).sum()
        has_weight = norm > 0
        safe = paddle.where(has_weight, norm, paddle.ones_like(norm))
        return paddle.where(has_weight, selected.sum() / safe, paddle.zeros_like(norm))


def _weighted_mean(elementwise, weights, normalize="pixel"):
    """sum_{n,c,h,w} w[n,h,w] * e[n,c,h,w] / D; 0 when the weights sum to 0.

    ``elementwise`` [N, C, H, W]; ``weights`` [N, H, W] (or [N, 1, H, W]) or None (all ones).
    ``normalize="pixel"``: ``D = sum_{n,h,w} w`` (bowenc0221's and detectron2's Panoptic-DeepLab:
    each weighted pixel of the 2-channel offset contributes |dy error| + |dx error|);
    ``"channel_element"``: ``D = C * sum_{n,h,w} w``, the weight expanded to every channel
    (PaddleSeg's contrib ``loss_computation``: the mean over dy and dx).
    """
    if weights is None:
        weights = paddle.ones([elementwise.shape[0], 1] + list(elementwise.shape[2:]),
                              dtype=elementwise.dtype)
    weights = weights.astype(elementwise.dtype)
    if weights.ndim == elementwise.ndim - 1:
        weights = weights.unsqueeze(1)
    total = (elementwise * weights).sum()
    weight_sum = weights.sum()
    has_weight = weight_sum > 0
    safe_sum = paddle.where(has_weight, weight_sum, paddle.ones_like(weight_sum))
    if normalize == "channel_element":
        safe_sum = safe_sum * float(elementwise.shape[1])
    return paddle.where(has_weight, total / safe_sum, paddle.zeros_like(total))


class _WeightedRegressionLoss(nn.Layer):
    """Shared constructor: ``normalize`` is ``"pixel"`` (default) or ``"channel_element"``
    (see `_weighted_mean`); ``ignore_index`` is accepted for PaddleSeg's builder and unused
    (the weights mark ignored pixels)."""

    def __init__(self, ignore_index=255, normalize="pixel"):
        super().__init__()
        self.ignore_index = ignore_index
        self.normalize = _check_choice(type(self).__name__, "normalize", normalize, _NORMALIZE_REG)

    def elementwise(self, pred, target):
        raise NotImplementedError

    def forward(self, pred, target, weights=None):
        return _weighted_mean(self.elementwise(pred, target.astype(pred.dtype)), weights,
                              self.normalize)


@manager.LOSSES.add_component
class WeightedMSELoss(_WeightedRegressionLoss):
    """Squared error weighted per pixel, normalised by the weight sum (centre heatmap loss).

    ``forward(pred [N,1,H,W], target [N,1,H,W], weights [N,H,W])`` -> scalar; 0 if weights sum to 0.
    One channel: both ``normalize`` choices give the same value.
    """

    def elementwise(self, pred, target):
        return paddle.square(pred - target)


@manager.LOSSES.add_component
class WeightedL1Loss(_WeightedRegressionLoss):
    """Absolute error weighted per pixel (offset loss), normalised per ``normalize``.

    ``forward(pred [N,2,H,W], target [N,2,H,W], weights [N,H,W])`` -> scalar; 0 if weights sum to 0
    (e.g. a batch without any thing pixel).
    """

    def elementwise(self, pred, target):
        return paddle.abs(pred - target)


_TERMS = (("semantic", "semantic", "semantic_weights"),
          ("center", "center", "center_weights"),
          ("offset", "offset", "offset_weights"))


def _term_loss(loss_fn, pred, target, weights):
    if isinstance(loss_fn, (TopKCrossEntropyLoss, WeightedMSELoss, WeightedL1Loss)):
        return loss_fn(pred, target, weights)
    # PaddleSeg's own losses, as named in its released Panoptic-DeepLab configs, with PaddleSeg's
    # conventions: its CrossEntropyLoss takes k over all pixels (a plain valid-pixel mean at
    # top_k_percent_pixels 1.0), and its contrib loss_computation divides L1 / MSE by the weight
    # expanded to every channel. (Paddle 3 fails on its own top_k_percent_pixels=1.0 path.)
    if isinstance(loss_fn, PaddleSegCrossEntropyLoss) and loss_fn.weight is None:
        over = "all" if loss_fn.top_k_percent_pixels < 1.0 else "valid"
        return TopKCrossEntropyLoss(loss_fn.ignore_index, loss_fn.top_k_percent_pixels,
                                    top_k_over=over)(pred, target, weights)
    if isinstance(loss_fn, (PaddleSegMSELoss, PaddleSegL1Loss)) and loss_fn.reduction == "none":
        return _weighted_mean(loss_fn(pred, target.astype(pred.dtype)), weights, "channel_element")
    raise UserInputError(
        f"loss.types: {type(loss_fn).__name__} is not supported by Panoptic-DeepLab; use "
        "TopKCrossEntropyLoss, WeightedMSELoss, WeightedL1Loss (or PaddleSeg's CrossEntropyLoss, "
        "MSELoss and L1Loss with reduction: none)")


def compute_panoptic_loss(outputs, sample, loss_cfg):
    """Total training loss of Panoptic-DeepLab and its three terms.

    Args:
        outputs: the model's ``[semantic [N,C,H,W], center [N,1,H,W], offset [N,2,H,W]]``.
        sample: dict of paddle tensors with keys ``semantic`` int64 [N,H,W], ``center`` float32
            [N,1,H,W], ``offset`` float32 [N,2,H,W], ``semantic_weights``, ``center_weights``,
            ``offset_weights`` float32 [N,H,W] (a missing weight key means all ones).
        loss_cfg: ``SegBuilder(cfg).loss``: ``{'types': [semantic, center, offset losses],
            'coef': [c_sem, c_center, c_offset]}``.
    Returns:
        ``(total, {'semantic': l_sem, 'center': l_center, 'offset': l_offset})``: scalar tensors;
        ``total = sum(coef_i * l_i)``, the dict holds the unscaled terms.
    """
    types, coef = loss_cfg.get("types"), loss_cfg.get("coef")
    if types is None or coef is None or len(types) != 3 or len(coef) != 3:
        raise UserInputError(
            "loss: Panoptic-DeepLab needs exactly 3 entries in loss.types (semantic, center, "
            f"offset) and 3 in loss.coef; got types={types!r}, coef={coef!r}")
    if len(outputs) != 3:
        raise ValueError(f"compute_panoptic_loss: expected 3 model outputs, got {len(outputs)}")
    terms = {}
    total = None
    for loss_fn, c, pred, (name, target_key, weight_key) in zip(types, coef, outputs, _TERMS):
        if target_key not in sample:
            raise KeyError(f"compute_panoptic_loss: sample has no '{target_key}' key")
        value = _term_loss(loss_fn, pred, sample[target_key], sample.get(weight_key))
        terms[name] = value
        total = c * value if total is None else total + c * value
    return total, terms
