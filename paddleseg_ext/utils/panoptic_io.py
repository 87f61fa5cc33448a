"""Reading and writing images and COCO/Cityscapes panoptic PNGs (id = R + 256 G + 256^2 B)."""
import os

import cv2
import numpy as np

from .errors import UserInputError


def rgb2id(color):
    """[H, W, 3] uint8 RGB panoptic PNG -> [H, W] int32 segment ids."""
    color = np.asarray(color)
    if color.ndim == 2:
        return color.astype(np.int32)
    color = color.astype(np.int32)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def id2rgb(ids):
    """[H, W] int segment ids -> [H, W, 3] uint8 RGB (inverse of `rgb2id`)."""
    ids = np.asarray(ids).astype(np.int64)
    rgb = np.empty(ids.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = ids % 256
    rgb[..., 1] = (ids // 256) % 256
    rgb[..., 2] = (ids // (256 * 256)) % 256
    return rgb


def _imread(path, flags):
    if not os.path.isfile(path):
        raise UserInputError("file not found: {}".format(path))
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise UserInputError("cannot decode image file (corrupt, truncated or not an image): {}".format(path))
    return img


def read_image(path):
    """Read an image file as [H, W, 3] uint8 RGB.

    Grayscale images are replicated to 3 channels, an alpha channel is dropped and 16-bit
    images are scaled to 8 bits, so every readable image gives the network what it expects.
    """
    img = _imread(path, cv2.IMREAD_UNCHANGED)
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 1:
        img = cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def read_panoptic_png(path):
    """Read a panoptic PNG (RGB-encoded ids) as [H, W] int32 segment ids."""
    img = _imread(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        return img.astype(np.int32)
    return rgb2id(cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB))


def write_panoptic_png(path, ids):
    """Write [H, W] int segment ids as an RGB-encoded panoptic PNG."""
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    ok = cv2.imwrite(path, cv2.cvtColor(id2rgb(ids), cv2.COLOR_RGB2BGR))
    if not ok:
        raise UserInputError("cannot write {}".format(path))
