"""Config loading and checks: PaddleSeg YAML files, component building with one-line errors, the
post-processing settings of a run (model defaults < config ``postprocess:`` < command line)."""
import contextlib
import difflib
import os

from paddleseg.cvlibs import Config, manager
from paddleseg.utils import logger as paddleseg_logger

from ..utils import UserInputError

#: top-level keys of a config: PaddleSeg 2.8's, plus `postprocess`, `seed` and `batch_norm`
CONFIG_KEYS = ("batch_size", "iters", "train_dataset", "val_dataset", "optimizer", "lr_scheduler", "loss", "model",
               "test_config", "export", "distill_loss", "to_static_training", "_inherited_", "postprocess", "seed",
               "batch_norm")
#: keys of the `batch_norm:` block (its values are checked by `core.hooks.bn_freeze_settings`)
BATCH_NORM_KEYS = ("freeze_statistics_at", "blend_from", "precise_batches")
#: `postprocess:` keys every model accepts (besides its own `postprocess_defaults`)
POSTPROCESS_COMMON_KEYS = ("label_divisor", "void_label", "thing_ids")


@contextlib.contextmanager
def paddleseg_log_level(verbose):
    """PaddleSeg prints every config block it builds and warnings such as "Add the `in_channels` ...";
    unless `verbose`, only its errors are shown while components are built."""
    old = paddleseg_logger.log_level
    paddleseg_logger.log_level = old if verbose else 0
    try:
        yield
    finally:
        paddleseg_logger.log_level = old


def load_config(path, **overrides):
    """Parse a PaddleSeg YAML config; errors name the file and the problem.

    Args:
        path (str): YAML file.
        overrides: `learning_rate`, `batch_size`, `iters` (None = keep the config's value).
    Returns:
        paddleseg.cvlibs.Config
    """
    if not path:
        raise UserInputError("no config given: pass --config <file.yml>")
    if not os.path.isfile(path):
        raise UserInputError("config file not found: {}".format(path))
    if not (path.endswith(".yml") or path.endswith(".yaml")):
        raise UserInputError("config file must be YAML (.yml/.yaml): {}".format(path))
    try:
        cfg = Config(path, **{k: v for k, v in overrides.items() if v is not None})
    except (AssertionError, RuntimeError, ValueError, KeyError, TypeError) as e:
        raise UserInputError("invalid config {}: {}".format(path, first_line(e)))
    except Exception as e:  # yaml.YAMLError and friends
        raise UserInputError("cannot parse config {}: {}".format(path, first_line(e)))
    check_config_keys(cfg.dic, path)
    return cfg


def model_class(cfg, path="the config"):
    """The registered class named by the config's ``model: type:``."""
    name = (cfg.dic.get("model") or {}).get("type")
    if name not in manager.MODELS.components_dict:
        raise UserInputError("model type {!r} in {} is not registered (known: {})".format(
            name, path, ", ".join(sorted(manager.MODELS.components_dict))))
    return manager.MODELS[name]


def postprocess_keys(cfg, path="the config"):
    """The `postprocess:` keys the config's model accepts."""
    return tuple(getattr(model_class(cfg, path), "postprocess_defaults", {})) + POSTPROCESS_COMMON_KEYS


def _unknown_keys_message(unknown, allowed, where, path):
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
    bn = dic.get("batch_norm")
    if bn is not None:
        if not isinstance(bn, dict):
            raise UserInputError("`batch_norm:` in config {} must be a mapping of {}, got {!r}".format(
                path, ", ".join(BATCH_NORM_KEYS), bn))
        unknown = [k for k in bn if k not in BATCH_NORM_KEYS]
        if unknown:
            raise UserInputError(_unknown_keys_message(unknown, list(BATCH_NORM_KEYS), "the `batch_norm:` block", path))
    block = dic.get("postprocess")
    if block is None:
        return
    model_type = (dic.get("model") or {}).get("type")
    if model_type not in manager.MODELS.components_dict:
        return  # building the model names the unknown type
    defaults = getattr(manager.MODELS.components_dict[model_type], "postprocess_defaults", {})
    allowed = list(defaults) + list(POSTPROCESS_COMMON_KEYS)
    if not isinstance(block, dict):
        raise UserInputError("`postprocess:` in config {} must be a mapping of {}, got {!r}".format(
            path, ", ".join(allowed), block))
    unknown = [k for k in block if k not in allowed]
    if unknown:
        raise UserInputError(_unknown_keys_message(unknown, allowed, "the `postprocess:` block", path))


def first_line(e):
    """The informative line of an exception message (PaddleSeg wraps the real one)."""
    text = str(e).strip() or e.__class__.__name__
    marker = "The error message is:"
    if marker in text:  # SegBuilder: "Tried to create ... has failed. ...\nThe error message is: \n<message>"
        text = text.split(marker, 1)[1].strip() or text
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[-2:]) if len(lines) > 1 else lines[0]


def find_user_input_error(exc):
    """The ``UserInputError`` in ``exc``'s cause/context chain (or ``exc`` itself), else None.

    ``SegBuilder`` re-raises any constructor error as a generic RuntimeError; ours stays in the chain.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserInputError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def build(builder, what, cfg_path, verbose=False):
    """Build `builder.<what>` (model, train_dataset, val_dataset, loss, optimizer ...) with a one-line error."""
    try:
        with paddleseg_log_level(verbose):
            return getattr(builder, what)
    except UserInputError:
        raise
    except (AssertionError, RuntimeError, ValueError, KeyError, TypeError) as e:
        inner = find_user_input_error(e)
        if inner is not None:
            raise inner
        raise UserInputError("cannot build `{}` from config {}: {}".format(what, cfg_path, first_line(e)))


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


def postprocess_params(cfg, overrides=None, path="the config"):
    """The model's post-processing settings for this run.

    The model class's `postprocess_defaults`, updated by the config's ``postprocess:`` block, then by
    `overrides` (command-line values; None means "not given"). Values take the type of the default.
    Returns a dict with exactly the keys of `postprocess_defaults`.
    """
    defaults = dict(getattr(model_class(cfg, path), "postprocess_defaults", {}))
    block = dict(cfg.dic.get("postprocess") or {})
    params = dict(defaults)
    for source, values in (("config {} postprocess".format(path), block), ("command line", overrides or {})):
        for k, v in values.items():
            if v is None or k in POSTPROCESS_COMMON_KEYS:
                continue
            if k not in defaults:
                raise UserInputError("{}: unknown post-processing setting {!r} for {} (allowed: {})".format(
                    source, k, model_class(cfg, path).__name__, ", ".join(defaults)))
            params[k] = _coerce(v, defaults[k], k, source)
    return params


def _coerce(value, default, key, source):
    if default is None or isinstance(default, (list, tuple, dict)):
        return value
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            return bool(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise UserInputError("{}: post-processing setting {}={!r} must be {} (default {!r})".format(
            source, key, value, kind.__name__, default))
