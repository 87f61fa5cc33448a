"""Metrics: panoptic quality, semantic mIoU, instance AP, and writers of the official result formats."""
from .panoptic_quality import PanopticEvaluator, summarize_pq, format_pq_table  # noqa: F401
from .panoptic_files import evaluate_panoptic_files, read_segment_ids  # noqa: F401
from .semantic_iou import SemanticEvaluator  # noqa: F401
from .instance_ap import CityscapesInstanceEvaluator, CocoInstanceEvaluator  # noqa: F401
from .formats import (  # noqa: F401
    cityscapes_panoptic_categories, instances_from_panoptic, panoptic_annotation, panoptic_to_segments,
    write_cityscapes_instances, write_panoptic_json, write_panoptic_prediction, PanopticPredictionWriter)
from .suite import PanopticDeepLabEvaluators, build_evaluators  # noqa: F401
