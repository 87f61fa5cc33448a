"""Panoptic-DeepLab for PaddleSeg.

Importing this package registers every component (models, backbones, losses, datasets,
transforms) in ``paddleseg.cvlibs.manager`` so that PaddleSeg configs can name them.
"""
__version__ = "0.1.0"

from . import utils  # noqa: F401
from . import transforms  # noqa: F401
from . import datasets  # noqa: F401
from . import models  # noqa: F401
from . import losses  # noqa: F401
from . import postprocess  # noqa: F401
from . import evaluation  # noqa: F401
