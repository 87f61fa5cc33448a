"""Config loading and checks: PaddleSeg YAML files, component building with one-line errors, the
post-processing settings of a run (model defaults < config ``postprocess:`` < command line)."""
import contextlib
import os

from paddleseg.cvlibs import Config, manager
from paddleseg.utils import logger as paddleseg_logger

from ..utils import UserInputError
from . import schema


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
    """Parse a PaddleSeg YAML config and check the project's keys (`schema.validate`); errors name the file
    and the problem.

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
    schema.validate(cfg.dic, path)
    return cfg


def model_class(cfg, path="the config"):
    """The registered class named by the config's ``model: type:``."""
    name = (cfg.dic.get("model") or {}).get("type")
    if name not in manager.MODELS.components_dict:
        raise UserInputError("model type {!r} in {} is not registered (known: {})".format(
            name, path, ", ".join(sorted(manager.MODELS.components_dict))))
    return manager.MODELS[name]


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
    """`postprocess: thing_ids` (optional) must be class ids below `num_classes` and, for a dataset that knows
    its thing classes, the same ones (evaluation and prediction would otherwise disagree)."""
    ids = schema.settings(cfg.dic, "postprocess", cfg_path)["thing_ids"]
    if ids is None:
        return
    ids = sorted(ids)
    bad = [t for t in ids if not t < int(num_classes)]
    if bad:
        raise UserInputError("postprocess.thing_ids {} in {} are outside 0..{} (num_classes={})".format(
            bad, cfg_path, int(num_classes) - 1, num_classes))
    if dataset_thing_ids is not None and ids != sorted(int(t) for t in dataset_thing_ids):
        raise UserInputError("postprocess.thing_ids {} in {} differ from the dataset's thing classes {}".format(
            ids, cfg_path, sorted(int(t) for t in dataset_thing_ids)))


def postprocess_params(cfg, overrides=None, path="the config"):
    """The model's post-processing settings for this run.

    The model class's `postprocess_defaults`, updated by the config's ``postprocess:`` block (checked by
    `schema.validate` at load time), then by `overrides` (command-line values, converted and checked by the
    same schema; None means "not given"). Returns a dict with exactly the keys of `postprocess_defaults`.
    """
    cls = model_class(cfg, path)
    table = {k.name: k for k in schema.postprocess_table(cls)}
    common = {k.name for k in schema.POSTPROCESS_COMMON}
    block = schema.settings(cfg.dic, "postprocess", path)
    params = {k: v for k, v in block.items() if k not in common}
    for k, v in (overrides or {}).items():
        if v is None or k in common:
            continue
        if k not in params:
            raise UserInputError("command line: unknown post-processing setting {!r} for {} (allowed: {})".format(
                k, cls.__name__, ", ".join(params)))
        params[k] = schema.convert(table[k], v, "postprocess." + k, "on the command line")
    return params
