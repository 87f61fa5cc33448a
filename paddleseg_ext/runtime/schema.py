"""The configuration keys this project adds on top of PaddleSeg's: one table of them (type, default, allowed
values, one line of doc each), checked in one place (`validate`, called by `load_config`), read back
defaulted (`settings`) and rendered as the reference tables of docs/configuration.md (`render_reference`).

PaddleSeg's own keys (`PADDLESEG_KEYS`: batch_size, iters, model, datasets, loss, optimizer ...) stay
PaddleSeg's business: their blocks are checked when the component they describe is built. The keys of a
model's ``postprocess:`` block are the model class's `postprocess_defaults` (the only place their defaults
are defined); `POSTPROCESS` adds their types, ranges and docs for the models of this project, and a model
without an entry (e.g. one defined in a user's code) gets the type of each default.
"""
import collections
import difflib
import math

from paddleseg.cvlibs import manager

from ..utils import UserInputError

#: PaddleSeg 2.8's top-level keys (checked by PaddleSeg and the components they build)
PADDLESEG_KEYS = ("batch_size", "iters", "train_dataset", "val_dataset", "optimizer", "lr_scheduler", "loss",
                  "model", "test_config", "export", "distill_loss", "to_static_training", "_inherited_")


# ----------------------------------------------------------------------------- value kinds

class Kind(collections.namedtuple("Kind", "text convert")):
    """A value type: `text` describes it (docs and errors), ``convert(value)`` returns the value in its
    type or raises ValueError. Strings are parsed too (``--postprocess KEY=VALUE`` gives strings)."""


def _number(value, integer):
    if isinstance(value, bool) or value is None or isinstance(value, (list, tuple, dict)):
        raise ValueError(value)
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if integer and value.lstrip("+-").isdigit() else float(value)
    value = float(value) if not isinstance(value, int) else value
    if integer and not float(value).is_integer():
        raise ValueError(value)
    if math.isnan(value):
        raise ValueError(value)
    return int(value) if integer else float(value)


def _range_text(low, high, low_open=False, high_open=False):
    if low is not None and high is not None:
        return " in {}{}, {}{}".format("(" if low_open else "[", low, high, ")" if high_open else "]")
    if low is not None:
        return " {} {}".format(">" if low_open else ">=", low)
    return ""


def _in_range(value, low, high, low_open=False, high_open=False):
    if (low is not None and (value < low or (low_open and value == low))) or (
            high is not None and (value > high or (high_open and value == high))):
        raise ValueError(value)
    return value


def integer(low=None, high=None, odd=False):
    """An int (an integral float or a numeric string is converted) in [low, high], odd if `odd`."""
    def convert(value):
        value = _in_range(_number(value, True), low, high)
        if odd and value % 2 == 0:
            raise ValueError(value)
        return value
    return Kind(("odd " if odd else "") + "int" + _range_text(low, high), convert)


def real(low=None, high=None):
    """A float (an int or a numeric string is converted) in [low, high]."""
    return Kind("float" + _range_text(low, high), lambda v: float(_in_range(_number(v, False), low, high)))


def _boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ValueError(value)


BOOL = Kind("bool", _boolean)


def int_list(item):
    """A list of `item` values (a string "3,3,5" or "[3, 3, 5]" from the command line is split)."""
    def convert(value):
        if isinstance(value, str):
            value = [v for v in value.strip().strip("[]").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(value)
        return [item.convert(v) for v in value]
    return Kind("list of " + item.text, convert)


def _iteration(value):
    """An iteration number (int >= 0) or a fraction of the run's iterations (float in [0, 1))."""
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if value.isdigit() else float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(value)
    if isinstance(value, int):
        return _in_range(value, 0, None)
    return _in_range(value, 0.0, 1.0, high_open=True)


ITERATION = Kind("int >= 0 (iteration) or float in [0, 1) (fraction of `iters`)", _iteration)


def kind_of_default(default):
    """The kind of a setting known only by its default: the default's type (lists and None: any value)."""
    if isinstance(default, bool):
        return BOOL
    if isinstance(default, int):
        return integer()
    if isinstance(default, float):
        return real()
    return Kind("any", lambda v: v)


# ----------------------------------------------------------------------------- the table

#: one configuration key: `kind` (a `Kind`), `default` (None: no value; a key set to null takes the default),
#: one line of `doc`, and `default_text` for the docs where the default value alone would not explain it
Key = collections.namedtuple("Key", "name kind default doc default_text")
Key.__new__.__defaults__ = (None,)

#: top-level keys this project adds; the blocks' keys: `BATCH_NORM`, `POSTPROCESS_COMMON` and `POSTPROCESS`
SEED = Key("seed", integer(0, 2 ** 32 - 1), 0, "seed of data order, augmentation and initialisation "
           "(`train.py --seed` overrides it)")  # numpy's seeds are below 2 ** 32
TOP_LEVEL = (
    SEED,
    Key("postprocess", Kind("mapping", dict), None, "the model's post-processing settings (below; `val.py`, "
        "`predict.py` and `export.py` flags override them)", "the model's"),
    Key("batch_norm", Kind("mapping", dict), None, "BatchNorm statistics schedule of training (below; see "
        "[BatchNorm statistics](training.md#batchnorm-statistics))", "statistics train throughout"),
)

BATCH_NORM = (
    Key("freeze_statistics_at", ITERATION, None, "after this iteration (or this fraction of the "
        "iterations, e.g. 0.7) the BatchNorm layers normalise with fixed statistics", "none (never)"),
    Key("blend_from", ITERATION, None, "at this iteration (or fraction) recompute and fix the "
        "statistics, then blend from batch to fixed statistics until `freeze_statistics_at`",
        "`freeze_statistics_at`"),
    Key("precise_batches", integer(0), 10, "training batches the statistics are recomputed over before they "
        "are fixed (0: keep the running averages)"),
)

#: ``postprocess:`` keys every model accepts: the dataset's coding (`runtime.metadata` reads thing_ids)
POSTPROCESS_COMMON = (
    Key("thing_ids", int_list(integer(0)), None, "thing classes; must equal the dataset's where "
        "the dataset knows them", "the dataset's"),
    Key("label_divisor", integer(1), None, "accepted for PaddleSeg's configs and ignored: the "
        "dataset's `label_divisor` is used", "the dataset's"),
    Key("void_label", integer(0), None, "accepted for PaddleSeg's configs and ignored: "
        "`ignore_index * label_divisor` of the dataset is used", "the dataset's"),
)

_UNIT = real(0, 1)

#: the ``postprocess:`` keys of each model: (name, kind, doc); defaults: the model's `postprocess_defaults`
POSTPROCESS = {
    "PanopticDeepLab": (
        ("threshold", real(), "minimum centre score (the heatmap is a regression, not a probability: any value; at or below 0 every positive local maximum)"),
        ("nms_kernel", integer(1, odd=True), "max-pool window of the centre NMS"),
        ("top_k", integer(1), "maximum number of centres"),
        ("stuff_area", integer(0), "stuff segments with fewer pixels become void"),
    ),
    "PanopticFCN": (
        ("thing_threshold", _UNIT, "thing candidates need a centre score above this"),
        ("stuff_threshold", _UNIT, "stuff classes need a mean region score above this"),
        ("top_per_level", integer(1), "thing candidates kept per FPN level, at most"),
        ("pool_sizes", int_list(integer(1, odd=True)), "average-pool window smoothing the centre scores, per "
         "level P3..P7"),
        ("similarity_threshold", real(-1, 1), "thing kernels with at least this cosine similarity are fused"),
        ("class_specific", BOOL, "fuse only kernels of the same class"),
        ("mask_threshold", _UNIT, "mask probability threshold"),
        ("score_threshold", _UNIT, "things whose score times mean mask probability is lower are dropped"),
        ("max_instances", integer(1), "maximum number of thing instances (below the dataset's `label_divisor`)"),
        ("overlap_threshold", _UNIT, "a thing that overlaps the already painted pixels by more than this share "
         "of its area is skipped"),
        ("stuff_area", integer(0), "stuff segments with fewer pixels become void"),
        ("instance_threshold", _UNIT, "minimum score of a thing painted into the panoptic map"),
        ("mask_block", integer(1), "masks upsampled to the original size at once (bounds the memory)"),
    ),
}


def postprocess_table(model_cls):
    """The ``postprocess:`` `Key`s of a model class (None: the common keys alone): its `POSTPROCESS`
    entry with the class's `postprocess_defaults`, else keys typed by those defaults."""
    defaults = dict(getattr(model_cls, "postprocess_defaults", {}) or {})
    described = {name: (kind, doc) for name, kind, doc in POSTPROCESS.get(getattr(model_cls, "__name__", None), ())}
    own = []
    for k, v in defaults.items():
        kind, doc = described.get(k) or (kind_of_default(v), "")
        own.append(Key(k, kind, v, doc))
    return tuple(own) + POSTPROCESS_COMMON


def registered_model(dic):
    """The registered class named by ``model: type:`` of a config dict, or None."""
    return manager.MODELS.components_dict.get((dic.get("model") or {}).get("type"))


def block_table(name, dic):
    """The `Key`s of project block `name` of config dict `dic` (postprocess: its model's)."""
    if name == "batch_norm":
        return BATCH_NORM
    return postprocess_table(registered_model(dic))


# ----------------------------------------------------------------------------- checks

def convert(key, value, dotted, where):
    """`value` of `key` (a `Key`) in its type; UserInputError naming `dotted` (e.g. ``batch_norm.blend_from``),
    `where` (``in config x.yml``, ``on the command line``) and the value."""
    try:
        return key.kind.convert(value)
    except (TypeError, ValueError, OverflowError):
        default = "" if key.default is None else " (default {!r})".format(key.default)
        raise UserInputError("{} {} must be {}{}, got {!r}".format(dotted, where, key.kind.text, default, value))


def unknown_keys_message(unknown, allowed, where, path):
    """"unknown key(s) 'x' (did you mean 'y'?) in <where> of config <path> (allowed: ...)"."""
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(str(k), allowed, n=1)
        hints.append("{!r}{}".format(k, " (did you mean {!r}?)".format(close[0]) if close else ""))
    return "unknown key(s) {} in {} of config {} (allowed: {})".format(
        ", ".join(hints), where, path, ", ".join(allowed))


def _block(name, dic, path, check_keys=True):
    """{key: value} of block `name` of `dic`, every key of its table, defaulted and converted."""
    table = block_table(name, dic)
    block = dic.get(name)
    if block is None:
        block = {}
    if not isinstance(block, dict):
        raise UserInputError("`{}:` in config {} must be a mapping of {}, got {!r}".format(
            name, path, ", ".join(k.name for k in table), block))
    names = [k.name for k in table]
    unknown = [k for k in block if k not in names]
    if unknown and check_keys:
        raise UserInputError(unknown_keys_message(unknown, names, "the `{}:` block".format(name), path))
    where = "in config {}".format(path)
    # a key set to null is not set: the default applies (as None means "not given" on the command line)
    values = {k.name: k.default if block.get(k.name) is None else
              convert(k, block[k.name], "{}.{}".format(name, k.name), where) for k in table}
    if name == "batch_norm":
        _check_batch_norm(values, dic.get("iters"), where)
    return values


def _check_batch_norm(bn, iters, where):
    """The combinations of the `batch_norm:` keys: blend_from needs freeze_statistics_at and comes before it
    (iteration numbers and fractions are compared in iterations of `iters`, when the config gives it)."""
    end, start = bn["freeze_statistics_at"], bn["blend_from"]
    if start is None:
        return
    if end is None:
        raise UserInputError("batch_norm.blend_from ({!r}) {} needs batch_norm.freeze_statistics_at".format(
            start, where))
    if isinstance(start, float) != isinstance(end, float):
        if isinstance(iters, bool) or not isinstance(iters, int):
            return  # without an integer `iters` a fraction and an iteration number cannot be compared
        start, end = (to_iterations(v, iters) for v in (start, end))
    if start > end:
        raise UserInputError("batch_norm.blend_from ({!r}) {} comes after batch_norm.freeze_statistics_at "
                             "({!r})".format(bn["blend_from"], where, bn["freeze_statistics_at"]))


def to_iterations(value, total_iters):
    """An `ITERATION` value in iterations: a fraction (float) of `total_iters`, rounded, or the number."""
    return int(round(value * total_iters)) if isinstance(value, float) else int(value)


def validate(dic, path):
    """Check the project's keys of config dict `dic` (loaded from `path`): unknown top-level keys, types and
    ranges of `seed` and of the `batch_norm:` and `postprocess:` blocks (the latter's keys: its model's;
    skipped for an unregistered model type, which building the model names). Returns `settings` of each.
    """
    known = PADDLESEG_KEYS + tuple(k.name for k in TOP_LEVEL)
    unknown = [k for k in dic if k not in known]
    if unknown:
        raise UserInputError(unknown_keys_message(unknown, [k for k in known if not k.startswith("_")],
                                                  "the top level", path))
    out = {"seed": settings(dic, "seed", path), "batch_norm": _block("batch_norm", dic, path)}
    if dic.get("postprocess") is None or registered_model(dic) is not None:
        out["postprocess"] = _block("postprocess", dic, path)
    return out


def settings(dic, name, path="(unnamed)"):
    """The value of project key `name` of config dict `dic` (validated by `validate` at load time), defaulted:
    `seed` -> int; `batch_norm` / `postprocess` -> {key: value} with every key of the block's table."""
    if name == "seed":
        return SEED.default if dic.get("seed") is None else convert(SEED, dic["seed"], "seed", "in config " + path)
    return _block(name, dic, path, check_keys=registered_model(dic) is not None or name != "postprocess")


# ----------------------------------------------------------------------------- docs

def _cell(key):
    if key.default_text is not None:
        return key.default_text
    return "`{}`".format(key.default)


def render_table(keys):
    """A markdown table (key, type, default, meaning) of `Key`s."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += ["| `{}` | {} | {} | {} |".format(k.name, k.kind.text, _cell(k), k.doc) for k in keys]
    return "\n".join(lines)


def render_reference():
    """The reference of the project's keys in docs/configuration.md (between the ``schema:begin`` /
    ``schema:end`` markers), from the tables above and the registered models' `postprocess_defaults`."""
    parts = ["**Top-level keys this project adds** (PaddleSeg ignores unknown keys; these are checked when a "
             "config is loaded):", render_table(TOP_LEVEL),
             "**BatchNorm statistics** (`batch_norm:`):", render_table(BATCH_NORM),
             "**Post-processing** (`postprocess:`), keys of every model:", render_table(POSTPROCESS_COMMON)]
    for name in POSTPROCESS:
        own = postprocess_table(manager.MODELS[name])[:-len(POSTPROCESS_COMMON)]
        parts += ["`postprocess:` keys of `{}` (defaults: its `postprocess_defaults`):".format(name),
                  render_table(own)]
    return "\n\n".join(parts) + "\n"
