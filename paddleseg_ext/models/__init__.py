"""Network: ``PanopticDeepLab`` (registered in ``manager.MODELS``) and its heads.

Importing this package also routes PaddleSeg's ``pretrained`` weight loading through
``pretrained.load_pretrained_model`` (clear ``UserInputError`` for unreachable URLs / missing files).
"""
from .pretrained import (find_user_input_error, install_load_pretrained_wrapper,  # noqa: F401
                         load_pretrained_model, resolve_weights_path)
from .heads import ASPP, DepthwiseSeparableConvBNReLU, PanopticDeepLabHead  # noqa: F401
from .panoptic_deeplab import PanopticDeepLab  # noqa: F401
from . import panoptic_fcn  # noqa: F401  (registers PanopticFCN and its targets / losses)

install_load_pretrained_wrapper()
