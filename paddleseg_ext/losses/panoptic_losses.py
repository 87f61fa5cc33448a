"""Panoptic-DeepLab training losses: top-k cross-entropy, weighted MSE (centre), weighted L1 (offset).

Each loss is registered in ``manager.LOSSES``, takes ``ignore_index`` (PaddleSeg's builder passes it
to every loss) and has ``forward(pred, target, weights)`` returning a float32 scalar tensor that is
0 (and finite) when nothing is weighted. ``compute_panoptic_loss`` combines the three with the
config's coefficients (paper: 1, 200, 0.01).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddleseg.cvlibs import manager
from paddleseg.models.losses import CrossEntropyLoss as PaddleSegCrossEntropyLoss
from paddleseg.models.losses import L1Loss as PaddleSegL1Loss
from paddleseg.models.losses import MSELoss as PaddleSegMSELoss

from ..utils import UserInputError


@manager.LOSSES.add_component
class TopKCrossEntropyLoss(nn.Layer):
    """Pixel-weighted softmax cross-entropy averaged over the hardest pixels (DeepLab's top-k CE).

    Per valid pixel (label != ignore_index) the loss is ``weight * CE``; of the ``n`` valid pixels
    the ``k = max(1, floor(top_k_percent_pixels * n))`` largest values are kept and averaged
    (``top_k_percent_pixels=1.0`` averages all valid pixels). Ignored pixels never count, neither
    in ``n`` nor among the selected ones. No valid pixel -> 0.

    Args:
        ignore_index (int): label value excluded from the loss (255).
        top_k_percent_pixels (float): fraction in (0, 1] of the valid pixels kept (0.2).
    """

    def __init__(self, ignore_index=255, top_k_percent_pixels=0.2):
        super().__init__()
        if not 0.0 < float(top_k_percent_pixels) <= 1.0:
            raise UserInputError(
                f"loss TopKCrossEntropyLoss.top_k_percent_pixels: must be in (0, 1], "
                f"got {top_k_percent_pixels}")
        self.ignore_index = ignore_index
        self.top_k_percent_pixels = float(top_k_percent_pixels)

    def forward(self, logit, label, weights=None):
        """logit float32 [N, C, H, W]; label int [N, H, W]; weights float32 [N, H, W] or None."""
        label = label.astype("int64")
        valid = label != self.ignore_index
        safe_label = paddle.where(valid, label, paddle.zeros_like(label))
        log_prob = F.log_softmax(logit, axis=1)
        pixel_loss = -paddle.take_along_axis(log_prob, safe_label.unsqueeze(1), axis=1).squeeze(1)
        if weights is not None:
            pixel_loss = pixel_loss * weights.astype(pixel_loss.dtype)
        # Invalid pixels get -1, below every valid (non-negative) loss, so top-k never picks them.
        pixel_loss = paddle.where(valid, pixel_loss, paddle.full_like(pixel_loss, -1.0)).flatten()

        # k in float64 so that floor(p * n) equals Python's int(p * n).
        n_valid = valid.astype("float64").sum()
        k = paddle.floor(self.top_k_percent_pixels * n_valid)
        k = paddle.where(n_valid > 0, paddle.maximum(k, paddle.ones_like(k)), k)
        # k <= k_cap for every batch of this size, so a fixed-size topk suffices.
        k_cap = max(1, int(self.top_k_percent_pixels * pixel_loss.shape[0]))
        hardest, _ = paddle.topk(pixel_loss, k_cap)
        rank = paddle.arange(k_cap, dtype="float64")
        selected = paddle.where(rank < k, hardest, paddle.zeros_like(hardest))
        return selected.sum() / paddle.maximum(k, paddle.ones_like(k)).astype(selected.dtype)


def _weighted_mean(elementwise, weights):
    """sum_{n,c,h,w} w[n,h,w] * e[n,c,h,w] / sum_{n,h,w} w[n,h,w]; 0 when the weights sum to 0.

    ``elementwise`` [N, C, H, W]; ``weights`` [N, H, W] (or [N, 1, H, W]) or None (all ones).
    The normaliser counts pixels, not channels: for the 2-channel offset each weighted pixel
    contributes |dy error| + |dx error| (as in the reference implementations).
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
    return paddle.where(has_weight, total / safe_sum, paddle.zeros_like(total))


@manager.LOSSES.add_component
class WeightedMSELoss(nn.Layer):
    """Squared error weighted per pixel, normalised by the weight sum (centre heatmap loss).

    ``forward(pred [N,1,H,W], target [N,1,H,W], weights [N,H,W])`` -> scalar; 0 if weights sum to 0.
    ``ignore_index`` is accepted for PaddleSeg's builder and unused (weights mark ignored pixels).
    """

    def __init__(self, ignore_index=255):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, pred, target, weights=None):
        return _weighted_mean(paddle.square(pred - target.astype(pred.dtype)), weights)


@manager.LOSSES.add_component
class WeightedL1Loss(nn.Layer):
    """Absolute error weighted per pixel, normalised by the weight sum (offset loss).

    ``forward(pred [N,2,H,W], target [N,2,H,W], weights [N,H,W])`` -> scalar; 0 if weights sum to 0
    (e.g. a batch without any thing pixel). ``ignore_index`` is accepted and unused.
    """

    def __init__(self, ignore_index=255):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, pred, target, weights=None):
        return _weighted_mean(paddle.abs(pred - target.astype(pred.dtype)), weights)


_TERMS = (("semantic", "semantic", "semantic_weights"),
          ("center", "center", "center_weights"),
          ("offset", "offset", "offset_weights"))


def _term_loss(loss_fn, pred, target, weights):
    if isinstance(loss_fn, (TopKCrossEntropyLoss, WeightedMSELoss, WeightedL1Loss)):
        return loss_fn(pred, target, weights)
    # PaddleSeg's own losses, as named in its released Panoptic-DeepLab configs.
    if isinstance(loss_fn, PaddleSegCrossEntropyLoss) and loss_fn.weight is None:
        # On Paddle 3 its top_k_percent_pixels=1.0 path fails (float32 * int64 promotion), and its
        # k counts ignored pixels; evaluate it as the equivalent top-k CE over valid pixels.
        return TopKCrossEntropyLoss(loss_fn.ignore_index, loss_fn.top_k_percent_pixels)(
            pred, target, weights)
    if isinstance(loss_fn, (PaddleSegMSELoss, PaddleSegL1Loss)) and loss_fn.reduction == "none":
        return _weighted_mean(loss_fn(pred, target.astype(pred.dtype)), weights)
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
