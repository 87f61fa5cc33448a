"""Checkpoints that a kill cannot truncate: written to a temporary folder, then renamed into place.

Layout (contract): `<save_dir>/iter_<N>/model.pdparams` + `model.pdopt` + `train_state.json`,
`<save_dir>/best_model/model.pdparams` (+ `best_state.json`).
"""
import json
import os
import re
import shutil

import paddle

from ..runtime.weights import load_weights
from ..utils import UserInputError

ITER_DIR = re.compile(r"^iter_(\d+)$")
TMP_PREFIX = ".tmp_"


def _fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _save_tensor_file(obj, path):
    paddle.save(obj, path)
    _fsync_file(path)


def _write_json(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(save_dir, iteration, model, optimizer, state):
    """Write `<save_dir>/iter_<iteration>/` atomically; returns its path.

    Args:
        state (dict): JSON-able training state (iteration, best metric, seed, ...).
    """
    final = os.path.join(save_dir, "iter_{}".format(iteration))
    tmp = os.path.join(save_dir, "{}iter_{}_{}".format(TMP_PREFIX, iteration, os.getpid()))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        _save_tensor_file(model.state_dict(), os.path.join(tmp, "model.pdparams"))
        _save_tensor_file(portable_optimizer_state(optimizer.state_dict(), model), os.path.join(tmp, "model.pdopt"))
        _write_json(dict(state, iteration=int(iteration)), os.path.join(tmp, "train_state.json"))
    except OSError as e:  # disk full, quota, permissions: earlier checkpoints stay as they were
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserInputError("cannot write checkpoint {}: {}".format(final, e.strerror or e))
    if os.path.isdir(final):
        # Same iteration saved again (e.g. a resumed run): move the old one aside first.
        trash = final + ".old_{}".format(os.getpid())
        os.rename(final, trash)
        os.rename(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(save_dir)
    return final


def save_best_model(save_dir, model, state):
    """Replace `<save_dir>/best_model/model.pdparams` atomically (file-level rename)."""
    best = os.path.join(save_dir, "best_model")
    tmp = os.path.join(best, "{}model.pdparams.{}".format(TMP_PREFIX, os.getpid()))
    try:
        os.makedirs(best, exist_ok=True)
        _save_tensor_file(model.state_dict(), tmp)
    except OSError as e:  # the previous best model stays as it was
        if os.path.exists(tmp):
            os.remove(tmp)
        raise UserInputError("cannot write best model {}: {}".format(best, e.strerror or e))
    os.replace(tmp, os.path.join(best, "model.pdparams"))
    tmp_json = os.path.join(best, "{}best_state.json.{}".format(TMP_PREFIX, os.getpid()))
    _write_json(state, tmp_json)
    os.replace(tmp_json, os.path.join(best, "best_state.json"))
    _fsync_dir(best)
    return best


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_checkpoints(save_dir):
    """Complete `iter_<N>` checkpoints in `save_dir`, sorted by N: list of (N, path)."""
    if not os.path.isdir(save_dir):
        return []
    out = []
    for name in os.listdir(save_dir):
        m = ITER_DIR.match(name)
        path = os.path.join(save_dir, name)
        if m and _is_complete(path):
            out.append((int(m.group(1)), path))
    return sorted(out)


def _is_complete(path):
    return os.path.isfile(os.path.join(path, "model.pdparams")) and os.path.isfile(os.path.join(path, "model.pdopt"))


def remove_stale_tmp(save_dir):
    """Clean up after a run that was killed while saving.

    Temporary folders/files are deleted. `iter_<N>.old_<pid>` is a complete checkpoint moved aside while
    iteration N was saved again: it is put back if the kill came before the new `iter_<N>` was in place.
    """
    if not os.path.isdir(save_dir):
        return
    for folder in (save_dir, os.path.join(save_dir, "best_model")):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            old = re.match(r"^(iter_\d+)\.old_\d+$", name) if folder == save_dir else None
            if old:
                final = os.path.join(save_dir, old.group(1))
                if not _is_complete(final) and _is_complete(path):
                    shutil.rmtree(final, ignore_errors=True)
                    os.rename(path, final)
                else:
                    shutil.rmtree(path, ignore_errors=True)
            elif name.startswith(TMP_PREFIX):
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)


def prune_checkpoints(save_dir, keep_max, protect=()):
    """Keep the newest `keep_max` iter_<N> checkpoints (never the newest one, nor the paths in `protect`,
    e.g. the one just written; best_model is separate and never pruned)."""
    if keep_max is None or keep_max <= 0:
        return []
    ckpts = list_checkpoints(save_dir)
    kept = {os.path.realpath(p) for _, p in ckpts[-max(int(keep_max), 1):]}
    kept |= {os.path.realpath(p) for p in protect if p}
    doomed = [c for c in ckpts if os.path.realpath(c[1]) not in kept]
    for _, path in doomed:
        # renamed first so that a kill during the deletion leaves no half-deleted iter_<N>
        trash = os.path.join(save_dir, "{}pruned_{}".format(TMP_PREFIX, os.path.basename(path)))
        shutil.rmtree(trash, ignore_errors=True)
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
    return [p for _, p in doomed]


def resolve_resume_path(resume_model):
    """`--resume_model` may name an iter_<N> folder or a save_dir (then its newest complete checkpoint)."""
    if not os.path.isdir(resume_model):
        raise UserInputError("--resume_model: no such checkpoint folder: {}".format(resume_model))
    if os.path.isfile(os.path.join(resume_model, "model.pdparams")):
        if not os.path.isfile(os.path.join(resume_model, "model.pdopt")):
            raise UserInputError("--resume_model: {} has no model.pdopt (optimizer state)".format(resume_model))
        return resume_model
    ckpts = list_checkpoints(resume_model)
    if not ckpts:
        raise UserInputError("--resume_model: no complete iter_<N> checkpoint in {}".format(resume_model))
    return ckpts[-1][1]


STRUCT_PREFIX = "@param:"


def _param_names(model):
    """{framework name of each parameter: its structured name in the model}."""
    return {p.name: n for n, p in model.named_parameters()}


def portable_optimizer_state(opt_state, model):
    """Key optimizer accumulators by structured parameter names instead of framework names.

    Framework names (`conv2d_12.w_0`) depend on how many layers the process created before, so a model
    rebuilt in another process, or twice in one, would not find its Adam moments.
    """
    names = _param_names(model)
    # longest first, so `conv2d_1.w_0` never claims the accumulators of `conv2d_1.w_01`
    order = sorted(names, key=len, reverse=True)
    out = {}
    for key, value in opt_state.items():
        new_key = key
        if isinstance(key, str):
            for fw in order:
                if key.startswith(fw + "_"):
                    new_key = "{}{}|{}".format(STRUCT_PREFIX, names[fw], key[len(fw):])
                    break
        if key == "master_weights" and isinstance(value, dict):
            value = {STRUCT_PREFIX + names.get(k, k): v for k, v in value.items()}
        out[new_key] = value
    return out


def restore_optimizer_state(opt_state, model):
    """Inverse of `portable_optimizer_state` for the parameters of `model` (old-style states pass through)."""
    fw_of = {n: p.name for n, p in model.named_parameters()}
    out = {}
    for key, value in opt_state.items():
        new_key = key
        if isinstance(key, str) and key.startswith(STRUCT_PREFIX):
            struct, suffix = key[len(STRUCT_PREFIX):].split("|", 1)
            if struct not in fw_of:
                raise UserInputError("optimizer state refers to parameter {} that the model does not have".format(struct))
            new_key = fw_of[struct] + suffix
        if key == "master_weights" and isinstance(value, dict):
            value = {fw_of.get(k[len(STRUCT_PREFIX):], k) if k.startswith(STRUCT_PREFIX) else k: v
                     for k, v in value.items()}
        out[new_key] = value
    return out


def load_checkpoint(path, model, optimizer):
    """Restore weights, optimizer (incl. lr schedule) and the training state; returns the state dict."""
    load_weights(model, os.path.join(path, "model.pdparams"))
    try:
        opt_state = paddle.load(os.path.join(path, "model.pdopt"))
    except Exception as e:
        raise UserInputError("cannot read optimizer state {}: {}".format(os.path.join(path, "model.pdopt"), e))
    optimizer.set_state_dict(restore_optimizer_state(opt_state, model))
    state_file = os.path.join(path, "train_state.json")
    if os.path.isfile(state_file):
        with open(state_file) as f:
            state = json.load(f)
    else:  # checkpoints written by PaddleSeg itself carry the iteration in the folder name only
        m = ITER_DIR.match(os.path.basename(os.path.normpath(path)))
        if not m:
            raise UserInputError("cannot tell the iteration of checkpoint {}".format(path))
        state = {"iteration": int(m.group(1))}
    return state
