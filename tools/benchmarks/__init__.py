"""The benchmarks of tools/benchmark.py, which puts tools/ (and the repository root) on sys.path, so that this
folder imports as the package `benchmarks`."""
import argparse
import json
import os
import subprocess
import sys

#: the repository root
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DISPATCHER = os.path.join(ROOT, "tools", "benchmark.py")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps the description's layout and shows every default."""


def frame_parser(description, instances_help="thing instances per frame", repeat_help="timed calls (median)"):
    """A parser with the options of a benchmark on one generated frame: --height, --width, --instances, --repeat."""
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    parser.add_argument("--height", type=int, default=1025, help="frame height")
    parser.add_argument("--width", type=int, default=2049, help="frame width")
    parser.add_argument("--instances", type=int, default=50, help=instances_help)
    parser.add_argument("--repeat", type=int, default=5, help=repeat_help)
    return parser


def parse_size(text):
    """'HxW' -> (H, W) ints (an argparse type)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected HxW, e.g. 1025x2049, got {!r}".format(text))
    return h, w


def network_parser(description, configs, repeats, warmup):
    """A parser with the options of a benchmark that times networks: --configs, --size (1025x2049), --repeats,
    --warmup, --threads."""
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    parser.add_argument("--configs", nargs="+", default=configs, help="config files")
    parser.add_argument("--size", type=parse_size, default=(1025, 2049), help="network input HxW")
    parser.add_argument("--repeats", type=int, default=repeats, help="timed calls (median)")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed calls first")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    return parser


def run_child(name, impl, argv):
    """Run benchmark `name` with ``--child <impl> <argv...>`` in a fresh process (through tools/benchmark.py:
    own memory peak, own Paddle state); returns the json of its last stdout line."""
    proc = subprocess.run([sys.executable, DISPATCHER, name, "--child", impl] + [str(a) for a in argv],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("{} failed:\n{}".format(impl, proc.stderr[-3000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])
