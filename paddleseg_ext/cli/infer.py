"""`deploy/python/infer.py`: run an exported model with paddle.inference on images; writes what
predict.py writes."""
import sys

from ..core.predict import collect_images, output_paths, save_prediction
from ..core.progress import Progress
from ..pipeline import StaticPredictor
from ..utils import UserInputError, check_writable_dir, read_image
from .common import console_entry, parser

USAGE = """example:
  python deploy/python/infer.py --model_dir output/inference_model --image_path demo.png \\
      --save_dir output/infer_result [--device cpu|gpu]"""


def build_parser():
    p = parser("Panoptic inference with paddle.inference on a model written by export.py; writes "
               "<name>_panoptic.png, <name>_semantic.png, <name>_instance.png and <name>_panoptic_raw.png.", USAGE)
    p.add_argument("--model_dir", required=True, help="folder written by export.py (deploy.yaml + model files)")
    p.add_argument("--image_path", required=True,
                   help="an image, a folder (searched recursively) or a .txt file listing image paths "
                        "(relative to the list's folder)")
    p.add_argument("--save_dir", default="./output/infer_result", help="output folder (default ./output/infer_result)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="inference device (default cpu)")
    p.add_argument("--cpu_threads", type=int, default=None, help="CPU math threads (default: Paddle's)")
    p.add_argument("--disable_ir_optim", action="store_true",
                   help="no graph optimisation: bit-exact with predict.py, slower")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    images, root = collect_images(a.image_path)
    check_writable_dir(a.save_dir, "--save_dir")
    predictor = StaticPredictor(a.model_dir, a.device, use_ir_optim=not a.disable_ir_optim, cpu_threads=a.cpu_threads)
    bar = Progress(len(images))
    done = 0
    for path in images:
        try:
            image = read_image(path)
        except UserInputError as e:
            print("warning: skipping {}".format(e), file=sys.stderr, flush=True)
            image = None
        if image is not None:
            result = predictor(image)
            save_prediction(output_paths(a.save_dir, path, root), image, result["semantic"], result["panoptic"],
                            predictor.palette, predictor.label_divisor)
            done += 1
        bar.step()
    print("saved the results of {} image(s) under {}".format(done, a.save_dir), flush=True)
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
