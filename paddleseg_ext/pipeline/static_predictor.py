"""Running an exported model (core/export.py) outside the training code: the pipeline's `preprocess`,
then the saved `InferenceModel` graph, with Paddle Inference (`StaticPredictor`) or ONNX Runtime
(`OnnxPredictor`). `load_deployed(model_dir)` picks the backend from the folder's files; what
deploy/python/infer.py and applications use.

Paddle Inference on CPU runs with oneDNN by default. Paddle 3.x's oneDNN executor cannot run the
bilinear-resize op of PIR programs: its runtime-attribute conversion has no case for the ``scale``
attribute (``ArrayAttribute<DoubleAttribute>``; "ConvertPirAttribute2RuntimeAttribute not support"),
and ``set_onednn_op`` lists are not honoured by PIR. The work-around: drop ``onednn_placement_pass``
(which moves *every* op with a oneDNN kernel, resize included, to oneDNN) and keep the oneDNN fusion
passes, which rewrite the convolutions with their batch norms and activations into fused oneDNN
convolutions; the other ops run on Paddle's own CPU kernels.
"""
import os
import time

import numpy as np
import yaml

from ..compat import cpu_view
from ..datasets.panoptic_dataset import build_transforms
from ..models.base import INFERENCE_OUTPUTS
from ..runtime.device import has_gpu
from ..utils import UserInputError
from .predictor import preprocess

#: deploy.yaml keys the runners need (plus `model` for Paddle Inference or `onnx_model` for ONNX Runtime)
DEPLOY_KEYS = ("transforms", "inputs", "outputs", "palette", "label_divisor")
BACKENDS = ("paddle", "onnxruntime")
PRECISIONS = ("fp32", "fp16")
#: the stages `DeployedModel.timings` holds (seconds, summed over calls)
STAGES = ("preprocess", "model")


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
    if not info.get("model") and not info.get("onnx_model"):
        missing.append("model")
    if missing:
        raise UserInputError("{} lacks key(s) {}".format(deploy_file, ", ".join(missing)))
    if list(info["outputs"]) != list(INFERENCE_OUTPUTS) or len(info["inputs"]) != 3:
        raise UserInputError("{} was written by an older export.py (inputs {}, outputs {}); export the model "
                             "again".format(deploy_file, info["inputs"], info["outputs"]))
    return info


def default_backend(model_dir, info=None):
    """'paddle' when the folder has a Paddle program (export.py --format paddle or all), else 'onnxruntime'."""
    info = info or read_deploy_info(model_dir)
    return "paddle" if info.get("model") else "onnxruntime"


class DeployedModel:
    """An exported model and its preprocessing (deploy.yaml); subclasses run the graph.

    Calling it with an RGB uint8 [h, w, 3] image returns the dict `Predictor` returns: ``panoptic``
    int64 [h, w] (``class * label_divisor + instance``), ``semantic`` int64 [h, w], ``instance_ids``
    int64 [M], ``instance_scores`` float32 [M, S] (S = len(`score_modes`)).
    Attributes: `info` (deploy.yaml), `palette` uint8 [C, 3], `label_divisor`, `class_table`,
    `backend`, `timings` (seconds per stage of `STAGES`, summed over calls; `reset_timings`).
    """

    backend = None

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.info = read_deploy_info(model_dir)
        self.transforms = build_transforms(self.info["transforms"])
        self.palette = np.asarray(self.info["palette"], dtype=np.uint8)
        self.label_divisor = int(self.info["label_divisor"])
        self.score_modes = list(self.info.get("score_modes", []))
        self.reset_timings()

    def _file(self, key):
        name = self.info.get(key)
        if not name:
            raise UserInputError("{}/deploy.yaml names no `{}`: the folder was exported without it (export.py "
                                 "--format {})".format(self.model_dir, key, "onnx" if key == "onnx_model" else "paddle"))
        path = os.path.join(self.model_dir, name)
        if not os.path.isfile(path):
            raise UserInputError("exported model file not found: {}".format(path))
        return path

    @property
    def class_table(self):
        """One dict per class id: ``id``, ``name``, ``color`` [r, g, b], ``isthing``."""
        names = list(self.info.get("class_names") or [])
        things = set(int(t) for t in self.info.get("thing_ids", []))
        return [{"id": i, "name": names[i] if i < len(names) else str(i), "color": [int(c) for c in color],
                 "isthing": i in things} for i, color in enumerate(self.palette)]

    def reset_timings(self):
        self.timings = {s: 0.0 for s in STAGES}

    def run(self, x, valid_hw, ori_hw):
        """The graph on preprocessed inputs (numpy) -> list of numpy outputs in `INFERENCE_OUTPUTS` order."""
        raise NotImplementedError

    def __call__(self, image):
        t0 = time.perf_counter()
        x, valid_hw, ori_hw = preprocess(image, self.transforms)
        t1 = time.perf_counter()
        outs = self.run(x, np.asarray(valid_hw, dtype=np.int64), np.asarray(ori_hw, dtype=np.int64))
        t2 = time.perf_counter()
        self.timings["preprocess"] += t1 - t0
        self.timings["model"] += t2 - t1
        return dict(zip(INFERENCE_OUTPUTS, outs))


class StaticPredictor(DeployedModel):
    """The exported Paddle program run by `paddle.inference`.

    Args:
        model_dir (str): folder with deploy.yaml, the model file and model.pdiparams.
        device (str): 'cpu' or 'gpu'.
        use_ir_optim (bool): graph optimisation passes (faster; fused kernels can round differently
            from predict.py in the last bits, which may flip near-tied pixels).
        cpu_threads (int): CPU math threads (None: Paddle's default).
        use_onednn (bool): oneDNN kernels on CPU (default on; see the module docstring).
        use_trt (bool), precision ('fp32' | 'fp16'): TensorRT subgraphs on GPU.
    """

    backend = "paddle"

    def __init__(self, model_dir, device="cpu", use_ir_optim=True, cpu_threads=None, use_onednn=True,
                 use_trt=False, precision="fp32"):
        super().__init__(model_dir)
        self.predictor = paddle_inference_predictor(self._file("model"), self._file("params"), device, use_ir_optim,
                                                    cpu_threads, use_onednn, use_trt, precision)
        self.input_names = self.predictor.get_input_names()
        self.output_names = self.predictor.get_output_names()
        self.on_cpu = device != "gpu"

    def run(self, x, valid_hw, ori_hw):
        return run_paddle_inference(self.predictor, (x, valid_hw, ori_hw), self.on_cpu)


def paddle_inference_predictor(model_file, params_file, device="cpu", use_ir_optim=True, cpu_threads=None,
                               use_onednn=True, use_trt=False, precision="fp32"):
    """A `paddle.inference` predictor of a saved program, set up as `StaticPredictor` documents."""
    from paddle import inference

    config = inference.Config(model_file, params_file)
    if device == "gpu":
        if not has_gpu():
            raise UserInputError("--device gpu: this PaddlePaddle has no usable GPU; use --device cpu")
        config.enable_use_gpu(500, 0)
        if use_trt:
            _enable_tensorrt(config, inference, precision)
    else:
        config.disable_gpu()
        if use_onednn and use_ir_optim:
            config.enable_mkldnn()
            if model_file.endswith(".json"):  # PIR program: the resize cannot run on oneDNN
                config.delete_pass("onednn_placement_pass")
        else:
            config.disable_mkldnn()
        if cpu_threads:
            config.set_cpu_math_library_num_threads(int(cpu_threads))
    config.switch_ir_optim(bool(use_ir_optim))
    config.disable_glog_info()
    return inference.create_predictor(config)


def run_paddle_inference(predictor, inputs, on_cpu=True):
    """Feed the numpy `inputs` (in the predictor's input order), run, return the outputs (numpy list).

    On CPU (`on_cpu`) an input is shared with the predictor, not copied, where numpy and DLPack allow
    (`compat.cpu_view`): copying the inputs of a 1025x2049 post-processing (40 MB) takes ~4 ms on 2 cores."""
    views = []  # alive until the run is over
    for name, arr in zip(predictor.get_input_names(), inputs):
        handle = predictor.get_input_handle(name)
        view = cpu_view(arr) if on_cpu else None
        if view is None:
            handle.reshape(list(arr.shape))
            handle.copy_from_cpu(arr)
        else:
            handle.share_external_data(view)
            views.append(view)
    predictor.run()
    return [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]


def _enable_tensorrt(config, inference, precision):
    """TensorRT subgraphs (GPU builds with TensorRT): fp32 or fp16, shapes collected at run time."""
    if precision not in PRECISIONS:
        raise UserInputError("--precision must be one of {}, got {!r}".format(", ".join(PRECISIONS), precision))
    mode = inference.PrecisionType.Half if precision == "fp16" else inference.PrecisionType.Float32
    # the post-processing has data-dependent shapes: only the network's subgraphs go to TensorRT, and
    # with dynamic shapes tuned on the fly (no calibration, no serialised engine)
    config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=1, min_subgraph_size=3,
                                  precision_mode=mode, use_static=False, use_calib_mode=False)
    if hasattr(config, "enable_tuned_tensorrt_dynamic_shape"):
        config.enable_tuned_tensorrt_dynamic_shape("", True)


def check_trt_available(device):
    """One-line UserInputError unless `--use_trt` can work here (a GPU build of Paddle with a GPU)."""
    import paddle

    if device != "gpu" or not has_gpu():
        raise UserInputError("--use_trt needs --device gpu and a GPU build of PaddlePaddle with TensorRT (this one: "
                             "paddlepaddle {}, {})".format(paddle.__version__, "GPU build" if
                                                           paddle.is_compiled_with_cuda() else "CPU build"))


class OnnxPredictor(DeployedModel):
    """The exported ONNX model (export.py --format onnx) run by ONNX Runtime.

    Args:
        model_dir (str): folder with deploy.yaml and model.onnx.
        device (str): 'cpu' or 'gpu' (CUDAExecutionProvider, onnxruntime-gpu).
        cpu_threads (int): intra-op threads (None: ONNX Runtime's default).
    """

    backend = "onnxruntime"

    def __init__(self, model_dir, device="cpu", cpu_threads=None):
        super().__init__(model_dir)
        self.session = onnx_session(self._file("onnx_model"), device, cpu_threads)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, x, valid_hw, ori_hw):
        return self.session.run(None, dict(zip(self.input_names, (x, valid_hw, ori_hw))))


def onnx_session(onnx_file, device="cpu", cpu_threads=None):
    """An ONNX Runtime session of `onnx_file` on the CPU, or with the CUDA provider first for 'gpu'."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserInputError("--backend onnxruntime needs onnxruntime: pip install -e .[onnx]  "
                             "(or: pip install onnxruntime)")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # no warnings about initializers paddle2onnx left unused
    if cpu_threads:
        options.intra_op_num_threads = int(cpu_threads)
    providers = ["CPUExecutionProvider"]
    if device == "gpu":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserInputError("--device gpu: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(onnx_file, options, providers=providers)


def load_deployed(model_dir, backend=None, device="cpu", cpu_threads=None, **options):
    """An exported folder, ready to map images to panoptic maps: `DeployedModel` of `backend`
    ('paddle', 'onnxruntime'; None: `default_backend`). `options` go to `StaticPredictor`
    (use_onednn, use_ir_optim, use_trt, precision)."""
    info = read_deploy_info(model_dir)
    backend = backend or default_backend(model_dir, info)
    if backend not in BACKENDS:
        raise UserInputError("--backend must be one of {}, got {!r}".format(", ".join(BACKENDS), backend))
    if backend == "onnxruntime":
        return OnnxPredictor(model_dir, device, cpu_threads)
    return StaticPredictor(model_dir, device, cpu_threads=cpu_threads, **options)
