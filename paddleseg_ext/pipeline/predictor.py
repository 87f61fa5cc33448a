"""The one path from an image to a panoptic map, shared by val, predict, export and deploy:

    image (uint8 [h, w, 3] RGB)
      -> `preprocess`: the config's val transforms (normalise, pad or resize) -> x [1, 3, H, W],
         valid_hw (the image's region of x), ori_hw = (h, w)
      -> `InferenceModel`: model.inference_outputs(x) (optional test-time augmentation)
         -> the model's post-processing layer: back to (h, w), panoptic map, semantic map,
            instance ids and scores
      -> numpy arrays.

`InferenceModel` is what export.py traces and saves, so deploy/python/infer.py (which runs the saved
graph after the same `preprocess`) follows this path too.
"""
import time

import numpy as np
import paddle
import paddle.nn as nn
from paddleseg.transforms import Compose, ResizeByLong

from ..models.base import INFERENCE_OUTPUTS, check_tta
from ..runtime import build, dataset_metadata, postprocess_params
from ..runtime.device import synchronize
from ..transforms import PanopticPadding
from ..utils import UserInputError


def valid_region(trans_info, input_hw):
    """(h, w) of the top-left region of the network input that holds the image.

    PaddleSeg's transforms record the size before each resize/padding in ``trans_info``; the region
    is the size before the first padding that follows the last resize (pads go bottom/right), or
    the whole input when nothing was padded.
    """
    valid = None
    for op, size in trans_info:
        if op == "resize":
            valid = None
        elif op == "padding" and valid is None:
            valid = (int(size[0]), int(size[1]))
    return valid if valid is not None else (int(input_hw[0]), int(input_hw[1]))


def as_rgb(image):
    """An image array as uint8 [h, w, 3]: grayscale [h, w] or [h, w, 1] is replicated, a 4th (alpha)
    channel dropped (`utils.read_image` does the same for files; this is for arrays from other sources)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise UserInputError("an image must be [h, w], [h, w, 1], [h, w, 3] or [h, w, 4], got shape {}".format(
            image.shape))
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image[..., :3]


def inference_transforms(transforms, long_side=None):
    """The val transforms as prediction applies them to an image of any size.

    An image the val transforms accept goes through them unchanged (the same input as in val.py);
    a `PanopticPadding` pads a larger one to the next size the network accepts instead of refusing it
    (`transforms.next_accepted_size`). With `long_side`, the image is first resized so that its longer
    side has `long_side` pixels (PaddleSeg's ``ResizeByLong``, recorded in ``trans_info``, so the
    post-processing brings the result back to the original size).
    """
    ops = [t.growing() if isinstance(t, PanopticPadding) else t for t in transforms]
    if long_side is not None:
        if int(long_side) < 1:
            raise UserInputError("--long_side must be a positive number of pixels, got {}".format(long_side))
        ops = [ResizeByLong(int(long_side))] + ops
    return ops


def preprocess(image, transforms, long_side=None):
    """uint8 [h, w, 3] RGB (or [h, w] gray, [h, w, 4] RGBA) -> (x float32 [1, 3, H, W], valid_hw (int, int),
    ori_hw (int, int)) through `inference_transforms(transforms, long_side)`."""
    image = as_rgb(image)
    data = Compose(inference_transforms(transforms, long_side), to_rgb=False)(
        {"img": image.astype(np.float32), "trans_info": []})
    x = np.ascontiguousarray(data["img"][None], dtype=np.float32)
    return x, valid_region(data.get("trans_info", []), x.shape[2:]), (int(image.shape[0]), int(image.shape[1]))


class InferenceModel(nn.Layer):
    """Network + post-processing of one image: forward(x float32 [1, 3, H, W], valid_hw int64 [2],
    ori_hw int64 [2]) -> `INFERENCE_OUTPUTS` (panoptic, semantic, instance_ids, instance_scores).

    Args:
        model: a `PanopticModel` in eval mode.
        postprocess: its `build_postprocess(meta, params)` layer.
        scales, flip: test-time augmentation (models with `supports_tta`; not exported).
    """

    def __init__(self, model, postprocess, scales=(1.0,), flip=False):
        super().__init__()
        self.model = model
        self.postprocess = postprocess
        self.scales = tuple(float(s) for s in scales)
        self.flip = bool(flip)

    def network(self, x):
        return self.model.inference_outputs(x, self.scales, self.flip)

    def forward(self, x, valid_hw, ori_hw):
        return self.postprocess(self.network(x), valid_hw, ori_hw)


class Predictor:
    """Everything from an image to its maps (see the module docstring).

    Args:
        model: a `PanopticModel`, in eval mode when called (the caller's job: training switches back
            and forth).
        transforms: the val transforms (objects).
        postprocess: the model's post-processing layer.
        scales, flip: test-time augmentation.
        meta: the dataset metadata the post-processing was built with (kept for callers).
        long_side (int): resize every image to this longer side first (`inference_transforms`).
    Calling it with an image returns a dict of numpy arrays: ``panoptic`` int64 [h, w],
    ``semantic`` int64 [h, w], ``instance_ids`` int64 [M], ``instance_scores`` float32 [M, S].
    """

    def __init__(self, model, transforms, postprocess, scales=(1.0,), flip=False, meta=None, long_side=None):
        scales = check_tta(model, scales, flip)
        self.transforms = list(transforms)
        self.inference = InferenceModel(model, postprocess, scales, flip)
        self.meta = meta
        self.long_side = long_side
        inference_transforms(self.transforms, long_side)  # a bad long_side fails here, before any image
        self.reset_timings()

    def reset_timings(self, sync=False):
        """Zero the seconds spent per stage (`timings`); `sync` waits for the GPU at each stage's end
        (exact stage times, a little slower)."""
        self.timings = {"preprocess": 0.0, "network": 0.0, "postprocess": 0.0}
        self._sync = bool(sync)

    def _lap(self, stage, start):
        if self._sync:
            synchronize()
        now = time.time()
        self.timings[stage] += now - start
        return now

    @property
    def model(self):
        return self.inference.model

    def __call__(self, image, oracle=(), sample=None):
        """Maps of one image; with `oracle` keys, those network outputs come from `sample`'s ground
        truth (the dataset sample of the same image: same transforms, so the same frame)."""
        t = time.time()
        x, valid_hw, ori_hw = preprocess(image, self.transforms, self.long_side)
        with paddle.no_grad():
            x = paddle.to_tensor(x)
            valid = paddle.to_tensor(valid_hw, dtype="int64")
            ori = paddle.to_tensor(ori_hw, dtype="int64")
            t = self._lap("preprocess", t)
            # the two halves of `InferenceModel.forward`, timed apart
            outputs = self.inference.network(x)
            if oracle:
                outputs = self.model.apply_oracle(outputs, sample, tuple(oracle))
            t = self._lap("network", t)
            result = {k: v.numpy() for k, v in zip(INFERENCE_OUTPUTS, self.inference.postprocess(outputs, valid, ori))}
            self._lap("postprocess", t)
        return result


def build_predictor(model, cfg, cfg_path, builder, meta=None, postprocess=None, scales=(1.0,), flip=False,
                    long_side=None):
    """The pipeline `Predictor` of a model and its config (val transforms, post-processing settings:
    model defaults < config `postprocess:` < `postprocess` overrides; `long_side` see `Predictor`)."""
    meta = meta or dataset_metadata(cfg, builder, cfg_path)
    params = postprocess_params(cfg, postprocess, cfg_path)
    transforms = build(builder, "val_transforms", cfg_path)
    return Predictor(model, transforms, model.build_postprocess(meta, params), scales=scales, flip=flip, meta=meta,
                     long_side=long_side)
