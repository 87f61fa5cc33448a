"""Colour overlays of semantic, instance and panoptic maps on an image (vectorized numpy).

Conventions shared by the three pictures:
- a coloured pixel is ``round((1 - alpha) * image + alpha * colour)`` (round half to even);
- void / ignored pixels (class outside the palette, e.g. 255) keep the image pixel unchanged;
- borders are drawn opaque in `border_color` on both pixels of every 4-neighbour pair that lies on
  a boundary of a thing instance (so they are two pixels wide);
- without an image the colours are shown on black (alpha is ignored, void stays black).
"""
import numpy as np

from .colors import DEFAULT_JITTER, distinct_colors, jittered_colors

BORDER_COLOR = (255, 255, 255)


def segment_borders(ids, mask=None):
    """Pixels on a boundary between different ids.

    Args:
        ids: int [H, W] segment ids.
        mask: bool [H, W] or None; only boundaries with at least one pixel in `mask` count.
    Returns:
        bool [H, W]; both pixels of each differing horizontal/vertical neighbour pair are set.
    """
    ids = np.asarray(ids)
    border = np.zeros(ids.shape, dtype=bool)
    dx = ids[:, 1:] != ids[:, :-1]
    dy = ids[1:, :] != ids[:-1, :]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        dx &= mask[:, 1:] | mask[:, :-1]
        dy &= mask[1:, :] | mask[:-1, :]
    border[:, 1:] |= dx
    border[:, :-1] |= dx
    border[1:, :] |= dy
    border[:-1, :] |= dy
    return border


def blend(image, colors, mask, alpha=0.5):
    """Blend per-pixel `colors` over `image` where `mask` is set.

    Args:
        image: uint8 [H, W, 3] RGB, or None (colours on black, no blending).
        colors: uint8 [H, W, 3] RGB.
        mask: bool [H, W].
        alpha (float): weight of the colour, 0..1.
    Returns:
        uint8 [H, W, 3].
    """
    colors = np.asarray(colors, dtype=np.uint8)
    mask = np.asarray(mask, dtype=bool)
    if image is None:
        return np.where(mask[..., None], colors, np.uint8(0)).astype(np.uint8)
    image = _check_image(image, mask.shape)
    mixed = np.rint((1.0 - alpha) * image.astype(np.float32) + alpha * colors.astype(np.float32))
    return np.where(mask[..., None], np.clip(mixed, 0, 255).astype(np.uint8), image)


def _check_image(image, hw):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != tuple(hw):
        raise ValueError("image must be [H, W, 3] matching the map {}, got {}".format(tuple(hw), image.shape))
    return image.astype(np.uint8, copy=False)


def _draw(out, border, border_color):
    if border_color is not None:
        out[border] = np.asarray(border_color, dtype=np.uint8)
    return out


def visualize_semantic(semantic, palette, image=None, alpha=0.5):
    """Class colours blended over the image.

    Args:
        semantic: int [H, W] class ids; ids outside 0..len(palette)-1 (e.g. 255) are left uncoloured.
        palette: uint8 [C, 3] RGB per class (see `class_palette`).
        image: uint8 [H, W, 3] RGB or None.
        alpha (float): colour weight.
    Returns:
        uint8 [H, W, 3] RGB.
    """
    semantic = np.asarray(semantic).astype(np.int64)
    palette = np.asarray(palette, dtype=np.uint8)
    valid = (semantic >= 0) & (semantic < len(palette))
    colors = palette[np.where(valid, semantic, 0)]
    return blend(image, colors, valid, alpha)


def visualize_instance(panoptic, label_divisor=1000, image=None, alpha=0.5, border_color=BORDER_COLOR):
    """Thing instances only, each in its own colour, with borders; stuff and void stay uncoloured.

    Args:
        panoptic: int [H, W] ``class * label_divisor + instance`` (instance 0 = stuff / void).
        label_divisor (int): as in the panoptic map.
        image: uint8 [H, W, 3] RGB or None.
        alpha (float): colour weight.
        border_color: RGB of instance borders, or None for no borders.
    Returns:
        uint8 [H, W, 3] RGB.
    """
    panoptic = np.asarray(panoptic).astype(np.int64)
    is_thing = (panoptic % label_divisor) > 0
    ids, inverse = np.unique(panoptic, return_inverse=True)
    colors = distinct_colors(ids)[inverse.reshape(panoptic.shape)]
    out = blend(image, colors, is_thing, alpha)
    return _draw(out, segment_borders(panoptic, is_thing), border_color)


def visualize_panoptic(panoptic, palette, label_divisor=1000, image=None, alpha=0.5,
                       jitter=DEFAULT_JITTER, border_color=BORDER_COLOR):
    """Stuff in its class colour, each thing instance in a colour jittered from its class colour.

    Args:
        panoptic: int [H, W] ``class * label_divisor + instance``; classes outside the palette
            (the void label ``255 * label_divisor``) are left uncoloured.
        palette: uint8 [C, 3] RGB per class.
        label_divisor (int): as in the panoptic map.
        image: uint8 [H, W, 3] RGB or None.
        alpha (float): colour weight.
        jitter (int): +- range per channel of instance colours around the class colour.
        border_color: RGB of thing instance borders, or None for no borders.
    Returns:
        uint8 [H, W, 3] RGB.
    """
    panoptic = np.asarray(panoptic).astype(np.int64)
    palette = np.asarray(palette, dtype=np.uint8)
    # one colour per segment present, then a gather: cost O(pixels + segments)
    ids, inverse = np.unique(panoptic, return_inverse=True)
    cls, inst = ids // label_divisor, ids % label_divisor
    valid = (cls >= 0) & (cls < len(palette))
    base = palette[np.where(valid, cls, 0)]
    table = np.where((inst > 0)[:, None], jittered_colors(base, inst, jitter), base)
    inverse = inverse.reshape(panoptic.shape)
    out = blend(image, table[inverse], valid[inverse], alpha)
    is_thing = valid[inverse] & (inst[inverse] > 0)
    return _draw(out, segment_borders(panoptic, is_thing), border_color)
