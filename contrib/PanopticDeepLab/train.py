"""Train Panoptic-DeepLab.

    python -m paddle.distributed.launch train.py --config configs/panoptic_deeplab/<cfg>.yml \
        --do_eval --use_vdl --save_interval 5000 --save_dir output
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # a clone, not installed
from paddleseg_ext.cli.train import console_main  # noqa: E402

if __name__ == "__main__":
    console_main()
