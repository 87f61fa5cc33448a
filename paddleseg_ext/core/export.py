"""Export a static inference model: the pipeline's `InferenceModel` (network + the model's
post-processing), traced with ``paddle.jit.to_static`` and saved with ``paddle.jit.save``.

Written to `save_dir`: the model (``model.json`` with Paddle 3's PIR, ``model.pdmodel`` with the old
program format) + ``model.pdiparams``, and ``deploy.yaml`` (val transforms, input/output names,
post-processing settings, class names and palette) read by ``deploy/python/infer.py``, which runs the
saved graph after the pipeline's own `preprocess`: the same path as val and predict.

Model inputs: ``x`` float32 [1, 3, H, W] (after the val transforms), ``valid_hw`` int64 [2] (the
image's region of x) and ``ori_hw`` int64 [2] (the image's size before the transforms). Outputs
(`models.base.INFERENCE_OUTPUTS`), at ``ori_hw``: ``panoptic`` int64 [h, w], ``semantic`` int64 [h, w],
``instance_ids`` int64 [M], ``instance_scores`` float32 [M, S].
"""
import os

import numpy as np
import paddle
import yaml

from ..models.base import INFERENCE_OUTPUTS
from ..pipeline import InferenceModel
from ..runtime import build_model, dataset_metadata, load_config, postprocess_params, setup_device
from ..utils import UserInputError, check_writable_dir

INPUT_NAMES = ("x", "valid_hw", "ori_hw")
OUTPUT_NAMES = INFERENCE_OUTPUTS


def parse_input_shape(shape):
    """[N, C, H, W] list (None: [1, 3, -1, -1]); N must be 1, C 3, -1 means any size."""
    if shape is None:
        return [1, 3, -1, -1]
    shape = [int(s) for s in shape]
    if len(shape) != 4:
        raise UserInputError("--input_shape needs 4 numbers N C H W, got {}".format(shape))
    if shape[0] != 1:
        raise UserInputError("--input_shape: N must be 1 (the post-processing runs on one image at a time), "
                             "got {}".format(shape[0]))
    if shape[1] != 3:
        raise UserInputError("--input_shape: C must be 3 (RGB), got {}".format(shape[1]))
    if any(s == 0 or s < -1 for s in shape[2:]):
        raise UserInputError("--input_shape: H and W must be positive or -1, got {}".format(shape[2:]))
    return shape


def _model_file(save_dir, prefix):
    for ext in (".json", ".pdmodel"):
        if os.path.isfile(os.path.join(save_dir, prefix + ext)):
            return prefix + ext
    raise RuntimeError("paddle.jit.save wrote no {0}.json / {0}.pdmodel in {1}".format(prefix, save_dir))


def export(config, model_path, save_dir, input_shape=None, postprocess=None, verbose=False):
    """Export the model of `config` with weights `model_path` to `save_dir` (on the CPU).

    Args:
        postprocess (dict): post-processing overrides (None values ignored), frozen into the graph.
    Returns:
        dict with the paths of the `model` file, the `params` file and `deploy` (deploy.yaml).
    """
    shape = parse_input_shape(input_shape)
    check_writable_dir(save_dir, "--save_dir")
    setup_device("cpu")
    cfg = load_config(config)
    builder, model = build_model(cfg, config, model_path, verbose=verbose)
    meta = dataset_metadata(cfg, builder, config)
    params = postprocess_params(cfg, postprocess, config)
    net = InferenceModel(model, model.build_postprocess(meta, params))
    net.eval()
    spec = [paddle.static.InputSpec([None if s == -1 else s for s in shape], "float32", INPUT_NAMES[0]),
            paddle.static.InputSpec([2], "int64", INPUT_NAMES[1]),
            paddle.static.InputSpec([2], "int64", INPUT_NAMES[2])]
    static_net = paddle.jit.to_static(net, input_spec=spec, full_graph=True)
    prefix = "model"
    paddle.jit.save(static_net, os.path.join(save_dir, prefix), input_spec=spec)

    deploy = {"Deploy": {
        "model": _model_file(save_dir, prefix),
        "params": prefix + ".pdiparams",
        "model_type": type(model).__name__,
        "transforms": list(cfg.val_dataset_cfg.get("transforms", []) or []),
        "input_shape": shape,
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "score_modes": list(getattr(model, "score_modes", ())),
        "postprocess": params,
        "num_classes": meta.num_classes,
        "thing_ids": list(meta.thing_ids),
        "class_names": list(meta.class_names),
        "palette": np.asarray(meta.palette).astype(int).tolist(),
        "label_divisor": meta.label_divisor,
        "ignore_index": meta.ignore_index,
        "void_label": meta.void_label,
    }}
    deploy_path = os.path.join(save_dir, "deploy.yaml")
    with open(deploy_path, "w") as f:
        yaml.safe_dump(deploy, f, default_flow_style=None, sort_keys=False)
    return {"model": os.path.join(save_dir, deploy["Deploy"]["model"]),
            "params": os.path.join(save_dir, deploy["Deploy"]["params"]), "deploy": deploy_path}
