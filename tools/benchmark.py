"""Benchmarks: `python tools/benchmark.py {targets,postprocess,eval,network,panoptic_fcn,convert,deploy,batch_norm} [options]`.

Each sub-command times the project's implementation next to a naive baseline in the same run
and prints a table. The sub-commands live in tools/benchmarks/<name>.py with a `main(argv)`.
"""
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# this clone's paddleseg_ext (not an installed one), as contrib/PanopticDeepLab/*.py do; and tools/, the
# folder of the package `benchmarks` (already on sys.path when this file runs as a script)
sys.path.insert(0, os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
NAMES = ["targets", "postprocess", "eval", "network", "panoptic_fcn", "convert", "deploy", "batch_norm"]


def load(name):
    """The module of benchmark `name` (tools/benchmarks/<name>.py)."""
    return importlib.import_module("benchmarks." + name)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    available = [n for n in NAMES if os.path.isfile(os.path.join(HERE, "benchmarks", n + ".py"))]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in available:
        print(__doc__.strip())
        print("available: " + ", ".join(available))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return load(argv[0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
