"""Evaluation: the paddle-free metrics of `panoptic_metrics` (re-exported here) and `PanopticEvaluators`,
all metrics of one val run of any model, merged over `paddle.distributed` ranks."""
from panoptic_metrics import (CityscapesInstanceEvaluator, CocoInstanceEvaluator, PanopticEvaluator,  # noqa: F401
                              PanopticPredictionWriter, SemanticEvaluator, cityscapes_panoptic_categories,
                              evaluate_panoptic_files, format_pq_table, instances_from_panoptic,
                              panoptic_annotation, panoptic_to_segments, read_segment_ids, summarize_pq,
                              write_cityscapes_instances, write_panoptic_json, write_panoptic_prediction)

from .suite import PanopticEvaluators, build_evaluators  # noqa: F401
