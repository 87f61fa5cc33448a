"""Export a static inference model whose outputs include the post-processed panoptic map.

``paddle.jit.to_static`` + ``paddle.jit.save`` trace `PanopticInferenceModel`: the network, the crop
of the padded input back to the image, the semantic argmax and the whole panoptic post-processing
(`paddleseg_ext.postprocess.PanopticPostprocess`: the same `panoptic_ops` steps that predict.py's
`panoptic_postprocess` runs eagerly, traced; data-dependent sizes such as the number of centres
become dynamic dimensions and the grouping's block loop a while op).

Written to `save_dir`: the model (``model.json`` with Paddle 3's PIR, ``model.pdmodel`` with the old
program format) + ``model.pdiparams``, and ``deploy.yaml`` (preprocessing, input/output names,
post-processing parameters, class names and palette) read by ``deploy/python/infer.py``.

Model inputs: ``x`` float32 [1, 3, H, W] (after the val transforms: normalised and padded) and
``ori_hw`` int64 [2] (height, width of the image before padding). Outputs, all cropped to ``ori_hw``:
``panoptic`` int64 [1, h, w] (``class * label_divisor + instance``, void = ``void_label``),
``semantic`` int64 [1, h, w], ``center`` float32 [1, 1, h, w], ``offset`` float32 [1, 2, h, w].
"""
import argparse
import os

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..postprocess import PanopticPostprocess
from ..utils import UserInputError

INPUT_NAMES = ("x", "ori_hw")
OUTPUT_NAMES = ("panoptic", "semantic", "center", "offset")


class PanopticInferenceModel(nn.Layer):
    """Network + crop + semantic argmax + panoptic post-processing, one image at a time.

    forward(x float32 [1, 3, H, W], ori_hw int64 [2]) -> (panoptic int64 [1, h, w], semantic int64
    [1, h, w], center float32 [1, 1, h, w], offset float32 [1, 2, h, w]) with (h, w) = ori_hw.
    """

    def __init__(self, model, postprocess):
        super().__init__()
        self.model = model
        self.postprocess = postprocess

    def forward(self, x, ori_hw):
        logits, center, offset = self.model(x)[:3]
        ends = ori_hw.astype("int64")
        crop = lambda t: paddle.slice(t, axes=[2, 3], starts=[0, 0], ends=ends)  # noqa: E731
        # softmax before argmax as in `predict`, so both pick the same class on near-ties
        probs = F.softmax(crop(logits), axis=1)
        center, offset = crop(center), crop(offset)
        semantic = paddle.argmax(probs, axis=1)
        panoptic, _ = self.postprocess(semantic[0], center[0], offset[0])
        return panoptic.unsqueeze(0), semantic, center, offset


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


def export(config, model_path, save_dir, input_shape=None, threshold=None, nms_kernel=None, top_k=None,
           stuff_area=None):
    """Export the model of `config` with weights `model_path` to `save_dir`.

    Returns:
        dict with the paths of the `model` file, the `params` file and `deploy` (deploy.yaml).
    """
    import yaml

    from .inference import load_model, postprocess_params
    from .predict import dataset_metadata, prepare_save_dir

    shape = parse_input_shape(input_shape)
    prepare_save_dir(save_dir)
    cfg, builder, model = load_model(config, model_path)
    meta = dataset_metadata(cfg, builder, config)
    post = postprocess_params(cfg, meta, threshold=threshold, nms_kernel=nms_kernel, top_k=top_k,
                              stuff_area=stuff_area)
    net = PanopticInferenceModel(model, PanopticPostprocess(meta.num_classes, **post))
    net.eval()
    spec = [paddle.static.InputSpec([None if s == -1 else s for s in shape], "float32", INPUT_NAMES[0]),
            paddle.static.InputSpec([2], "int64", INPUT_NAMES[1])]
    static_net = paddle.jit.to_static(net, input_spec=spec, full_graph=True)
    prefix = "model"
    paddle.jit.save(static_net, os.path.join(save_dir, prefix), input_spec=spec)

    deploy = {"Deploy": {
        "model": _model_file(save_dir, prefix),
        "params": prefix + ".pdiparams",
        "transforms": list(cfg.val_dataset_cfg.get("transforms", []) or []),
        "input_shape": shape,
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "postprocess": post,
        "num_classes": meta.num_classes,
        "class_names": list(meta.class_names),
        "palette": np.asarray(meta.palette).astype(int).tolist(),
        "label_divisor": meta.label_divisor,
        "ignore_index": meta.ignore_index,
    }}
    deploy_path = os.path.join(save_dir, "deploy.yaml")
    with open(deploy_path, "w") as f:
        yaml.safe_dump(deploy, f, default_flow_style=None, sort_keys=False)
    return {"model": os.path.join(save_dir, deploy["Deploy"]["model"]),
            "params": os.path.join(save_dir, deploy["Deploy"]["params"]), "deploy": deploy_path}


def build_arg_parser():
    p = argparse.ArgumentParser(
        description="Export Panoptic-DeepLab as a static inference model (network + panoptic post-processing) "
                    "with deploy.yaml, for deploy/python/infer.py and paddle.inference.")
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--model_path", required=True, help="model.pdparams (or a checkpoint folder holding it)")
    p.add_argument("--save_dir", default="./output/inference_model", help="output folder")
    p.add_argument("--input_shape", nargs=4, type=int, default=None, metavar=("N", "C", "H", "W"),
                   help="input shape; default 1 3 -1 -1 (any size; N must be 1)")
    p.add_argument("--threshold", type=float, default=None, help="centre score threshold (config postprocess)")
    p.add_argument("--nms_kernel", type=int, default=None, help="centre NMS kernel (config postprocess)")
    p.add_argument("--top_k", type=int, default=None, help="max number of centres (config postprocess)")
    p.add_argument("--stuff_area", type=int, default=None, help="min stuff area (config postprocess)")
    return p


def main(argv=None):
    """Command-line entry point (see `build_arg_parser`)."""
    args = build_arg_parser().parse_args(argv)
    paddle.set_device("cpu")
    out = export(args.config, args.model_path, args.save_dir, args.input_shape, threshold=args.threshold,
                 nms_kernel=args.nms_kernel, top_k=args.top_k, stuff_area=args.stuff_area)
    print("exported {} + {} and {}".format(out["model"], out["params"], out["deploy"]), flush=True)
    return 0
