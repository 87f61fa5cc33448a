"""Side-by-side picture image | semantic | instance | panoptic, for VisualDL and the docs."""
import numpy as np

from .overlays import visualize_instance, visualize_panoptic, visualize_semantic

PANEL_TITLES = ("image", "semantic", "instance", "panoptic")


def tile_horizontal(images, gap=4, gap_color=(255, 255, 255)):
    """Concatenate same-height uint8 [H, W_i, 3] images left to right with `gap` pixel separators.

    Returns:
        uint8 [H, sum(W_i) + gap * (n - 1), 3].
    """
    images = [np.asarray(im, dtype=np.uint8) for im in images]
    if not images:
        raise ValueError("nothing to tile")
    h = images[0].shape[0]
    if any(im.ndim != 3 or im.shape[0] != h or im.shape[2] != 3 for im in images):
        raise ValueError("tiles must be [H, W, 3] with the same H, got {}".format([im.shape for im in images]))
    sep = np.empty((h, gap, 3), dtype=np.uint8)
    sep[:] = np.asarray(gap_color, dtype=np.uint8)
    parts = []
    for i, im in enumerate(images):
        if i and gap:
            parts.append(sep)
        parts.append(im)
    return np.concatenate(parts, axis=1)


def panoptic_panel(image, semantic, panoptic, palette, label_divisor=1000, alpha=0.5, gap=4):
    """image | semantic | instance | panoptic visualisations in one row.

    Args:
        image: uint8 [H, W, 3] RGB.
        semantic: int [H, W] class ids (e.g. the argmax of the semantic head).
        panoptic: int [H, W] ``class * label_divisor + instance``.
        palette: uint8 [C, 3] RGB per class.
    Returns:
        uint8 [H, 4 W + 3 gap, 3] RGB (HWC, what VisualDL's `add_image` takes).
    """
    image = np.asarray(image, dtype=np.uint8)
    return tile_horizontal([
        image,
        visualize_semantic(semantic, palette, image, alpha),
        visualize_instance(panoptic, label_divisor, image, alpha),
        visualize_panoptic(panoptic, palette, label_divisor, image, alpha),
    ], gap=gap)
