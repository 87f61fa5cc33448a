"""Panoptic segmentation for PaddleSeg: Panoptic-DeepLab (and PanopticFCN).

Importing this package registers every component (models, losses, datasets, transforms, target
generators) in ``paddleseg.cvlibs.manager`` so that PaddleSeg configs can name them. Nothing else
changes in PaddleSeg. The layers, each importing only those before it:
``utils`` (from the paddle-free ``panoptic_metrics``) -> components (``transforms``, ``datasets``,
``models``, ``losses``, ``postprocess``, ``evaluation``, ``visualize``) -> ``runtime`` (device, config,
weights, metadata) -> ``pipeline`` (image -> panoptic map) -> ``core`` (train / val / predict / export
loops) -> ``cli`` (command lines). See docs/design.md.
"""
import warnings

# Paddle warns at import time when the C++-extension toolchain has no ccache; this project builds no
# extension, so the warning is noise on every command's first screen.
warnings.filterwarnings("ignore", message="No ccache found")

__version__ = "0.2.0"

from . import utils  # noqa: E402,F401
from . import transforms  # noqa: E402,F401
from . import datasets  # noqa: E402,F401
from . import models  # noqa: E402,F401
from . import losses  # noqa: E402,F401
from . import postprocess  # noqa: E402,F401
from . import evaluation  # noqa: E402,F401
