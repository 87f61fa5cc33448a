"""`export.py`: a static inference model (network + post-processing) and deploy.yaml."""
from ..core.export import FORMATS, export
from ..utils import log
from .common import add_model_args, add_postprocess_args, console_entry, parser, postprocess_overrides

USAGE = """example:
  python export.py --config configs/panoptic_deeplab/<cfg>.yml \\
      --model_path output/best_model/model.pdparams --save_dir output/inference_model
  python export.py ... --format onnx --save_dir output/onnx_model     (needs: pip install -e .[onnx])
then: python ../../deploy/python/infer.py --model_dir output/inference_model --image_path <image>"""


def build_parser():
    p = parser("Export a panoptic model (network + panoptic post-processing) for Paddle Inference "
               "or ONNX Runtime (deploy/python/infer.py).", USAGE)
    add_model_args(p)
    p.add_argument("--save_dir", default="./output/inference_model",
                   help="output folder (default ./output/inference_model)")
    p.add_argument("--input_shape", nargs=4, type=int, default=None, metavar=("N", "C", "H", "W"),
                   help="input shape (default 1 3 -1 -1: any size; N must be 1)")
    p.add_argument("--format", default="paddle", choices=FORMATS,
                   help="paddle: model.json/.pdmodel + model.pdiparams (Paddle Inference); onnx: model.onnx "
                        "(ONNX Runtime, needs paddle2onnx: pip install -e .[onnx]); all: both (default paddle)")
    add_postprocess_args(p)
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    out = export(a.config, a.model_path, a.save_dir, a.input_shape, postprocess=postprocess_overrides(a),
                 verbose=a.verbose, format=a.format)
    files = [out["model"], out["params"], out["onnx"]]
    log.info("exported {} and {}".format(" + ".join(f for f in files if f), out["deploy"]))
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
