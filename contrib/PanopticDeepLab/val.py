"""Evaluate Panoptic-DeepLab: PQ/SQ/RQ (All/Things/Stuff, per class), mIoU, AP.

    python val.py --config configs/panoptic_deeplab/<cfg>.yml --model_path output/iter_90000/model.pdparams
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # a clone, not installed
from paddleseg_ext.cli.val import console_main  # noqa: E402

if __name__ == "__main__":
    console_main()
