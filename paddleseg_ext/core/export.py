"""Export a static inference model whose outputs include the post-processed panoptic map.

``paddle.jit.to_static`` + ``paddle.jit.save`` trace `PanopticInferenceModel`: the network, the crop
of the padded input back to the image, the semantic argmax and the whole panoptic post-processing
(`PanopticPostprocess`, written with graph-friendly ops only: data-dependent sizes such as the number
of centres become dynamic dimensions; no Python control flow depends on tensor values).

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

from ..utils import UserInputError

INPUT_NAMES = ("x", "ori_hw")
OUTPUT_NAMES = ("panoptic", "semantic", "center", "offset")
# Distance of the extra centre that keeps `argmin` defined when no centre is found.
_FAR_AWAY = 1e8


class PanopticPostprocess(nn.Layer):
    """Panoptic-DeepLab post-processing with traceable ops, giving exactly what
    `paddleseg_ext.postprocess.panoptic_postprocess` gives (same rules, same tie-breaking):

    1. centres: positions above max(`threshold`, 0) equal to their `nms_kernel` window maximum; with
       more than `top_k`, the `top_k` highest (ties: lower raster index); kept in raster order;
    2. every thing pixel joins the centre nearest to ``(y, x) + offset`` (exact float64 distances,
       ties: lower centre index);
    3. each instance takes the majority thing class of its pixels (ties: smaller class id) and is
       numbered from 1 per class in centre order; stuff classes with fewer than `stuff_area` pixels
       and thing pixels without any centre become `void_label`.

    Sizes that depend on the data (number of centres, of thing pixels) are dynamic dimensions; no
    Python control flow depends on tensor values, so `paddle.jit.to_static` traces it whole.

    forward(semantic int [H, W], center float32 [1, H, W], offset float32 [2, H, W]) ->
    (panoptic int64 [H, W], centers int64 [K, 2] (y, x)).
    """

    def __init__(self, num_classes, thing_ids, label_divisor=1000, void_label=255 * 1000, threshold=0.1,
                 nms_kernel=7, top_k=200, stuff_area=2048):
        super().__init__()
        if nms_kernel < 1 or nms_kernel % 2 == 0:
            raise UserInputError("nms_kernel must be a positive odd number, got {}".format(nms_kernel))
        if top_k < 1:
            raise UserInputError("top_k must be >= 1, got {}".format(top_k))
        bad = [t for t in thing_ids if not 0 <= int(t) < num_classes]
        if bad:
            raise UserInputError("thing ids {} out of range for num_classes={}".format(bad, num_classes))
        is_thing = np.zeros([num_classes], dtype="int64")
        is_thing[[int(t) for t in thing_ids]] = 1
        self.register_buffer("is_thing", paddle.to_tensor(is_thing), persistable=True)
        self.num_classes = int(num_classes)
        self.label_divisor = int(label_divisor)
        self.void_label = int(void_label)
        self.threshold = max(float(threshold), 0.0)
        self.nms_kernel = int(nms_kernel)
        self.top_k = int(top_k)
        self.stuff_area = int(stuff_area)

    def find_centers(self, center):
        """[1, H, W] heatmap -> int64 [K, 2] (y, x) centres in raster order."""
        width = paddle.shape(center)[2].astype("int64")
        heat = center.unsqueeze(0)
        pooled = F.max_pool2d(heat, self.nms_kernel, stride=1, padding=self.nms_kernel // 2)
        keep = paddle.logical_and(heat == pooled, heat > self.threshold).flatten()
        pos = paddle.nonzero(keep).flatten()
        scores = paddle.gather(heat.flatten(), pos)
        # the top_k highest (a slice past the end is harmless), stable so ties keep raster order
        best = paddle.argsort(-scores, stable=True)[:self.top_k]
        pos = paddle.gather(pos, paddle.sort(best))
        return paddle.stack([pos // width, pos % width], axis=1)

    def assign_instances(self, centers, offset, pix, width):
        """Index (0..K-1) of the centre nearest to where each pixel in `pix` points; K when K = 0."""
        qy = (pix // width).astype("float32") + paddle.gather(offset[0].flatten(), pix)
        qx = (pix % width).astype("float32") + paddle.gather(offset[1].flatten(), pix)
        # A far-away extra centre keeps argmin defined when there is none (it never wins otherwise).
        c = paddle.concat([centers.astype("float64"), paddle.full([1, 2], _FAR_AWAY, dtype="float64")], axis=0)
        cy, cx = c[:, 0], c[:, 1]
        # |q - c|^2 - |q|^2 = |c|^2 - 2 q.c, exact in float64 (integer c, float32 q): same argmin, same ties
        cmat = paddle.stack([-2.0 * cy, -2.0 * cx, cy * cy + cx * cx], axis=0)  # [3, K+1]
        qy, qx = qy.astype("float64"), qx.astype("float64")
        q = paddle.stack([qy, qx, paddle.ones_like(qy)], axis=1)  # [P, 3]
        return paddle.argmin(paddle.matmul(q, cmat), axis=1)

    def forward(self, semantic, center, offset):
        C = self.num_classes
        hw = paddle.shape(semantic)
        width = hw[1].astype("int64")
        sem = semantic.flatten().astype("int64")
        centers = self.find_centers(center)
        num = paddle.shape(centers)[0].astype("int64")

        thing = paddle.gather(self.is_thing, sem) > 0
        pix = paddle.nonzero(thing).flatten()
        nearest = self.assign_instances(centers, offset, pix, width)  # [P] in 0..K

        # majority vote over (instance, class) pairs; row K (no centre) is never used
        votes = paddle.bincount(nearest * C + paddle.gather(sem, pix), minlength=(num + 1) * C).reshape([-1, C])
        # count * C + (C - 1 - class) is unique per row and orders like (count, -class)
        tie_break = paddle.arange(C - 1, -1, -1, dtype="int64")
        winner = paddle.argmax(votes * C + tie_break, axis=1)
        has_pixels = votes.sum(axis=1) > 0
        # per-class running count over instances in centre order = instance number within its class
        won = F.one_hot(winner, C).astype("int64") * has_pixels.astype("int64").unsqueeze(1)
        number = paddle.take_along_axis(paddle.cumsum(won, axis=0), winner.unsqueeze(1), axis=1).flatten()
        instance_label = winner * self.label_divisor + number
        instance_label = paddle.where(paddle.arange(num + 1) < num, instance_label,
                                      paddle.full_like(instance_label, self.void_label))

        # stuff classes large enough keep their class, everything else starts as void
        area = paddle.bincount(sem, minlength=C)[:C]
        class_label = paddle.where(paddle.logical_or(self.is_thing > 0, area < self.stuff_area),
                                   paddle.full([C], self.void_label, dtype="int64"),
                                   paddle.arange(C, dtype="int64") * self.label_divisor)
        panoptic = paddle.gather(class_label, sem)
        panoptic = paddle.scatter(panoptic, pix, paddle.gather(instance_label, nearest), overwrite=True)
        return panoptic.reshape(hw), centers


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
