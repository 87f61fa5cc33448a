"""Evaluate Panoptic-DeepLab: PQ/SQ/RQ (All/Things/Stuff, per class), mIoU, AP.

    python val.py --config configs/panoptic_deeplab/<cfg>.yml --model_path output/iter_90000/model.pdparams
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from paddleseg_ext.core.cli import run_cli  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Evaluate Panoptic-DeepLab on the config's val_dataset.")
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--model_path", required=True, help="model.pdparams (or a checkpoint folder)")
    p.add_argument("--aug_eval", action="store_true", help="test-time augmentation (--scales, --flip_horizontal)")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], help="TTA scales, e.g. 0.75 1.0 1.25")
    p.add_argument("--flip_horizontal", action="store_true", help="TTA: also run on the flipped image")
    p.add_argument("--threshold", type=float, default=None, help="centre score threshold (config: 0.1)")
    p.add_argument("--nms_kernel", type=int, default=None, help="centre NMS max-pool kernel (config: 7)")
    p.add_argument("--top_k", type=int, default=None, help="keep at most K centres (config: 200)")
    p.add_argument("--stuff_area", type=int, default=None, help="stuff segments smaller than this become void")
    p.add_argument("--oracle", default="",
                   help="replace predictions by ground truth: comma list of semantic,center,offset")
    p.add_argument("--benchmark_network_speed", action="store_true",
                   help="report network and post-processing time per image separately")
    p.add_argument("--save_predictions", default=None,
                   help="write official-format panoptic predictions (PNGs + json) to this folder")
    p.add_argument("--results_file", default=None,
                   help="metrics json (default: <model dir>/eval_results.json)")
    p.add_argument("--max_images", type=int, default=None, help="evaluate the first N images only")
    p.add_argument("--device", default=None, choices=["cpu", "gpu"], help="default: gpu when available")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from paddleseg_ext.core.val import run_val

    run_val(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
