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

# Keep these two imports first, before anything imports paddle. Paddle 2.6.2's libpaddle.so
# exports its own copy of zlib's functions and needs the system libz.so.1: when `import paddle`
# is what first loads libz.so.1, libz's internal calls bind to libpaddle's copy (LD_DEBUG=bindings
# shows it) and every zlib user (paddleseg's imports of scipy/sklearn, cv2's PNG codec,
# zlib.compress) can crash with a segmentation fault in inflateReset2. Python's zlib module and
# cv2 load libz.so.1 on their own, so importing them first avoids it. Paddle 3.x does not need this.
import zlib  # noqa: F401,E402
import cv2  # noqa: F401,E402

with warnings.catch_warnings():
    # Paddle warns while it is imported when the C++-extension toolchain has no ccache; this project builds
    # no extension, so the warning is noise on every command's first screen. Only this import is silenced.
    warnings.filterwarnings("ignore", message="No ccache found")
    import paddle  # noqa: F401,E402

__version__ = "0.2.0"

from . import compat  # noqa: F401,E402  (refuses a Paddle older than 2.6 in one line)
from . import utils  # noqa: E402,F401
from . import transforms  # noqa: E402,F401
from . import datasets  # noqa: E402,F401
from . import models  # noqa: E402,F401
from . import losses  # noqa: E402,F401
from . import postprocess  # noqa: E402,F401
from . import evaluation  # noqa: E402,F401
