"""Panoptic-aware crop and padding transforms (PaddleSeg data-dict convention).

They act on ``data['img']`` ([H, W, C] float32) and on every key of ``data['gt_fields']``
([H, W] int32 segment ids), and are registered in ``paddleseg.cvlibs.manager.TRANSFORMS`` so that
YAML configs can name them. Scaling, flipping, colour distortion and normalisation reuse
PaddleSeg's own ``ResizeStepScaling``, ``RandomHorizontalFlip``, ``RandomDistort``, ``Normalize``
(nearest-neighbour resizing keeps segment ids intact).
"""
import numpy as np
from paddleseg.cvlibs import manager

from ..utils import UserInputError


def _size_pair(size, name):
    """[w, h] (or a single int) -> (w, h) ints."""
    if isinstance(size, int):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise UserInputError("{} must be an int or a [width, height] pair, got {!r}".format(name, size))


def _pad(arr, top, bottom, left, right, value):
    """Pad the first two axes of `arr` with a constant (a scalar or one value per channel)."""
    if top == bottom == left == right == 0:
        return arr
    h, w = arr.shape[:2]
    out = np.empty((h + top + bottom, w + left + right) + arr.shape[2:], dtype=arr.dtype)
    out[...] = np.asarray(value, dtype=arr.dtype) if np.ndim(value) else value
    out[top:top + h, left:left + w] = arr
    return out


@manager.TRANSFORMS.add_component
class PanopticRandomPaddingCrop:
    """Random crop to `crop_size`; a smaller image is first padded with itself at a random place.

    Random (not bottom/right) padding gives objects more diverse positions (tech report "Panoptic-DeepLab in
    PyTorch", Cheng et al., section 2.1.3).

    Args:
        crop_size ([w, h] or int): output size, odd sizes such as [2049, 1025] are fine.
        im_padding_value (float or list): image fill (127.5 becomes 0 after Normalize(0.5, 0.5)).
        label_padding_value (int): label fill, 0 = void segment id.
    """

    def __init__(self, crop_size=(513, 513), im_padding_value=127.5, label_padding_value=0):
        self.crop_w, self.crop_h = _size_pair(crop_size, "crop_size")
        if self.crop_w < 1 or self.crop_h < 1:
            raise UserInputError("crop_size must be positive, got {!r}".format(crop_size))
        self.im_padding_value = im_padding_value
        self.label_padding_value = label_padding_value

    def __call__(self, data):
        img = data["img"]
        h, w = img.shape[:2]
        pad_h, pad_w = max(self.crop_h - h, 0), max(self.crop_w - w, 0)
        if pad_h or pad_w:
            top = np.random.randint(0, pad_h + 1)
            left = np.random.randint(0, pad_w + 1)
            args = (top, pad_h - top, left, pad_w - left)
            data["img"] = _pad(img, *args, self.im_padding_value)
            for key in data.get("gt_fields", []):
                data[key] = _pad(data[key], *args, self.label_padding_value)
            h, w = h + pad_h, w + pad_w
        y0 = np.random.randint(0, h - self.crop_h + 1)
        x0 = np.random.randint(0, w - self.crop_w + 1)
        data["img"] = data["img"][y0:y0 + self.crop_h, x0:x0 + self.crop_w]
        for key in data.get("gt_fields", []):
            data[key] = data[key][y0:y0 + self.crop_h, x0:x0 + self.crop_w]
        return data


#: coarsest stride of every backbone the project's models use (ResNet, MobileNet, Xception, HRNet: C5 at
#: stride 32); a size the network handles as it was trained keeps its residue modulo this stride
NETWORK_STRIDE = 32


def next_accepted_size(size, target, divisor=NETWORK_STRIDE):
    """Smallest n >= max(size, target) with n = target (mod divisor), per axis (ints or int arrays).

    The padding target of a config tells which input sizes the network was built for: 32k + 1 for
    the align_corners=True configs (2049x1025, 257x129: every stride-s feature then has an exact
    pixel grid), 32k for the others (640x640, 2048x1024). A larger image is padded to the next size
    of the same kind, as detectron2's ``size_divisibility`` pads a batch to a multiple of 32.
    """
    size, target = np.asarray(size, dtype=np.int64), np.asarray(target, dtype=np.int64)
    need = np.maximum(size, target)
    return need + np.mod(target - need, divisor)


@manager.TRANSFORMS.add_component
class PanopticPadding:
    """Pad bottom/right to a fixed `target_size` (e.g. 1024x2048 -> 1025x2049 for validation).

    A no-op when the image already has that size. Records ('padding', (h, w)) in
    ``data['trans_info']`` like PaddleSeg's ``Padding`` so results can be cropped back.

    Args:
        target_size ([w, h] or int): output size; must not be smaller than the image, unless
            `grow` is set.
        im_padding_value (float or list): image fill.
        label_padding_value (int): label fill, 0 = void segment id.
        grow (bool): pad an image larger than `target_size` to `next_accepted_size` instead of
            refusing it (the inference pipeline's copy, `pipeline.inference_transforms`, does: predict.py,
            infer.py and val.py's predictions take images of any size; datasets keep the fixed size).
        size_divisor (int): the stride whose residue `grow` keeps (`NETWORK_STRIDE`).
    """

    def __init__(self, target_size=(2049, 1025), im_padding_value=127.5, label_padding_value=0, grow=False,
                 size_divisor=NETWORK_STRIDE):
        self.target_w, self.target_h = _size_pair(target_size, "target_size")
        self.im_padding_value = im_padding_value
        self.label_padding_value = label_padding_value
        self.grow = bool(grow)
        self.size_divisor = int(size_divisor)
        if self.size_divisor < 1:
            raise UserInputError("PanopticPadding: size_divisor must be positive, got {!r}".format(size_divisor))

    def growing(self):
        """A copy of this transform with `grow` set (the object itself is left as it is)."""
        return PanopticPadding((self.target_w, self.target_h), self.im_padding_value, self.label_padding_value,
                               grow=True, size_divisor=self.size_divisor)

    def padded_size(self, h, w):
        """(h, w) an image of size (h, w) is padded to."""
        if h <= self.target_h and w <= self.target_w:
            return self.target_h, self.target_w
        if not self.grow:
            raise UserInputError(
                "PanopticPadding: image of size {}x{} (w x h) is larger than target_size {}x{}; "
                "raise target_size in the config".format(w, h, self.target_w, self.target_h))
        out = next_accepted_size((h, w), (self.target_h, self.target_w), self.size_divisor)
        return int(out[0]), int(out[1])

    def __call__(self, data):
        img = data["img"]
        h, w = img.shape[:2]
        out_h, out_w = self.padded_size(h, w)
        data.setdefault("trans_info", []).append(("padding", (h, w)))
        pad_h, pad_w = out_h - h, out_w - w
        data["img"] = _pad(img, 0, pad_h, 0, pad_w, self.im_padding_value)
        for key in data.get("gt_fields", []):
            data[key] = _pad(data[key], 0, pad_h, 0, pad_w, self.label_padding_value)
        return data
