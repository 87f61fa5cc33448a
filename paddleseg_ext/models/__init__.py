"""Networks, registered in ``manager.MODELS``: ``PanopticDeepLab`` (and its heads); `base.PanopticModel`
is the interface every panoptic model offers the loops."""
from .base import INFERENCE_OUTPUTS, PanopticModel  # noqa: F401
from .heads import ASPP, DepthwiseSeparableConvBNReLU, PanopticDeepLabHead  # noqa: F401
from .panoptic_deeplab import PanopticDeepLab  # noqa: F401
from .pretrained import clear_pretrained_errors, load_pretrained_model, resolve_weights_path  # noqa: F401
