"""Run an exported Panoptic-DeepLab model (contrib/PanopticDeepLab/export.py) with paddle.inference.

    python deploy/python/infer.py --model_dir output/inference_model --image_path demo.png \
        --save_dir output/infer_result [--device cpu|gpu]

Writes the same files as predict.py: <name>_panoptic.png, <name>_semantic.png, <name>_instance.png
(pictures) and <name>_panoptic_raw.png (class * label_divisor + instance, COCO RGB encoding).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # a clone, not installed
from paddleseg_ext.cli.infer import console_main  # noqa: E402

if __name__ == "__main__":
    console_main()
