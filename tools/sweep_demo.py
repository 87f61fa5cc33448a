"""Train and evaluate the demo recipe (or --overfit check) over seeds, dataset seeds and process counts;
prints each run's PQ / mIoU and min / median / max. See `python tools/sweep_demo.py --help`."""
import sys

from paddleseg_ext.cli.common import run_cli
from paddleseg_ext.cli.sweep_demo import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
