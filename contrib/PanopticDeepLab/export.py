"""Export Panoptic-DeepLab (network + panoptic post-processing) as a static inference model.

    python export.py --config configs/panoptic_deeplab/<cfg>.yml \
        --model_path output/best_model/model.pdparams --save_dir output/inference_model

Writes model.json (Paddle 3) or model.pdmodel (Paddle 2.x), model.pdiparams and deploy.yaml;
run it with `python ../../deploy/python/infer.py --model_dir output/inference_model --image_path ...`.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # a clone, not installed
from paddleseg_ext.cli.export import console_main  # noqa: E402

if __name__ == "__main__":
    console_main()
