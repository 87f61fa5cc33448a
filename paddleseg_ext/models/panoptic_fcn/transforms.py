"""COCO-style resizing for PanopticFCN's configs (registered in ``manager.TRANSFORMS``).

detectron2's ``ResizeShortestEdge``: the short side becomes a size drawn per sample from
`short_sizes` (training: 640, 672, ..., 800) or the single test size, and the long side is capped at
`max_size` (1333). PaddleSeg 2.8's ``ResizeByShort`` draws its size once, when it is built
(``random.choice`` in ``__init__``), and overwrites it for good the first time `max_size` caps an
image, so later images are resized to the wrong short side; ``ResizeRangeScaling`` scales the
*long* side. Hence this transform. Images are resized bilinearly, label maps with nearest
neighbours (segment ids stay intact). It records ``('resize', (h, w))`` in ``trans_info`` like
PaddleSeg's resizes.
"""
import cv2
import numpy as np
from paddleseg.cvlibs import manager

from ...utils import UserInputError


def short_side_size(h, w, short, max_size):
    """(new_h, new_w) of detectron2's ResizeShortestEdge.get_output_shape: short side `short`,
    long side at most `max_size`, rounded half up."""
    scale = float(short) / min(h, w)
    new_h, new_w = h * scale, w * scale
    if max(new_h, new_w) > max_size:
        scale = float(max_size) / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


@manager.TRANSFORMS.add_component
class ResizeShortRange:
    """Resize so that the short side is a size drawn from `short_sizes` (uniformly, per call) and
    the long side at most `max_size`.

    Args:
        short_sizes (int or list[int]): the candidate short sides (one value for evaluation).
        max_size (int): cap of the long side (1333).
    """

    def __init__(self, short_sizes, max_size=1333):
        sizes = [short_sizes] if isinstance(short_sizes, (int, float)) else list(short_sizes)
        if not sizes or any(int(s) < 1 for s in sizes):
            raise UserInputError("ResizeShortRange.short_sizes must be positive sizes, got {!r}".format(short_sizes))
        self.short_sizes = [int(s) for s in sizes]
        self.max_size = int(max_size)
        if self.max_size < 1:
            raise UserInputError("ResizeShortRange.max_size must be positive, got {!r}".format(max_size))

    def __call__(self, data):
        h, w = data["img"].shape[:2]
        short = self.short_sizes[np.random.randint(len(self.short_sizes))]
        new_h, new_w = short_side_size(h, w, short, self.max_size)
        data.setdefault("trans_info", []).append(("resize", (h, w)))
        if (new_h, new_w) != (h, w):
            data["img"] = cv2.resize(data["img"], (new_w, new_h), interpolation=cv2.INTER_LINEAR)
            for key in data.get("gt_fields", []):
                data[key] = cv2.resize(data[key], (new_w, new_h), interpolation=cv2.INTER_NEAREST)
        return data
