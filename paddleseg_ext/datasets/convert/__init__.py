"""Converters from annotation-tool formats to the COCO panoptic layout `CustomPanoptic` reads, and a
dataset checker. Plain numpy / OpenCV / PIL: nothing here needs paddle.

Layout written under ``ROOT``: ``images/<split>/``, ``annotations/panoptic_<split>.json``,
``annotations/panoptic_<split>/`` (RGB-encoded segment id PNGs).
"""
from .categories import load_categories  # noqa: F401
from .check import check_split, split_paths  # noqa: F401
from .labelme import convert_labelme, rasterize_shapes  # noqa: F401
from .segments import build_segments  # noqa: F401
from .semantic_instance import convert_semantic_instance  # noqa: F401
