"""Running an exported model (core/export.py) with ``paddle.inference``: the pipeline's `preprocess`,
then the saved `InferenceModel` graph. What deploy/python/infer.py uses."""
import os

import numpy as np
from paddle import inference
import yaml

from ..datasets.panoptic_dataset import build_transforms
from ..models.base import INFERENCE_OUTPUTS
from ..runtime.device import has_gpu
from ..utils import UserInputError
from .predictor import preprocess

#: deploy.yaml keys the predictor needs
DEPLOY_KEYS = ("model", "params", "transforms", "inputs", "outputs", "palette", "label_divisor")


def read_deploy_info(model_dir):
    """The ``Deploy:`` section of `model_dir`/deploy.yaml, checked."""
    deploy_file = os.path.join(model_dir, "deploy.yaml")
    if not os.path.isfile(deploy_file):
        raise UserInputError("deploy.yaml not found in --model_dir {} (make it with export.py)".format(model_dir))
    with open(deploy_file) as f:
        info = (yaml.safe_load(f) or {}).get("Deploy")
    if not isinstance(info, dict):
        raise UserInputError("{} has no `Deploy:` section".format(deploy_file))
    missing = [k for k in DEPLOY_KEYS if k not in info]
    if missing:
        raise UserInputError("{} lacks key(s) {}".format(deploy_file, ", ".join(missing)))
    if list(info["outputs"]) != list(INFERENCE_OUTPUTS) or len(info["inputs"]) != 3:
        raise UserInputError("{} was written by an older export.py (inputs {}, outputs {}); export the model "
                             "again".format(deploy_file, info["inputs"], info["outputs"]))
    return info


class StaticPredictor:
    """An exported model loaded with `paddle.inference`, with its preprocessing from deploy.yaml.

    Args:
        model_dir (str): folder with deploy.yaml, the model file and model.pdiparams.
        device (str): 'cpu' or 'gpu'.
        use_ir_optim (bool): let paddle.inference fuse ops (faster; floating-point results can differ
            from predict.py in the last bits, which may flip near-tied pixels).
        cpu_threads (int): CPU math threads.
    Calling it with an RGB uint8 [h, w, 3] image returns the dict `Predictor` returns.
    """

    def __init__(self, model_dir, device="cpu", use_ir_optim=True, cpu_threads=None):
        self.info = read_deploy_info(model_dir)
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
            if not has_gpu():
                raise UserInputError("--device gpu: this PaddlePaddle has no usable GPU; use --device cpu")
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

    def __call__(self, image):
        x, valid_hw, ori_hw = preprocess(image, self.transforms)
        feeds = (x, np.asarray(valid_hw, dtype=np.int64), np.asarray(ori_hw, dtype=np.int64))
        for name, arr in zip(self.input_names, feeds):
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(arr.shape))
            handle.copy_from_cpu(arr)
        self.predictor.run()
        outs = [self.predictor.get_output_handle(n).copy_to_cpu() for n in self.output_names]
        return dict(zip(self.info["outputs"], outs))
