"""Benchmarks: `python tools/benchmark.py {targets,postprocess,eval,network} [options]`.

Each sub-command times the project's implementation next to a naive baseline in the same run
and prints a table. The sub-commands live in tools/benchmarks/<name>.py with a `main(argv)`.
"""
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["targets", "postprocess", "eval", "network"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in NAMES:
        print(__doc__.strip())
        print("available: " + ", ".join(n for n in NAMES if os.path.isfile(os.path.join(HERE, "benchmarks", n + ".py"))))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    sys.path.insert(0, HERE)
    mod = importlib.import_module("benchmarks." + argv[0])
    return mod.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
