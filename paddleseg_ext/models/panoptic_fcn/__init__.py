"""PanopticFCN (Li et al., CVPR 2021): network, targets, losses, inference, oracle.

Importing registers ``manager.MODELS['PanopticFCN']``, ``manager.TRANSFORMS['PanopticFCNTargetGenerator']``
(a dataset ``target_generator``), ``manager.TRANSFORMS['ResizeShortRange']`` and
``manager.LOSSES['PanopticFCNFocalLoss' | 'PanopticFCNDiceLoss']``.

Modules (one concept each): `layout` (train ids <-> thing / stuff channels), `fpn` (P2..P7, semantic
FPN), `heads` (position / kernel heads, encoder, DCNv2, CoordConv, kernel embeddings), `targets`
(annotation-only targets, numpy, in the data workers), `assign` (targets and top-k positives that
need the predictions, paddle, in `PanopticFCN.loss`), `losses`, `postprocess` (traceable inference),
`oracle` (ground truth written as network outputs), `transforms`, `panoptic_fcn` (the model).
"""
from .layout import ClassLayout  # noqa: F401
from .targets import PanopticFCNTargetGenerator  # noqa: F401
from .transforms import ResizeShortRange  # noqa: F401
from .losses import PanopticFCNDiceLoss, PanopticFCNFocalLoss, dice_loss, sigmoid_focal_loss  # noqa: F401
from .postprocess import PanopticFCNPostprocess  # noqa: F401
from .panoptic_fcn import PanopticFCN  # noqa: F401
