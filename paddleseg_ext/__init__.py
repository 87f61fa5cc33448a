"""Panoptic-DeepLab for PaddleSeg.

Importing this package registers every component (models, backbones, losses, datasets,
transforms) in ``paddleseg.cvlibs.manager`` so that PaddleSeg configs can name them.
"""
__version__ = "0.1.0"

# Keep these two imports first, before anything imports paddle. Paddle 2.6.2's libpaddle.so
# exports its own copy of zlib's functions and needs the system libz.so.1: when `import paddle`
# is what first loads libz.so.1, libz's internal calls bind to libpaddle's copy (LD_DEBUG=bindings
# shows it) and every zlib user (paddleseg's imports of scipy/sklearn, cv2's PNG codec,
# zlib.compress) can crash with a segmentation fault in inflateReset2. Python's zlib module and
# cv2 load libz.so.1 on their own, so importing them first avoids it. Paddle 3.x does not need this.
import zlib  # noqa: F401,E402
import cv2  # noqa: F401,E402

from . import compat  # noqa: F401,E402  (refuses a Paddle older than 2.6 in one line)
from . import utils  # noqa: F401
from . import transforms  # noqa: F401
from . import datasets  # noqa: F401
from . import models  # noqa: F401
from . import losses  # noqa: F401
from . import postprocess  # noqa: F401
from . import evaluation  # noqa: F401
