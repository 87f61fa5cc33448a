"""Panoptic segmentation metrics and file formats, without paddle or paddleseg.

PQ / SQ / RQ (cityscapesscripts' rules, same numbers), semantic mIoU, Cityscapes and COCO instance AP,
writers of the official result formats, file-based evaluation (`panoptic-eval`, `tools/eval_panoptic.py`)
and the panoptic PNG / image helpers. `paddleseg_ext` builds on it; importing it loads neither paddle
nor paddleseg, so scoring prediction files starts fast.
"""
from .errors import UserInputError  # noqa: F401
from .formats import (PanopticPredictionWriter, cityscapes_panoptic_categories, instances_from_panoptic,  # noqa: F401
                      panoptic_annotation, panoptic_to_segments, write_cityscapes_instances, write_panoptic_json,
                      write_panoptic_prediction)
from .instance_ap import CityscapesInstanceEvaluator, CocoInstanceEvaluator  # noqa: F401
from .panoptic_files import evaluate_panoptic_files, read_segment_ids  # noqa: F401
from .panoptic_io import DEFAULT_VOID_LABEL, id2rgb, read_image, read_panoptic_png, rgb2id, write_panoptic_png  # noqa: F401
from .panoptic_quality import PanopticEvaluator, format_pq_table, summarize_pq  # noqa: F401
from .semantic_iou import SemanticEvaluator  # noqa: F401
