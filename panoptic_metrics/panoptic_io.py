"""Reading and writing images and COCO/Cityscapes panoptic PNGs (id = R + 256 G + 256^2 B)."""
import os
import zlib

import cv2
import numpy as np

from .errors import UserInputError

#: default void value of panoptic maps (``class * label_divisor + instance``) in every public function
#: and class of the project; the loops pass the dataset's ``ignore_index * label_divisor`` (255000 for
#: Cityscapes and COCO) explicitly.
DEFAULT_VOID_LABEL = 255


def rgb2id(color):
    """[H, W, 3] uint8 RGB panoptic PNG -> [H, W] int32 segment ids."""
    color = np.asarray(color)
    if color.ndim == 2:
        return color.astype(np.int32)
    color = color.astype(np.int32)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def id2rgb(ids):
    """[H, W] int segment ids -> [H, W, 3] uint8 RGB (inverse of `rgb2id`)."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        ids = ids.astype(np.int64)
    if ids.size == 0:
        return np.zeros(ids.shape + (3,), np.uint8)
    # the three low bytes of each id as a little-endian uint32 (two's complement for negative ids, as
    # the modulo arithmetic gives), dropped to 3 channels by OpenCV (numpy's 3-of-4-bytes copy is slow)
    rows = ids.astype("<u4").reshape(-1, ids.shape[-1] if ids.ndim else 1)
    rgba = rows.view(np.uint8).reshape(rows.shape + (4,))
    return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB).reshape(ids.shape + (3,))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_problem(buf):
    """What is wrong with a PNG byte string (truncated, bad chunk CRC), or None; walks the chunks only."""
    pos, n = len(_PNG_SIGNATURE), len(buf)
    while pos + 12 <= n:
        length = int.from_bytes(buf[pos:pos + 4], "big")
        end = pos + 12 + length
        if end > n:
            break
        kind = buf[pos + 4:pos + 8]
        if zlib.crc32(buf[pos + 4:end - 4]) != int.from_bytes(buf[end - 4:end], "big"):
            return "corrupt PNG chunk {!r} at byte {}".format(kind.decode("latin-1"), pos)
        if kind == b"IEND":
            return None
        pos = end
    return "truncated or corrupt PNG ({} bytes, no complete IEND chunk)".format(n)


def _jpeg_problem(buf):
    """'truncated JPEG' when no end-of-image marker follows the last scan, else None."""
    last_scan = buf.rfind(b"\xff\xda")
    if last_scan >= 0 and buf.find(b"\xff\xd9", last_scan) < 0:
        return "truncated JPEG ({} bytes, no end-of-image marker)".format(len(buf))
    return None


def _integrity_problem(data):
    """Cheap structural checks before decoding: OpenCV decodes a truncated JPEG without complaint (grey
    rows) and reports broken PNGs on stderr, so both are caught here first."""
    buf = data.tobytes()
    if buf.startswith(_PNG_SIGNATURE):
        return _png_problem(buf)
    if buf.startswith(b"\xff\xd8\xff"):
        return _jpeg_problem(buf)
    return None


def imread_checked(path, flags=cv2.IMREAD_UNCHANGED):
    """`cv2.imdecode` of a file, with UserInputError naming the file when it is missing, truncated or corrupt."""
    return _imread(path, flags)


def _imread(path, flags):
    if not os.path.isfile(path):
        raise UserInputError("file not found: {}".format(path))
    data = np.fromfile(path, dtype=np.uint8)
    problem = _integrity_problem(data)
    if problem:
        raise UserInputError("cannot decode image file ({}): {}".format(problem, path))
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
