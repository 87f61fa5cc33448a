"""Post-processing: network outputs -> panoptic map (centre NMS, pixel grouping, majority vote),
and per-instance scores for instance AP.

`panoptic_ops` holds the steps, written once; `panoptic_postprocess` runs them eagerly and
`PanopticPostprocess` (an nn.Layer) traces them into the exported inference model."""
from .panoptic_layer import PanopticPostprocess  # noqa: F401
from .post_processing import (  # noqa: F401
    find_instance_centers,
    instance_scores,
    panoptic_postprocess,
    semantic_from_logits,
)
