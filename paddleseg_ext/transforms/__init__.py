"""Panoptic-aware data transforms (registered in manager.TRANSFORMS) and the target generator."""
from .panoptic_transforms import PanopticPadding, PanopticRandomPaddingCrop  # noqa: F401
from .target_generator import PanopticTargetGenerator, segment_index_map  # noqa: F401
