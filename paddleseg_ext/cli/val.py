"""`val.py`: PQ / SQ / RQ (All, Things, Stuff, every class), mIoU and instance AP of a trained model."""
from ..core.val import run_val
from .common import (add_device_arg, add_model_args, add_postprocess_args, add_tta_args, console_entry,
                     parser, postprocess_overrides, tta_settings)

USAGE = """example:
  python val.py --config configs/panoptic_deeplab/<cfg>.yml --model_path output/iter_90000/model.pdparams"""


def build_parser():
    p = parser("Evaluate a panoptic model on the config's val_dataset.", USAGE)
    add_model_args(p)
    add_tta_args(p, "--aug_eval")
    add_postprocess_args(p)
    p.add_argument("--oracle", default="",
                   help="replace network outputs by ground truth, a comma list of the model's parts "
                        "(Panoptic-DeepLab: semantic,center,offset)")
    p.add_argument("--compare_bn_stats", action="store_true",
                   help="also evaluate with every image normalised by its own BatchNorm statistics and print both: "
                        "a large gap means the running statistics do not fit the trained network")
    p.add_argument("--benchmark_network_speed", action="store_true",
                   help="report preprocessing, network and post-processing time per image")
    p.add_argument("--save_predictions", default=None,
                   help="write official-format panoptic predictions (PNGs + json) to this folder")
    p.add_argument("--results_file", default=None,
                   help="metrics json (default: eval_results.json next to --model_path)")
    p.add_argument("--max_images", type=int, default=None, help="evaluate the first N images only (default: all)")
    add_device_arg(p)
    return p


def parse_oracle(text):
    """'semantic,center' -> ('semantic', 'center'); empty -> ()."""
    return tuple(s.strip() for s in (text or "").split(",") if s.strip())


def main(argv=None):
    a = build_parser().parse_args(argv)
    scales, flip = tta_settings(a, "--aug_eval")
    run_val(a.config, a.model_path, scales=scales, flip=flip, oracle=parse_oracle(a.oracle),
            postprocess=postprocess_overrides(a), save_predictions=a.save_predictions, results_file=a.results_file,
            max_images=a.max_images, benchmark_speed=a.benchmark_network_speed, device=a.device, verbose=a.verbose,
            compare_bn_stats=a.compare_bn_stats)
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
