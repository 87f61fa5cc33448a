"""Check a panoptic dataset (files, sizes, segment ids, categories, areas) and print per-class
statistics. See `python tools/check_dataset.py --help` and docs/dataset_tools.md."""
from paddleseg_ext.cli.check_dataset import console_main

if __name__ == "__main__":
    console_main()
