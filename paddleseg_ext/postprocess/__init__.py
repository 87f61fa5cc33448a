"""Post-processing: network outputs -> panoptic map (centre NMS, pixel grouping, majority vote),
and per-instance scores for instance AP."""
from .post_processing import (  # noqa: F401
    find_instance_centers,
    instance_scores,
    panoptic_postprocess,
    semantic_from_logits,
)
