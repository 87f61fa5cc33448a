"""Networks, registered in ``manager.MODELS``: ``PanopticDeepLab`` (and its heads) and ``PanopticFCN``
(with its target generator, losses and transforms); `base.PanopticModel` is the interface every
panoptic model offers the loops."""
from .base import INFERENCE_OUTPUTS, PanopticModel  # noqa: F401
from .heads import ASPP, DepthwiseSeparableConvBNReLU, PanopticDeepLabHead  # noqa: F401
from .panoptic_deeplab import PanopticDeepLab  # noqa: F401
from .pretrained import clear_pretrained_errors, load_pretrained_model, resolve_weights_path  # noqa: F401
from . import panoptic_fcn  # noqa: F401,E402  (registers PanopticFCN and its targets / losses / transforms)
