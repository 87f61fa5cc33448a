"""Command-line conventions shared by every command: one-line errors, and argument groups defined
once (config and weights, device, post-processing overrides, test-time augmentation, verbosity).

The commands turn their arguments into plain values and call the loops (`paddleseg_ext.core`), which
never see an argparse namespace."""
import argparse
import sys

from ..core.train import TrainingDiverged
from ..utils import UserInputError, log


def run_cli(main, argv=None):
    """Call `main(argv)`; a user mistake prints `error: <message>` (no traceback) and exits 2
    (3 for a diverged training run, 130 for Ctrl-C). The log's verbosity (`--verbose`) is the command's
    only: it is restored afterwards."""
    verbose = log.is_verbose()
    try:
        rc = main(argv)
    except UserInputError as e:
        log.error(e)
        return 2
    except TrainingDiverged as e:
        log.error(e)
        return 3
    except OSError as e:
        # unwritable output folder, missing file, full disk: name the path instead of a traceback
        where = e.filename if getattr(e, "filename", None) else ""
        log.error("{}{}".format(e.strerror or e, ": {}".format(where) if where else ""))
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
        return 130
    finally:
        log.set_verbose(verbose)
    return 0 if rc is None else rc


def console_entry(main):
    """A `console_scripts` entry point around `main(argv)`."""
    def entry():
        sys.exit(run_cli(main))
    entry.main = main  # for tools that load a command shell and call its main(argv)
    return entry


class Parser(argparse.ArgumentParser):
    """Every command's parser (and its sub-commands'): it has ``--verbose``, and parsing switches the log's
    debug output on with it."""

    def __init__(self, description=None, epilog=None, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(description=description, epilog=epilog, **kwargs)
        # no default: a sub-command's parser would otherwise reset a --verbose given before the sub-command
        add_verbose_arg(self, default=argparse.SUPPRESS)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        parsed.verbose = bool(getattr(parsed, "verbose", False))
        log.set_verbose(parsed.verbose)
        return parsed


def parser(description, doc=None):
    return Parser(description, doc)


def add_model_args(p, model_path_required=True):
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--model_path", required=model_path_required,
                   help="model.pdparams, or a checkpoint folder holding it (iter_N, best_model)")


def add_device_arg(p):
    p.add_argument("--device", default=None, choices=["cpu", "gpu"],
                   help="where to run (default: gpu when this Paddle has a usable GPU, else cpu)")


def add_verbose_arg(p, default=False):
    """``--verbose`` (every `Parser` has it)."""
    p.add_argument("--verbose", action="store_true", default=default,
                   help="debug output: every rank's lines, PaddleSeg's config dump of every built component "
                        "and its warnings, Paddle's internal warnings")


#: Panoptic-DeepLab's post-processing flags (kept as PaddleSeg users type them); `--postprocess` sets any key
_DEEPLAB_FLAGS = (("threshold", float, "centre score threshold"),
                  ("nms_kernel", int, "centre NMS max-pool window, odd"),
                  ("top_k", int, "keep at most K centres"),
                  ("stuff_area", int, "stuff segments with fewer pixels become void"))


def add_postprocess_args(p):
    g = p.add_argument_group("post-processing (default: the config's `postprocess:` block, else the model's "
                             "defaults, e.g. Panoptic-DeepLab's threshold 0.1, nms_kernel 7, top_k 200, "
                             "stuff_area 2048)")
    for name, kind, text in _DEEPLAB_FLAGS:
        g.add_argument("--" + name, type=kind, default=None, help=text + " (Panoptic-DeepLab)")
    g.add_argument("--postprocess", nargs="+", default=[], metavar="KEY=VALUE",
                   help="any post-processing setting of the config's model, e.g. --postprocess inst_thres=0.3")


def postprocess_overrides(args):
    """dict of the post-processing settings given on the command line (None for the others)."""
    out = {name: getattr(args, name) for name, _, _ in _DEEPLAB_FLAGS}
    for item in args.postprocess:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError("--postprocess: expected KEY=VALUE, got {!r}".format(item))
        out[key.strip()] = value.strip()
    return out


def add_tta_args(p, switch):
    g = p.add_argument_group("test-time augmentation")
    g.add_argument(switch, action="store_true", help="multi-scale / flip test-time augmentation")
    g.add_argument("--scales", type=float, nargs="+", default=None,
                   help="with {}: input scales, e.g. --scales 0.75 1.0 1.25 (default 1.0)".format(switch))
    g.add_argument("--flip_horizontal", action="store_true",
                   help="with {}: also run on the mirrored image".format(switch))


def tta_settings(args, switch):
    """(scales, flip) of the TTA flags; --scales / --flip_horizontal without the switch are refused
    rather than ignored."""
    on = getattr(args, switch.lstrip("-"))
    if not on and (args.scales is not None or args.flip_horizontal):
        given = " ".join(x for x in ("--scales" if args.scales is not None else "",
                                     "--flip_horizontal" if args.flip_horizontal else "") if x)
        raise UserInputError("{} only apply with {}: add {} to use test-time augmentation".format(given, switch, switch))
    scales = tuple(args.scales) if (on and args.scales) else (1.0,)
    if any(s <= 0 for s in scales):
        raise UserInputError("--scales must be positive, got {}".format(list(scales)))
    return scales, bool(on and args.flip_horizontal)
