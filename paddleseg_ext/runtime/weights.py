"""Model weights: building a config's model with or without its pretrained (ImageNet) weights, and
loading a full checkpoint (``model.pdparams``) with an exact key/shape check."""
import copy
import os

import paddle

from ..models.pretrained import clear_pretrained_errors
from ..utils import UserInputError, log
from .config import build, first_line
from .metadata import MetadataSegBuilder


def without_pretrained(model_cfg):
    """A copy of a ``model:`` block with every ``pretrained`` (model, backbone, nested) set to None."""
    def strip(node):
        if isinstance(node, dict):
            return {k: (None if k == "pretrained" else strip(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    return strip(copy.deepcopy(model_cfg))


def build_model(cfg, cfg_path, model_path=None, verbose=False):
    """Build the model of `cfg`; with `model_path`, load that checkpoint into it.

    A checkpoint replaces every weight, so with `model_path` the config's ``pretrained`` entries (an
    ImageNet backbone URL, say) are not fetched: evaluating released weights works offline. Without
    it (training from the config) they are loaded, with one-line errors for unreachable URLs.
    The caller's `cfg` is left as it is: those changes (and the classes `MetadataSegBuilder` fills in) go
    to a copy, the returned builder's ``config``.
    Returns (builder, model); the model is in eval mode when weights were loaded.
    """
    cfg = copy.copy(cfg)
    cfg.dic = copy.deepcopy(cfg.dic)
    if model_path is not None:
        cfg.dic["model"] = without_pretrained(cfg.dic.get("model") or {})
    builder = MetadataSegBuilder(cfg, cfg_path)  # num_classes from a CustomPanoptic dataset
    with clear_pretrained_errors():
        model = build(builder, "model", cfg_path, verbose=verbose)
    log.debug("[MODEL] {} from {}: {} parameters in {} tensors".format(
        type(model).__name__, cfg_path, sum(int(p.size) for p in model.parameters()), len(model.state_dict())))
    if model_path is not None:
        log.debug("[MODEL] weights: {}".format(load_weights(model, model_path)))
        model.eval()
    return builder, model


def load_weights(model, model_path):
    """Load `model_path` (a .pdparams file, or a checkpoint dir holding model.pdparams) into `model`.

    Every key of the model must be present with the same shape; otherwise the error lists the missing,
    unexpected and mismatched keys (nothing is skipped silently). Returns the file path.
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
        raise UserInputError("cannot read model weights {}: {}".format(path, first_line(e)))
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
