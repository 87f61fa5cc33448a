"""Run an exported Panoptic-DeepLab model (contrib/PanopticDeepLab/export.py) with paddle.inference.

    python deploy/python/infer.py --model_dir output/inference_model --image_path demo.png \
        --save_dir output/infer_result [--device cpu|gpu]

Writes the same files as predict.py: <name>_panoptic.png, <name>_semantic.png, <name>_instance.png
(pictures) and <name>_panoptic_raw.png (class * label_divisor + instance, COCO RGB encoding).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import numpy as np  # noqa: E402


class PanopticPredictor:
    """An exported model loaded with `paddle.inference`, plus its preprocessing from deploy.yaml.

    Args:
        model_dir (str): folder with deploy.yaml, the model file and model.pdiparams.
        device (str): 'cpu' or 'gpu'.
        use_ir_optim (bool): let paddle.inference fuse ops (faster; floating-point results can differ
            from predict.py in the last bits, which may flip near-tied pixels).
        cpu_threads (int): CPU math threads.
    """

    def __init__(self, model_dir, device="cpu", use_ir_optim=True, cpu_threads=None):
        import yaml
        from paddle import inference

        import paddleseg_ext  # noqa: F401  (registers the transforms named in deploy.yaml)
        from paddleseg_ext.datasets.panoptic_dataset import build_transforms
        from paddleseg_ext.utils import UserInputError

        deploy_file = os.path.join(model_dir, "deploy.yaml")
        if not os.path.isfile(deploy_file):
            raise UserInputError("deploy.yaml not found in --model_dir {} (make it with export.py)".format(model_dir))
        with open(deploy_file) as f:
            self.info = (yaml.safe_load(f) or {}).get("Deploy")
        if not isinstance(self.info, dict):
            raise UserInputError("{} has no `Deploy:` section".format(deploy_file))
        missing = [k for k in ("model", "params", "transforms", "inputs", "outputs", "palette", "label_divisor")
                   if k not in self.info]
        if missing:
            raise UserInputError("{} lacks key(s) {}".format(deploy_file, ", ".join(missing)))
        model_file = os.path.join(model_dir, self.info["model"])
        params_file = os.path.join(model_dir, self.info["params"])
        for p in (model_file, params_file):
            if not os.path.isfile(p):
                raise UserInputError("exported model file not found: {}".format(p))
        self.transforms = build_transforms(self.info["transforms"])
        self.palette = np.asarray(self.info["palette"], dtype=np.uint8)
        self.label_divisor = int(self.info["label_divisor"])

        config = inference.Config(model_file, params_file)
        if device == "gpu":
            import paddle

            if not (paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0):
                raise UserInputError("--device gpu requested but this paddle has no usable GPU (use --device cpu)")
            config.enable_use_gpu(500, 0)
        else:
            config.disable_gpu()
            # Paddle 3.x's oneDNN kernels reject the bilinear-resize op of PIR programs
            # ("ConvertPirAttribute2RuntimeAttribute not support ArrayAttribute<DoubleAttribute>").
            config.disable_mkldnn()
            if cpu_threads:
                config.set_cpu_math_library_num_threads(int(cpu_threads))
        config.switch_ir_optim(bool(use_ir_optim))
        config.disable_glog_info()
        self.predictor = inference.create_predictor(config)
        self.input_names = self.predictor.get_input_names()
        self.output_names = self.predictor.get_output_names()

    def run(self, image):
        """uint8 [H, W, 3] RGB -> (semantic int64 [H, W], panoptic int64 [H, W])."""
        from paddleseg_ext.core.predict import preprocess

        h, w = image.shape[:2]
        x, _ = preprocess(image, self.transforms)
        th, tw = x.shape[2:]
        crop = (h, w) if (th >= h and tw >= w) else (th, tw)
        feeds = {self.input_names[0]: x, self.input_names[1]: np.asarray(crop, dtype=np.int64)}
        for name, arr in feeds.items():
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(arr.shape))
            handle.copy_from_cpu(arr)
        self.predictor.run()
        outs = dict(zip(self.info["outputs"],
                        (self.predictor.get_output_handle(n).copy_to_cpu() for n in self.output_names)))
        panoptic, semantic = outs["panoptic"][0].astype(np.int64), outs["semantic"][0].astype(np.int64)
        if crop != (h, w):
            # the val transforms resized the image: bring the maps back with nearest neighbour
            import cv2

            panoptic = cv2.resize(panoptic.astype(np.float64), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int64)
            semantic = cv2.resize(semantic.astype(np.float64), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int64)
        return semantic, panoptic


def build_arg_parser():
    p = argparse.ArgumentParser(
        description="Panoptic-DeepLab inference with paddle.inference on an exported model; writes "
                    "<name>_panoptic.png, <name>_semantic.png, <name>_instance.png and <name>_panoptic_raw.png.")
    p.add_argument("--model_dir", required=True, help="folder written by export.py (deploy.yaml + model files)")
    p.add_argument("--image_path", required=True,
                   help="an image, a folder (searched recursively) or a .txt file listing image paths")
    p.add_argument("--save_dir", default="./output/infer_result", help="output folder")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="inference device")
    p.add_argument("--cpu_threads", type=int, default=None, help="CPU math threads")
    p.add_argument("--disable_ir_optim", action="store_true",
                   help="no graph optimisation: bit-exact with predict.py, slower")
    return p


def main(argv=None):
    """Command-line entry point; user errors raise UserInputError."""
    args = build_arg_parser().parse_args(argv)
    from paddleseg.utils.progbar import Progbar

    from paddleseg_ext.core.predict import collect_images, output_paths, prepare_save_dir, save_prediction
    from paddleseg_ext.utils import UserInputError, read_image

    images, root = collect_images(args.image_path)
    prepare_save_dir(args.save_dir)
    predictor = PanopticPredictor(args.model_dir, args.device, use_ir_optim=not args.disable_ir_optim,
                                  cpu_threads=args.cpu_threads)
    bar = Progbar(target=len(images), verbose=1)
    done = 0
    for i, path in enumerate(images):
        try:
            image = read_image(path)
        except UserInputError as e:
            print("warning: skipping {}".format(e), file=sys.stderr, flush=True)
            image = None
        if image is not None:
            semantic, panoptic = predictor.run(image)
            save_prediction(output_paths(args.save_dir, path, root), image, semantic, panoptic,
                            predictor.palette, predictor.label_divisor)
            done += 1
        bar.update(i + 1)
    print("saved the results of {} image(s) under {}".format(done, args.save_dir), flush=True)
    return 0


if __name__ == "__main__":
    from paddleseg_ext.core.cli import run_cli

    sys.exit(run_cli(main))
