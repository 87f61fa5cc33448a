"""Benchmarks: `python tools/benchmark.py {targets,postprocess,eval,network,panoptic_fcn,convert,deploy,batch_norm} [options]`.

Each sub-command times the project's implementation next to a naive baseline in the same run
and prints a table. The sub-commands live in tools/benchmarks/<name>.py with a `main(argv)`.
"""
import importlib
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["targets", "postprocess", "eval", "network", "panoptic_fcn", "convert", "deploy", "batch_norm"]


def load_benchmarks_package():
    """tools/benchmarks as the package `benchmarks` (its modules import each other relatively)."""
    if "benchmarks" not in sys.modules:
        folder = os.path.join(HERE, "benchmarks")
        spec = importlib.util.spec_from_file_location("benchmarks", os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])
        package = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks"] = package
        spec.loader.exec_module(package)
    return sys.modules["benchmarks"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    available = [n for n in NAMES if os.path.isfile(os.path.join(HERE, "benchmarks", n + ".py"))]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in available:
        print(__doc__.strip())
        print("available: " + ", ".join(available))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    load_benchmarks_package()
    return importlib.import_module("benchmarks." + argv[0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
