"""Network benchmark: parameter count and forward time of Panoptic-DeepLab configs.

    python tools/benchmark.py network [--configs A.yml B.yml] [--size 1025x2049] [--batch 1]
                                      [--repeats 1] [--warmup 0] [--device cpu|gpu] [--dsconv-baseline]

Builds each config's model (backbone ``pretrained`` removed, random weights), runs it in eval mode
under ``no_grad`` on a random input of the given size and prints parameters and forward time
(median over ``--repeats`` after ``--warmup`` runs). There is no naive baseline
for a network forward; ``--dsconv-baseline`` adds, for each config, the same model with the
other ``use_dsconv`` setting as a reference row (regular vs depthwise-separable ASPP).
"""
import os
import statistics
import sys
import time

from . import ROOT, network_parser

DEFAULT_CONFIGS = [
    "configs/panoptic_deeplab/panoptic_deeplab_resnet50_os32_cityscapes_1025x513_bs8_90k_lr00005.yml",
    "configs/panoptic_deeplab/panoptic_deeplab_demo_cpu.yml",
]



def build_model(config_path, use_dsconv=None):
    """Model of ``config_path`` without pretrained weights; ``use_dsconv`` overrides the config."""
    import paddle.base.unique_name as unique_name
    from paddleseg.cvlibs import Config, SegBuilder

    import paddleseg_ext  # noqa: F401

    cfg = Config(config_path)
    cfg.dic["model"]["backbone"]["pretrained"] = None
    cfg.dic["model"]["pretrained"] = None
    if use_dsconv is not None:
        cfg.dic["model"]["use_dsconv"] = use_dsconv
    with unique_name.guard():  # PaddleSeg's MobileNetV2 has fixed parameter names
        return SegBuilder(cfg).model


def time_forward(model, size, batch, repeats, warmup):
    """Median seconds of ``model(x)`` in eval mode, no_grad, x float32 [batch, 3, H, W]."""
    import paddle

    model.eval()
    x = paddle.randn([batch, 3, *size])
    times = []
    with paddle.no_grad():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            out = model(x)
            _ = [float(o.flatten()[0]) for o in out]  # wait for the device
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times), [list(o.shape) for o in out]


def main(argv=None):
    parser = network_parser(__doc__, DEFAULT_CONFIGS, repeats=1, warmup=0)
    parser.add_argument("--batch", type=int, default=1, help="images per forward")
    parser.add_argument("--device", default="cpu", help="cpu or gpu")
    parser.add_argument("--dsconv-baseline", action="store_true",
                        help="also time each model with the opposite use_dsconv setting")
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import paddle

    if args.device.startswith("gpu") and not paddle.device.is_compiled_with_cuda():
        print("error: --device gpu but this paddle has no CUDA support", file=sys.stderr)
        return 2
    paddle.set_device(args.device)

    rows = []
    for path in args.configs:
        full = path if os.path.isabs(path) else os.path.join(ROOT, path)
        if not os.path.isfile(full):
            print(f"error: config not found: {path}", file=sys.stderr)
            return 2
        variants = [None]
        if args.dsconv_baseline:
            from paddleseg.cvlibs import Config
            variants.append(not bool(Config(full).model_cfg.get("use_dsconv", False)))
        for use_dsconv in variants:
            model = build_model(full, use_dsconv=use_dsconv)
            dsconv = any("depthwise_conv" in k and ".aspp." in k for k in model.state_dict())
            params = sum(int(p.numel()) for p in model.parameters())
            seconds, shapes = time_forward(model, args.size, args.batch, args.repeats, args.warmup)
            rows.append((os.path.basename(path), "DS" if dsconv else "conv", params, seconds, shapes))
            del model

    h, w = args.size
    print(f"\nPanoptic-DeepLab forward, input {args.batch}x3x{h}x{w}, device {paddle.get_device()}, "
          f"eval + no_grad, median of {args.repeats} (warmup {args.warmup})")
    print(f"{'config':<75} {'ASPP':>4} {'params (M)':>10} {'forward (s)':>11}")
    for name, aspp, params, seconds, _ in rows:
        print(f"{name:<75} {aspp:>4} {params / 1e6:>10.2f} {seconds:>11.3f}")
    print("outputs (all rows): " + ", ".join(str(s) for s in rows[0][4]))
    return 0

