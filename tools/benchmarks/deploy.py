"""Deploy benchmark: the eager predict.py path vs the exported model in Paddle Inference (oneDNN off /
on) and ONNX Runtime, per image: network time, post-processing time, total.

    python tools/benchmark.py deploy [--configs A.yml B.yml] [--size 1025x2049] [--repeats 3] [--warmup 1]
                                     [--threads N] [--work_dir DIR]

Each config's model gets random weights (backbone ``pretrained`` removed) and val transforms that pad
to the input size; it is exported twice with export.py's code: the whole `InferenceModel` (network +
post-processing, ``--format all``) and the network alone, both as Paddle program and ONNX. A synthetic
uint8 image of the given size (minus one row and column: the padding configs' 1025x2049 for
Cityscapes frames) runs through:
  - eager: `pipeline.Predictor`, what predict.py runs (its per-stage timings);
  - Paddle Inference, oneDNN off and on (`pipeline.StaticPredictor`); ONNX Runtime (`OnnxPredictor`);
    network = the network-only graph, post-processing = whole graph - network (medians).
Times are medians over --repeats calls after --warmup; preprocessing (the same numpy code in all) is
left out. The panoptic maps of the deploy backends are compared with the eager one (share of equal
pixels).
"""
import os
import statistics
import tempfile
import time

import numpy as np

from . import ROOT, network_parser

DEFAULT_CONFIGS = [
    "configs/panoptic_deeplab/panoptic_deeplab_demo_cpu.yml",
    "configs/panoptic_deeplab/panoptic_deeplab_resnet50_os32_cityscapes_1025x513_bs8_90k_lr00005.yml",
]
BACKENDS = (("Paddle Inference, oneDNN off", "paddle", {"use_onednn": False}),
            ("Paddle Inference, oneDNN on", "paddle", {"use_onednn": True}),
            ("ONNX Runtime", "onnxruntime", {}))


def _median(fn, repeats, warmup):
    times = []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _prepare(config, size, work):
    """Config with random weights and padding val transforms, exported whole (format all) and network-only.
    Returns (config path, weights path, whole-model folder, network folder)."""
    import paddle
    import yaml

    from paddleseg_ext.core.export import convert_to_onnx, export
    from paddleseg_ext.pipeline import InferenceModel
    from paddleseg_ext.runtime import build_model, load_config

    from paddleseg.cvlibs import Config

    dic = Config(config).dic
    dic["model"]["backbone"]["pretrained"] = None
    dic["model"]["pretrained"] = None
    dic["val_dataset"]["transforms"] = [{"type": "PanopticPadding", "target_size": [size[1], size[0]]},
                                        {"type": "Normalize"}]
    cfg_path = os.path.join(work, "config.yml")
    with open(cfg_path, "w") as f:
        yaml.safe_dump(dic, f)
    weights = os.path.join(work, "model.pdparams")
    paddle.seed(0)
    paddle.save(build_model(load_config(cfg_path), cfg_path)[1].state_dict(), weights)  # pretrained is None
    whole = os.path.join(work, "whole")
    export(cfg_path, weights, whole, format="all")
    _, model = build_model(load_config(cfg_path), cfg_path, weights)
    net = InferenceModel(model, None)
    net.eval()

    class Network(paddle.nn.Layer):
        def __init__(self, inference):
            super().__init__()
            self.inference = inference

        def forward(self, x):
            return self.inference.network(x)

    spec = [paddle.static.InputSpec([1, 3, None, None], "float32", "x")]
    network = os.path.join(work, "network")
    layer = Network(net)
    n_out = len(layer(paddle.zeros([1, 3, 65, 65])))
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), os.path.join(network, "model"),
                    input_spec=spec)
    model_file = [f for f in os.listdir(network) if f.startswith("model.") and not f.endswith(".pdiparams")][0]
    convert_to_onnx(os.path.join(network, model_file), os.path.join(network, "model.pdiparams"),
                    os.path.join(network, "model.onnx"), output_names=["out{}".format(i) for i in range(n_out)])
    return cfg_path, weights, whole, network, model_file


def bench_config(config, size, repeats, warmup, threads, work):
    from paddleseg_ext.pipeline import build_predictor, load_deployed, preprocess
    from paddleseg_ext.pipeline.static_predictor import onnx_session, paddle_inference_predictor, run_paddle_inference
    from paddleseg_ext.runtime import build_model, load_config

    cfg_path, weights, whole, network, model_file = _prepare(config, size, work)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size[0] - 1, size[1] - 1, 3), dtype=np.uint8)
    rows = []

    cfg = load_config(cfg_path)
    builder, model = build_model(cfg, cfg_path, weights)
    model.eval()
    eager = build_predictor(model, cfg, cfg_path, builder)
    ref = eager(image)["panoptic"]
    eager.reset_timings()
    for _ in range(repeats):
        eager(image)
    t_net, t_post = eager.timings["network"] / repeats, eager.timings["postprocess"] / repeats
    rows.append(["eager (predict.py)", t_net, t_post, t_net + t_post, 1.0])
    del eager, model
    for name, backend, options in BACKENDS:
        run = load_deployed(whole, backend, "cpu", threads, **options)
        x, valid_hw, ori_hw = (np.asarray(v, dtype=np.int64) if i else v
                               for i, v in enumerate(preprocess(image, run.transforms)))
        t_all = _median(lambda: run.run(x, valid_hw, ori_hw), repeats, warmup)
        agree = float((run(image)["panoptic"] == ref).mean())
        if backend == "paddle":
            pred = paddle_inference_predictor(os.path.join(network, model_file), os.path.join(network, "model.pdiparams"),
                                              cpu_threads=threads, **options)
            t_net = _median(lambda: run_paddle_inference(pred, (x,)), repeats, warmup)
        else:
            session = onnx_session(os.path.join(network, "model.onnx"), cpu_threads=threads)
            t_net = _median(lambda: session.run(None, {"x": x}), repeats, warmup)
        rows.append([name, t_net, max(t_all - t_net, 0.0), t_all, agree])
        del run
    return rows


def main(argv=None):
    parser = network_parser(__doc__, DEFAULT_CONFIGS, repeats=3, warmup=1)
    parser.add_argument("--work_dir", default=None, help="folder for the exported models (default: temporary)")
    args = parser.parse_args(argv)
    import paddle

    import paddleseg_ext  # noqa: F401

    paddle.set_device("cpu")
    print("per image, {}x{} input, CPU ({} threads), median of {} after {} warm-up".format(
        args.size[0], args.size[1], args.threads or "default", args.repeats, args.warmup), flush=True)
    for config in args.configs:
        path = config if os.path.isabs(config) else os.path.join(ROOT, config)
        with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
            rows = bench_config(path, args.size, args.repeats, args.warmup, args.threads, work)
        eager_total = rows[0][3]
        print("\n" + os.path.basename(config))
        print("{:<30} {:>11} {:>11} {:>11} {:>9} {:>13}".format("path", "network ms", "post ms", "total ms",
                                                                "speed-up", "same pixels"))
        for name, t_net, t_post, total, agree in rows:
            print("{:<30} {:>11.0f} {:>11.0f} {:>11.0f} {:>8.2f}x {:>12.4%}".format(
                name, t_net * 1000, t_post * 1000, total * 1000, eager_total / total, agree), flush=True)
    return 0
