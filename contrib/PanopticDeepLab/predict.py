"""Predict with Panoptic-DeepLab and save panoptic / semantic / instance pictures and raw panoptic PNGs.

    python -m paddle.distributed.launch predict.py --config configs/panoptic_deeplab/<cfg>.yml \
        --model_path output/iter_90000/model.pdparams --image_path data/cityscapes/leftImg8bit/val/ \
        --save_dir ./output/result

Per image `<name>`: `<name>_panoptic.png`, `<name>_semantic.png`, `<name>_instance.png` (pictures) and
`<name>_panoptic_raw.png` (class * label_divisor + instance, COCO RGB encoding), in the input's sub-folders.
"""
import os
import sys

# Run from a clone without `pip install -e .`: the repository root holds paddleseg_ext.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from paddleseg_ext.cli.common import run_cli  # noqa: E402
from paddleseg_ext.cli.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
