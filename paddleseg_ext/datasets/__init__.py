"""Panoptic datasets (registered in manager.DATASETS) and their class metadata."""
from . import cityscapes_meta, coco_meta  # noqa: F401
from .panoptic_dataset import PanopticDataset, build_transforms  # noqa: F401
from .cityscapes_panoptic import CityscapesPanoptic  # noqa: F401
from .custom_panoptic import CustomPanoptic  # noqa: F401
from .coco_panoptic import CocoPanoptic  # noqa: F401
