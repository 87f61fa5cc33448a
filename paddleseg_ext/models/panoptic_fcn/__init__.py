"""PanopticFCN (CVPR 2021): network, targets, losses, inference, oracle.

Importing registers ``manager.MODELS['PanopticFCN']``, ``manager.TRANSFORMS['PanopticFCNTargetGenerator']``
(a dataset ``target_generator``), ``manager.TRANSFORMS['ResizeShortRange']`` and
``manager.LOSSES['PanopticFCNFocalLoss' | 'PanopticFCNDiceLoss']``.
"""
from .layout import ClassLayout  # noqa: F401
from .targets import PanopticFCNTargetGenerator  # noqa: F401
from .transforms import ResizeShortRange  # noqa: F401
from .losses import PanopticFCNDiceLoss, PanopticFCNFocalLoss, dice_loss, sigmoid_focal_loss  # noqa: F401
from .postprocess import PanopticFCNPostprocess  # noqa: F401
from .panoptic_fcn import PanopticFCN  # noqa: F401
