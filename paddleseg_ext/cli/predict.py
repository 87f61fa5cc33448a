"""`predict.py`: panoptic / semantic / instance pictures and raw panoptic PNGs for images."""
from ..core.predict import run_predict
from .common import (add_device_arg, add_model_args, add_postprocess_args, add_tta_args, console_entry,
                     parser, postprocess_overrides, tta_settings)

USAGE = """example:
  python -m paddle.distributed.launch predict.py --config configs/panoptic_deeplab/<cfg>.yml \\
      --model_path output/iter_90000/model.pdparams --image_path data/cityscapes/leftImg8bit/val/ \\
      --save_dir ./output/result

  python predict.py --config ... --model_path ... --image_path photos/ --save_panoptic_json --long_side 1024
  python predict.py --config ... --model_path ... --video street.mp4 --video_frames 100

Per image <name>: <name>_panoptic.png, <name>_semantic.png, <name>_instance.png (pictures) and
<name>_panoptic_raw.png (class * label_divisor + instance, COCO RGB encoding), in the input's sub-folders.
Images of any size: one larger than the config's val padding is padded to the next size the network
accepts; --long_side resizes first (results at the original size).
--save_panoptic_json: also <save_dir>/panoptic_predictions.json + panoptic_predictions/ (COCO panoptic,
the dataset's own category ids), for tools/eval_panoptic.py or a test server.
--video IN.mp4: <save_dir>/<name>_panoptic.mp4, the panoptic picture of every frame."""


def build_parser():
    p = parser("Predict with a panoptic model and save pictures and raw panoptic maps.", USAGE)
    add_model_args(p)
    p.add_argument("--image_path", default=None,
                   help="an image, a folder (searched recursively) or a .txt file listing image paths "
                        "(relative paths in it are relative to the list's folder, as in PaddleSeg)")
    p.add_argument("--save_dir", default="./output/result", help="output folder (default ./output/result)")
    p.add_argument("--save_panoptic_json", action="store_true",
                   help="also write <save_dir>/panoptic_predictions.json and <save_dir>/panoptic_predictions/ "
                        "(COCO panoptic format, the dataset's own category ids)")
    p.add_argument("--image_info", default=None, metavar="JSON",
                   help="with --save_panoptic_json: a json whose `images` list ({id, file_name}) gives each image "
                        "its image_id, e.g. the dataset's panoptic json (default: from the file name: Cityscapes "
                        "<city>_<seq>_<frame>, COCO's number, else the stem)")
    p.add_argument("--long_side", type=int, default=None, metavar="N",
                   help="resize every image (and video frame) so that its longer side has N pixels before the "
                        "network; the results are brought back to the original size (default: no resize; an "
                        "image larger than the config's padding is padded to the next size the network accepts)")
    p.add_argument("--video", default=None, metavar="IN.mp4",
                   help="a video file: writes <save_dir>/<name>_panoptic.mp4 (panoptic picture of every frame, "
                        "same frame rate and size)")
    p.add_argument("--video_frames", type=int, default=None, metavar="N", help="stop the video after N frames")
    add_tta_args(p, "--aug_pred")
    add_postprocess_args(p)
    add_device_arg(p)
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    scales, flip = tta_settings(a, "--aug_pred")
    run_predict(a.config, a.model_path, a.image_path, a.save_dir, scales=scales, flip=flip,
                postprocess=postprocess_overrides(a), device=a.device, verbose=a.verbose,
                save_panoptic_json=a.save_panoptic_json, long_side=a.long_side, video=a.video,
                video_frames=a.video_frames, image_info=a.image_info)
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
