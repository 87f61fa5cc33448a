"""The benchmarks of tools/benchmark.py (loaded by it as the package `benchmarks`)."""
import argparse


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
