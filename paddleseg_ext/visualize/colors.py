"""Colour tables: class palettes, per-instance colours jittered from a class colour, and distinct
random-looking instance colours. Everything is computed for arrays of ids at once."""
import numpy as np

#: jitter range (per channel, +-) of thing instance colours around their class colour
DEFAULT_JITTER = 40


def class_palette(num_classes, palette=None):
    """The colour table of `num_classes` classes as a uint8 [num_classes, 3] RGB array.

    Args:
        num_classes (int): number of classes.
        palette (list | array | None): RGB per class; None picks the Cityscapes palette for 19 classes,
            the COCO panoptic one for 133, and PaddleSeg's generated colour map otherwise.
    """
    if palette is None:
        if num_classes == 19:
            from ..datasets.cityscapes_meta import PALETTE as palette
        elif num_classes == 133:
            from ..datasets.coco_meta import PALETTE as palette
        else:
            from paddleseg.utils.visualize import get_color_map_list
            palette = np.asarray(get_color_map_list(num_classes), dtype=np.int64).reshape(-1, 3)
    table = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    if table.shape[0] < num_classes:
        raise ValueError("palette has {} colours but there are {} classes".format(table.shape[0], num_classes))
    if table.min() < 0 or table.max() > 255:
        raise ValueError("palette colours must be in 0..255")
    return table[:num_classes].astype(np.uint8)


def jittered_colors(base_rgb, instance_ids, jitter=DEFAULT_JITTER):
    """Colours near each base colour, one per instance id, distinct for distinct ids of the same base.

    Each channel is moved inside a window of width ``2 * jitter + 1`` that contains the base value and
    stays inside 0..255; the position in the window is three base-(2*jitter+1) digits of a bijective
    scramble of the instance id, so two instances of one class never share a colour (for ids below
    ``(2*jitter+1)**3``) and consecutive ids get clearly different colours.

    Args:
        base_rgb: int [K, 3] class colours.
        instance_ids: int [K] instance numbers (e.g. ``panoptic % label_divisor``).
        jitter (int): half window, 1..127.
    Returns:
        uint8 [K, 3].
    """
    base = np.asarray(base_rgb, dtype=np.int64).reshape(-1, 3)
    ids = np.asarray(instance_ids, dtype=np.int64).reshape(-1)
    radix = 2 * int(jitter) + 1
    n = radix ** 3
    # 16777259 is a prime above 255**3, hence coprime with n: the multiplication permutes 0..n-1.
    code = (ids * 16777259 + n // 3) % n
    digits = np.stack([code % radix, (code // radix) % radix, code // (radix * radix)], axis=-1)
    low = np.clip(base - jitter, 0, 255 - (radix - 1))
    return (low + digits).astype(np.uint8)


def distinct_colors(segment_ids):
    """Bright, random-looking colours, distinct for distinct ids below 2**21.

    A bijective scramble of the id gives three 7-bit numbers, each stretched to 60..255 (an injective
    map), so colours never repeat inside one picture and are never too dark to see.

    Args:
        segment_ids: int array of any shape.
    Returns:
        uint8 array of shape ``segment_ids.shape + (3,)``.
    """
    ids = np.asarray(segment_ids, dtype=np.int64)
    n = 1 << 21
    # odd multiplier: a permutation of 0..2**21-1
    code = (ids * 1103515245 + 12345) % n
    digits = np.stack([code & 127, (code >> 7) & 127, (code >> 14) & 127], axis=-1)
    return (60 + (digits * 195 + 63) // 127).astype(np.uint8)
