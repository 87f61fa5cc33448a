"""Train Panoptic-DeepLab.

    python -m paddle.distributed.launch train.py --config configs/panoptic_deeplab/<cfg>.yml \
        --do_eval --use_vdl --save_interval 5000 --save_dir output
"""
import os
import sys

# Run from a clone without `pip install -e .`: the repository root holds paddleseg_ext.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from paddleseg_ext.cli.common import run_cli  # noqa: E402
from paddleseg_ext.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
