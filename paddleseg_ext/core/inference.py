"""Shared inference steps: config/model loading with clear errors, multi-scale + flip forward,
post-processing parameters from a config. Used by val, predict and training-time evaluation."""
import os

import paddle
import paddle.nn.functional as F

from ..utils.errors import UserInputError


def load_config(path, **overrides):
    """Parse a PaddleSeg YAML config; errors name the file and the problem.

    Args:
        path (str): YAML file.
        overrides: `learning_rate`, `batch_size`, `iters` (None = keep the config's value).
    Returns:
        paddleseg.cvlibs.Config
    """
    from paddleseg.cvlibs import Config

    if not path:
        raise UserInputError("no config given: pass --config <file.yml>")
    if not os.path.isfile(path):
        raise UserInputError("config file not found: {}".format(path))
    if not (path.endswith(".yml") or path.endswith(".yaml")):
        raise UserInputError("config file must be YAML (.yml/.yaml): {}".format(path))
    try:
        cfg = Config(path, **{k: v for k, v in overrides.items() if v is not None})
    except (AssertionError, RuntimeError, ValueError, KeyError, TypeError) as e:
        raise UserInputError("invalid config {}: {}".format(path, _first_line(e)))
    except Exception as e:  # yaml.YAMLError and friends
        raise UserInputError("cannot parse config {}: {}".format(path, _first_line(e)))
    check_config_keys(cfg.dic, path)
    return cfg


#: top-level keys of a config: PaddleSeg 2.8's, plus `postprocess` and `seed`
CONFIG_KEYS = ("batch_size", "iters", "train_dataset", "val_dataset", "optimizer", "lr_scheduler", "loss", "model",
               "test_config", "export", "distill_loss", "to_static_training", "_inherited_", "postprocess", "seed")


def _unknown_keys_message(unknown, allowed, where, path):
    import difflib

    hints = []
    for k in unknown:
        close = difflib.get_close_matches(str(k), allowed, n=1)
        hints.append("{!r}{}".format(k, " (did you mean {!r}?)".format(close[0]) if close else ""))
    return "unknown key(s) {} in {} of config {} (allowed: {})".format(
        ", ".join(hints), where, path, ", ".join(allowed))


def check_config_keys(dic, path):
    """UserInputError for a misspelled top-level key or `postprocess:` key (PaddleSeg itself ignores them).

    Keys inside component blocks (model, datasets, losses ...) are checked when the component is built.
    """
    unknown = [k for k in dic if k not in CONFIG_KEYS]
    if unknown:
        raise UserInputError(_unknown_keys_message(unknown, [k for k in CONFIG_KEYS if not k.startswith("_")],
                                                   "the top level", path))
    block = dic.get("postprocess")
    if block is not None and not isinstance(block, dict):
        raise UserInputError("`postprocess:` in config {} must be a mapping of {}, got {!r}".format(
            path, ", ".join(POSTPROCESS_KEYS), block))
    unknown = [k for k in (block or {}) if k not in POSTPROCESS_KEYS + POSTPROCESS_EXTRA_KEYS]
    if unknown:
        raise UserInputError(_unknown_keys_message(unknown, list(POSTPROCESS_KEYS + POSTPROCESS_EXTRA_KEYS),
                                                   "the `postprocess:` block", path))


def _first_line(e):
    text = str(e).strip() or e.__class__.__name__
    marker = "The error message is:"
    if marker in text:  # SegBuilder: "Tried to create ... has failed. ...\nThe error message is: \n<message>"
        text = text.split(marker, 1)[1].strip() or text
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # PaddleSeg wraps the real message after a generic first line; keep the informative part.
    return " ".join(lines[-2:]) if len(lines) > 1 else lines[0]


def build(builder, what, cfg_path):
    """Build `builder.<what>` (model, train_dataset, val_dataset, loss, optimizer ...) with a one-line error."""
    try:
        return getattr(builder, what)
    except UserInputError:
        raise
    except (AssertionError, RuntimeError, ValueError, KeyError, TypeError) as e:
        from ..models import find_user_input_error

        # SegBuilder re-raises constructor errors as a generic RuntimeError: surface ours (e.g. offline URL).
        inner = find_user_input_error(e)
        if inner is not None:
            raise inner
        raise UserInputError("cannot build `{}` from config {}: {}".format(what, cfg_path, _first_line(e)))


def check_num_classes(cfg, model, dataset, cfg_path):
    """num_classes must agree between model, dataset and post-processing (thing ids)."""
    model_nc = cfg.model_cfg.get("num_classes")
    ds_nc = getattr(dataset, "num_classes", None)
    if model_nc is not None and ds_nc is not None and int(model_nc) != int(ds_nc):
        raise UserInputError(
            "num_classes mismatch in {}: model.num_classes={} but the dataset has {} classes".format(
                cfg_path, model_nc, ds_nc))
    nc = int(ds_nc if ds_nc is not None else model_nc)
    bad = [t for t in getattr(dataset, "thing_ids", []) if not 0 <= int(t) < nc]
    if bad:
        raise UserInputError("thing ids {} out of range for num_classes={} (config {})".format(bad, nc, cfg_path))
    check_postprocess_thing_ids(cfg, nc, getattr(dataset, "thing_ids", None), cfg_path)


def check_postprocess_thing_ids(cfg, num_classes, dataset_thing_ids, cfg_path):
    """`postprocess: thing_ids` (optional) must be valid class ids and, for a dataset that knows its
    thing classes, the same ones (evaluation and prediction would otherwise disagree)."""
    block = cfg.dic.get("postprocess") or {}
    if "thing_ids" not in block:
        return
    try:
        ids = sorted(int(t) for t in block["thing_ids"])
    except (TypeError, ValueError):
        raise UserInputError("postprocess.thing_ids in {} must be a list of class ids, got {!r}".format(
            cfg_path, block["thing_ids"]))
    bad = [t for t in ids if not 0 <= t < int(num_classes)]
    if bad:
        raise UserInputError("postprocess.thing_ids {} in {} are outside 0..{} (num_classes={})".format(
            bad, cfg_path, int(num_classes) - 1, num_classes))
    if dataset_thing_ids is not None and ids != sorted(int(t) for t in dataset_thing_ids):
        raise UserInputError("postprocess.thing_ids {} in {} differ from the dataset's thing classes {}".format(
            ids, cfg_path, sorted(int(t) for t in dataset_thing_ids)))


def load_weights(model, model_path):
    """Load `model_path` (a .pdparams file, or a checkpoint dir holding model.pdparams) into `model`.

    Every key of the model must be present with the same shape; otherwise the error lists the missing,
    unexpected and mismatched keys (nothing is skipped silently).
    """
    if model_path is None:
        raise UserInputError("no weights given: pass --model_path <model.pdparams>")
    path = model_path
    if os.path.isdir(path):
        path = os.path.join(path, "model.pdparams")
    if not os.path.isfile(path):
        raise UserInputError("model weights not found: {}".format(model_path))
    try:
        state = paddle.load(path)
    except Exception as e:
        raise UserInputError("cannot read model weights {}: {}".format(path, _first_line(e)))
    if not isinstance(state, dict):
        raise UserInputError("{} does not hold a state dict".format(path))
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [(k, list(state[k].shape), list(own[k].shape)) for k in own
                  if k in state and list(state[k].shape) != list(own[k].shape)]
    if missing or mismatched:
        parts = []
        if mismatched:
            parts.append("shape mismatch (checkpoint vs model): " + ", ".join(
                "{} {} vs {}".format(k, a, b) for k, a, b in mismatched[:20]) +
                (" ... ({} in all)".format(len(mismatched)) if len(mismatched) > 20 else ""))
        if missing:
            parts.append("missing in checkpoint: " + ", ".join(missing[:20]) +
                         (" ... ({} in all)".format(len(missing)) if len(missing) > 20 else ""))
        if unexpected:
            parts.append("unexpected in checkpoint: " + ", ".join(unexpected[:10]) +
                         (" ... ({} in all)".format(len(unexpected)) if len(unexpected) > 10 else ""))
        raise UserInputError("checkpoint {} does not fit the model: {}".format(path, "; ".join(parts)))
    model.set_state_dict({k: state[k] for k in own})
    return path


def load_model(cfg_path, model_path=None):
    """Build the model of a config and load weights.

    Returns:
        (cfg, builder, model) with the model in eval mode.
    """
    from paddleseg.cvlibs import SegBuilder

    cfg = load_config(cfg_path)
    builder = SegBuilder(cfg)
    model = build(builder, "model", cfg_path)
    if model_path is not None:
        load_weights(model, model_path)
    model.eval()
    return cfg, builder, model


def build_val_transforms(builder, cfg_path):
    """The val transforms of a config as a list of transform objects."""
    return build(builder, "val_transforms", cfg_path)


def _forward_once(model, x):
    outs = model(x)
    if len(outs) < 3:
        raise RuntimeError("PanopticDeepLab must return [semantic, center, offset], got {} outputs".format(len(outs)))
    return outs[0], outs[1], outs[2]


def predict_outputs(model, img, ori_hw=None, scales=(1.0,), flip=False, align_corners=None):
    """Run the network with optional multi-scale / horizontal-flip test-time augmentation.

    Args:
        model: PanopticDeepLab in eval mode.
        img (Tensor): float32 [1, 3, H, W], normalised.
        ori_hw (tuple): (h, w) to crop the outputs to (val padding is bottom/right), default (H, W).
        scales (seq of float): input scales; the outputs are resized back to H x W and averaged.
        flip (bool): also run on the horizontally flipped input.
    Returns:
        semantic_probs [C, h, w], center [1, h, w], offset [2, h, w] (dy, dx in input pixels), float32 tensors.
    """
    H, W = int(img.shape[2]), int(img.shape[3])
    if align_corners is None:
        align_corners = bool(getattr(model, "align_corners", False))
    sem_sum = ctr_sum = off_sum = None
    n = 0
    for s in scales:
        s = float(s)
        if s == 1.0:
            x = img
        else:
            size = [max(int(round(H * s)), 1), max(int(round(W * s)), 1)]
            x = F.interpolate(img, size=size, mode="bilinear", align_corners=align_corners)
        for flipped in ([False, True] if flip else [False]):
            xi = paddle.flip(x, axis=[3]) if flipped else x
            sem, ctr, off = _forward_once(model, xi)
            sem = F.softmax(sem, axis=1)
            if flipped:
                sem, ctr, off = paddle.flip(sem, [3]), paddle.flip(ctr, [3]), paddle.flip(off, [3])
                # dx changes sign under a horizontal flip.
                off = paddle.concat([off[:, :1], -off[:, 1:]], axis=1)
            if s != 1.0:
                sem = F.interpolate(sem, size=[H, W], mode="bilinear", align_corners=align_corners)
                ctr = F.interpolate(ctr, size=[H, W], mode="bilinear", align_corners=align_corners)
                off = F.interpolate(off, size=[H, W], mode="bilinear", align_corners=align_corners) / s
            sem_sum = sem if sem_sum is None else sem_sum + sem
            ctr_sum = ctr if ctr_sum is None else ctr_sum + ctr
            off_sum = off if off_sum is None else off_sum + off
            n += 1
    h, w = (H, W) if ori_hw is None else (int(ori_hw[0]), int(ori_hw[1]))
    return (sem_sum[0, :, :h, :w] / n, ctr_sum[0, :, :h, :w] / n, off_sum[0, :, :h, :w] / n)


POSTPROCESS_KEYS = ("threshold", "nms_kernel", "top_k", "stuff_area")
POSTPROCESS_EXTRA_KEYS = ("label_divisor", "void_label", "thing_ids")


def postprocess_params(cfg, dataset=None, **overrides):
    """Keyword arguments of `panoptic_postprocess` from the config's `postprocess:` block and the dataset.

    `overrides` (e.g. command-line flags) win when not None.
    """
    block = dict(cfg.dic.get("postprocess", {}) or {})
    unknown = [k for k in block if k not in POSTPROCESS_KEYS + POSTPROCESS_EXTRA_KEYS]
    if unknown:
        raise UserInputError("unknown key(s) in config `postprocess:` block: {} (allowed: {})".format(
            unknown, ", ".join(POSTPROCESS_KEYS)))
    ds_cfg = cfg.val_dataset_cfg or cfg.train_dataset_cfg
    label_divisor = int(getattr(dataset, "label_divisor", ds_cfg.get("label_divisor", 1000)))
    ignore_index = int(getattr(dataset, "ignore_index", ds_cfg.get("ignore_index", 255)))
    thing_ids = list(getattr(dataset, "thing_ids", block.get("thing_ids", [])))
    params = dict(
        thing_ids=[int(t) for t in thing_ids],
        label_divisor=label_divisor,
        void_label=ignore_index * label_divisor,
        threshold=float(block.get("threshold", 0.1)),
        nms_kernel=int(block.get("nms_kernel", 7)),
        top_k=int(block.get("top_k", 200)),
        stuff_area=int(block.get("stuff_area", 2048)),
    )
    for k, v in overrides.items():
        if v is not None:
            params[k] = type(params[k])(v) if k in params and not isinstance(params[k], list) else v
    if params["nms_kernel"] < 1 or params["nms_kernel"] % 2 == 0:
        raise UserInputError("nms_kernel must be a positive odd number, got {}".format(params["nms_kernel"]))
    if params["top_k"] < 1:
        raise UserInputError("top_k must be >= 1, got {}".format(params["top_k"]))
    return params

