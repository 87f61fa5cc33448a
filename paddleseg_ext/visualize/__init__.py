"""Pictures of predictions: semantic, instance and panoptic colour overlays, and a 4-panel row."""
from .colors import DEFAULT_JITTER, class_palette, distinct_colors, jittered_colors  # noqa: F401
from .overlays import (BORDER_COLOR, blend, segment_borders, visualize_instance,  # noqa: F401
                       visualize_panoptic, visualize_semantic)
from .panel import PANEL_TITLES, panoptic_panel, tile_horizontal  # noqa: F401
