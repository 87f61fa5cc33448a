"""PanopticFCN losses, registered in ``manager.LOSSES`` for the config's ``loss:`` block.

``loss: {types: [{type: PanopticFCNFocalLoss}, {type: PanopticFCNDiceLoss}], coef: [1, 3]}``: the
first weights the two position terms, the second the two mask terms (the original's
LOSS_WEIGHT.POSITION 1 and SEGMENT 3). Both layers return *unreduced* values; `PanopticFCN.loss`
does the original's normalisations (see there).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddleseg.cvlibs import manager

from ...utils import UserInputError


def sigmoid_focal_loss(logit, target, alpha=0.25, gamma=2.0):
    """Element-wise RetinaNet focal loss with soft targets in [0, 1].

    ``BCE(x, t) * (1 - p_t) ** gamma * alpha_t`` with p = sigmoid(x), p_t = p t + (1 - p)(1 - t),
    alpha_t = alpha t + (1 - alpha)(1 - t) (no alpha factor when alpha < 0).
    """
    target = target.astype(logit.dtype)
    p = F.sigmoid(logit)
    ce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    p_t = p * target + (1.0 - p) * (1.0 - target)
    loss = ce * paddle.pow(1.0 - p_t, gamma)
    if alpha >= 0:
        loss = loss * (alpha * target + (1.0 - alpha) * (1.0 - target))
    return loss


def dice_loss(prob, target, eps=1e-8):
    """``1 - 2 sum(p t) / max(sum p^2 + sum t^2, eps)`` over the last axis (broadcasting)."""
    target = target.astype(prob.dtype)
    inter = (prob * target).sum(axis=-1)
    denom = (prob * prob).sum(axis=-1) + (target * target).sum(axis=-1)
    return 1.0 - 2.0 * inter / paddle.clip(denom, min=eps)


@manager.LOSSES.add_component
class PanopticFCNFocalLoss(nn.Layer):
    """Position loss: `sigmoid_focal_loss` element-wise (alpha 0.25, gamma 2).

    forward(logit, target) -> a tensor of logit's shape.
    """

    def __init__(self, alpha=0.25, gamma=2.0, ignore_index=255):
        super().__init__()
        if float(gamma) < 0:
            raise UserInputError("PanopticFCNFocalLoss.gamma must be >= 0, got {}".format(gamma))
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.ignore_index = ignore_index  # PaddleSeg's builder passes it; unused

    def forward(self, logit, target):
        return sigmoid_focal_loss(logit, target, self.alpha, self.gamma)


@manager.LOSSES.add_component
class PanopticFCNDiceLoss(nn.Layer):
    """Mask loss: weighted dice over k candidate masks of each target.

    forward(logit [B, K, P], target [B, P], weights [B, K] or None) -> [B]:
    ``sum_k w_k / max(sum_k w_k, eps) * dice(sigmoid(logit_k), target)``; with ``weights=None``
    (stuff) K must be 1 and the result is the plain dice. The weights are not detached (the
    original lets the mask loss reach the centre head through them).
    """

    def __init__(self, eps=1e-8, ignore_index=255):
        super().__init__()
        self.eps = float(eps)
        self.ignore_index = ignore_index  # PaddleSeg's builder passes it; unused

    def forward(self, logit, target, weights=None):
        dice = dice_loss(F.sigmoid(logit), target.unsqueeze(-2), self.eps)  # [B, K]
        if weights is None:
            return dice.sum(axis=-1)
        weights = weights.astype(dice.dtype)
        norm = weights / paddle.clip(weights.sum(axis=-1, keepdim=True), min=self.eps)
        return (dice * norm).sum(axis=-1)
