"""`predict.py`: panoptic / semantic / instance pictures and raw panoptic PNGs for images."""
from ..core.predict import run_predict
from .common import (add_device_arg, add_model_args, add_postprocess_args, add_tta_args, add_verbose_arg, console_entry,
                     parser, postprocess_overrides, tta_settings)

USAGE = """example:
  python -m paddle.distributed.launch predict.py --config configs/panoptic_deeplab/<cfg>.yml \\
      --model_path output/iter_90000/model.pdparams --image_path data/cityscapes/leftImg8bit/val/ \\
      --save_dir ./output/result

Per image <name>: <name>_panoptic.png, <name>_semantic.png, <name>_instance.png (pictures) and
<name>_panoptic_raw.png (class * label_divisor + instance, COCO RGB encoding), in the input's sub-folders."""


def build_parser():
    p = parser("Predict with a panoptic model and save pictures and raw panoptic maps.", USAGE)
    add_model_args(p)
    p.add_argument("--image_path", required=True,
                   help="an image, a folder (searched recursively) or a .txt file listing image paths "
                        "(relative paths in it are relative to the list's folder, as in PaddleSeg)")
    p.add_argument("--save_dir", default="./output/result", help="output folder (default ./output/result)")
    add_tta_args(p, "--aug_pred")
    add_postprocess_args(p)
    add_device_arg(p)
    add_verbose_arg(p)
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    scales, flip = tta_settings(a, "--aug_pred")
    run_predict(a.config, a.model_path, a.image_path, a.save_dir, scales=scales, flip=flip,
                postprocess=postprocess_overrides(a), device=a.device, verbose=a.verbose)
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
