"""Evaluate Panoptic-DeepLab: PQ/SQ/RQ (All/Things/Stuff, per class), mIoU, AP.

    python val.py --config configs/panoptic_deeplab/<cfg>.yml --model_path output/iter_90000/model.pdparams
"""
import os
import sys

# Run from a clone without `pip install -e .`: the repository root holds paddleseg_ext.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from paddleseg_ext.cli.common import run_cli  # noqa: E402
from paddleseg_ext.cli.val import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
