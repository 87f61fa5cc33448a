"""Predict with Panoptic-DeepLab and save panoptic / semantic / instance pictures and raw panoptic PNGs.

    python -m paddle.distributed.launch predict.py --config configs/panoptic_deeplab/<cfg>.yml \
        --model_path output/iter_90000/model.pdparams --image_path data/cityscapes/leftImg8bit/val/ \
        --save_dir ./output/result

Per image `<name>`: `<name>_panoptic.png`, `<name>_semantic.png`, `<name>_instance.png` (pictures) and
`<name>_panoptic_raw.png` (class * label_divisor + instance, COCO RGB encoding), in the input's sub-folders.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # a clone, not installed
from paddleseg_ext.cli.predict import console_main  # noqa: E402

if __name__ == "__main__":
    console_main()
