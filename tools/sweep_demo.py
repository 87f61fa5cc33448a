"""Train and evaluate the demo recipe (or --overfit check) over seeds, dataset seeds and process counts;
prints each run's PQ / mIoU and min / median / max. See `python tools/sweep_demo.py --help`."""
from paddleseg_ext.cli.sweep_demo import console_main

if __name__ == "__main__":
    console_main()
