"""The interface between a panoptic model and the loops (training, evaluation, prediction, export).

The loops never name a model's outputs or loss terms: they call the methods below. A new panoptic
model subclasses `PanopticModel`, is registered in `manager.MODELS`, and works with every command.

Network and training
    ``forward(x)``: x float32 [N, 3, H, W] (normalised, padded) -> a list of tensors, whatever the
    model's `loss` and post-processing need.
    ``loss(outputs, batch, losses)``: named loss terms (dict name -> float32 scalar tensor, each
    already multiplied by its coefficient); the training loop sums, logs and NaN-checks them.
    `batch` is the collated dataset sample (dict of tensors); `losses` is PaddleSeg's built
    ``loss:`` block, ``{"types": [loss layers], "coef": [floats]}``.

Inference (one image, batch 1)
    ``inference_outputs(x, scales=(1.0,), flip=False)``: the network outputs the post-processing
    takes (default: ``self(x)``; a model may normalise them, e.g. softmax, and average test-time
    augmentation here; without TTA it must trace with ``paddle.jit.to_static``).
    ``build_postprocess(meta, params)``: an ``nn.Layer`` whose
    ``forward(outputs, valid_hw, ori_hw)`` turns those outputs into the tuple
    `INFERENCE_OUTPUTS`:

    - ``panoptic`` int64 [h, w]: ``class * label_divisor + instance`` (instance from 1 for things,
      0 for stuff), ``void_label`` on void;
    - ``semantic`` int64 [h, w]: per-pixel class;
    - ``instance_ids`` int64 [M]: panoptic ids of the thing instances;
    - ``instance_scores`` float32 [M, S]: a confidence per instance for each of the model's
      `score_modes` (instance AP is computed per mode).

    `valid_hw` / `ori_hw` are int64 [2] tensors: the network input holds the image in its top-left
    ``valid_hw`` region (the val transforms pad bottom/right), and the image had size ``ori_hw``
    before the transforms (they may have resized it). The layer crops to `valid_hw` and brings the
    result back to `ori_hw`, so that (h, w) == ori_hw. It must trace with ``paddle.jit.to_static``
    (the exported model is this very layer behind the network).
    `meta` (`runtime.dataset_metadata`) has the attributes ``num_classes``, ``thing_ids``,
    ``label_divisor``, ``ignore_index`` and ``void_label``; `params` is the
    model's `postprocess_defaults` updated by the config's ``postprocess:`` block and command-line
    overrides.

Optional
    ``apply_oracle(outputs, sample, keys)``: outputs with the parts named by `keys` replaced by
    ground truth from the (val) `sample`; `oracle_keys` lists what a model supports.
"""
import paddle.nn as nn

from ..utils import UserInputError

#: names of the outputs of a post-processing layer, in order
INFERENCE_OUTPUTS = ("panoptic", "semantic", "instance_ids", "instance_scores")


def check_tta(model, scales, flip, supported=None):
    """The test-time augmentation `scales` as a tuple of floats; raises a one-line UserInputError when
    scales other than (1.0,) or `flip` are asked of a model without it (`supported`, default: the
    model's `supports_tta`). The one refusal of val.py, predict.py and `PanopticModel.inference_outputs`."""
    scales = tuple(float(s) for s in scales)
    if supported is None:
        supported = getattr(model, "supports_tta", False)
    if (scales != (1.0,) or flip) and not supported:
        raise UserInputError("{} does not support test-time augmentation (--scales {}, --flip_horizontal {})".format(
            type(model).__name__, list(scales), bool(flip)))
    return scales


class PanopticModel(nn.Layer):
    """Base class of the panoptic models (see the module docstring for the contract)."""

    #: post-processing settings and their defaults (the config's ``postprocess:`` keys)
    postprocess_defaults = {}
    #: names of the instance confidence modes of ``instance_scores`` (columns)
    score_modes = ()
    #: ground-truth substitutions `apply_oracle` supports (val.py --oracle)
    oracle_keys = ()
    #: whether `inference_outputs` supports scales other than 1.0 and flipping
    supports_tta = False

    def loss(self, outputs, batch, losses):
        raise NotImplementedError

    def build_postprocess(self, meta, params):
        raise NotImplementedError

    def inference_outputs(self, x, scales=(1.0,), flip=False):
        check_tta(self, scales, flip, supported=False)  # a model with TTA overrides this method
        return self(x)

    def apply_oracle(self, outputs, sample, keys):
        if keys:
            raise UserInputError("{} supports no --oracle substitution (asked: {})".format(
                type(self).__name__, ",".join(keys)))
        return outputs
