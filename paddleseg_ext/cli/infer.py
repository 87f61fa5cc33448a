"""`deploy/python/infer.py`: run an exported model with Paddle Inference or ONNX Runtime on images;
writes what predict.py writes, or times each stage (`--benchmark N`)."""
import time

import numpy as np

from ..core.predict import collect_images, output_paths, save_prediction
from ..core.progress import Progress
from ..pipeline.static_predictor import BACKENDS, PRECISIONS, check_trt_available, load_deployed
from ..runtime import retain_freed_memory
from ..utils import UserInputError, check_writable_dir, log, read_image
from .common import console_entry, parser

USAGE = """examples:
  python deploy/python/infer.py --model_dir output/inference_model --image_path demo.png \\
      --save_dir output/infer_result [--backend paddle|onnxruntime] [--device cpu|gpu]
  python deploy/python/infer.py --model_dir output/inference_model --image_path demo.png --benchmark 20"""

#: the stages `--benchmark` times, in order
BENCH_STAGES = ("read+preprocess", "model", "write")


def build_parser():
    p = parser("Panoptic inference on a model written by export.py, with Paddle Inference or ONNX Runtime; writes "
               "<name>_panoptic.png, <name>_semantic.png, <name>_instance.png and <name>_panoptic_raw.png.", USAGE)
    p.add_argument("--model_dir", required=True, help="folder written by export.py (deploy.yaml + model files)")
    p.add_argument("--image_path", required=True,
                   help="an image, a folder (searched recursively) or a .txt file listing image paths "
                        "(relative to the list's folder)")
    p.add_argument("--save_dir", default="./output/infer_result", help="output folder (default ./output/infer_result)")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="paddle (Paddle Inference) or onnxruntime (default: paddle when the folder has a Paddle "
                        "program, else onnxruntime)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="inference device (default cpu)")
    p.add_argument("--cpu_threads", type=int, default=None, help="CPU math threads (default: the backend's)")
    p.add_argument("--disable_onednn", action="store_true", help="Paddle Inference on CPU without oneDNN")
    p.add_argument("--disable_ir_optim", action="store_true",
                   help="Paddle Inference without graph optimisation (and oneDNN): bit-exact with predict.py, slower")
    p.add_argument("--use_trt", action="store_true", help="TensorRT subgraphs (Paddle Inference, GPU builds)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="TensorRT precision (default fp32)")
    p.add_argument("--benchmark", type=int, default=0, metavar="N",
                   help="after one warm-up image, time N images (the inputs in turn) per stage and print median "
                        "and p90 latency and images/s (outputs are written as usual)")
    return p


def _stage_table(samples, title):
    """Lines of the benchmark table: per stage median and p90 (ms), then images/s from the median total."""
    rows = {s: np.asarray(v) * 1000.0 for s, v in samples.items()}
    rows["total"] = sum(rows[s] for s in BENCH_STAGES)
    lines = [title, "{:<16} {:>10} {:>10}".format("stage", "median ms", "p90 ms")]
    for stage, ms in rows.items():
        lines.append("{:<16} {:>10.1f} {:>10.1f}".format(stage, np.median(ms), np.percentile(ms, 90)))
    lines.append("images/s: {:.2f}".format(1000.0 / max(float(np.median(rows["total"])), 1e-9)))
    return lines


def main(argv=None):
    a = build_parser().parse_args(argv)
    if a.use_trt:
        try:
            check_trt_available(a.device)
        except UserInputError as e:
            log.error(e)
            return 1
    if a.benchmark < 0:
        raise UserInputError("--benchmark must be >= 0, got {}".format(a.benchmark))
    images, root = collect_images(a.image_path)
    check_writable_dir(a.save_dir, "--save_dir")
    retain_freed_memory()
    predictor = load_deployed(a.model_dir, a.backend, a.device, a.cpu_threads, use_onednn=not a.disable_onednn,
                              use_ir_optim=not a.disable_ir_optim, use_trt=a.use_trt, precision=a.precision)

    def one(path):
        """(read+preprocess, model, write) seconds of one image, or None when it cannot be read."""
        t0 = time.perf_counter()
        try:
            image = read_image(path)
        except UserInputError as e:
            log.warning("skipping {}".format(e))
            return None
        predictor.reset_timings()
        result = predictor(image)
        t1 = time.perf_counter()
        save_prediction(output_paths(a.save_dir, path, root), image, result["semantic"], result["panoptic"],
                        predictor.palette, predictor.label_divisor)
        t2 = time.perf_counter()
        model = predictor.timings["model"]
        return (t1 - t0 - model, model, t2 - t1)

    if a.benchmark:
        one(images[0])  # warm-up: memory pools, oneDNN primitives, ONNX Runtime's first-run allocations
        samples = {s: [] for s in BENCH_STAGES}
        for i in range(a.benchmark):
            times = one(images[i % len(images)])
            if times is not None:
                for stage, t in zip(BENCH_STAGES, times):
                    samples[stage].append(t)
        if not samples["model"]:
            raise UserInputError("--benchmark: none of the images under {} could be read".format(a.image_path))
        opts = "oneDNN {}".format("off" if a.disable_onednn or a.disable_ir_optim else "on") \
            if predictor.backend == "paddle" and a.device == "cpu" else ("TensorRT " + a.precision if a.use_trt else "")
        title = "backend {} ({}{}, threads {}): {} image(s) timed after 1 warm-up".format(
            predictor.backend, a.device, ", " + opts if opts else "", a.cpu_threads or "default",
            len(samples["model"]))
        log.info("\n".join(_stage_table(samples, title)))
        return 0
    bar = Progress(len(images))
    done = 0
    for path in images:
        done += one(path) is not None
        bar.step()
    log.info("saved the results of {} image(s) under {}".format(done, a.save_dir))
    return 0


#: `console_scripts` entry point (setup.py)
console_main = console_entry(main)
