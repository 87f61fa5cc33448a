"""The benchmarks of tools/benchmark.py (loaded by it as the package `benchmarks`)."""
import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps the description's layout and shows every default."""
