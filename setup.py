"""Install the `paddleseg_ext` package (Panoptic-DeepLab components for PaddleSeg)."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
# Supported Paddle: 2.6 and later (tested: 2.6.2 and 3.3.1), CPU or GPU build, installed by the user
# or by requirements.txt; `pip install .[cpu]` or `.[gpu]` adds it.
PADDLE_REQUIRES = ">=2.6"
# `pip install .[onnx]`: export.py --format onnx and deploy/python/infer.py --backend onnxruntime (paddle2onnx
# 2.1 converts Paddle 3 programs; numpy stays < 2 through requirements.txt)
ONNX_REQUIRES = ["paddle2onnx==2.1.0", "onnxruntime>=1.16"]


def read_requirements():
    reqs = []
    with open(os.path.join(HERE, "requirements.txt")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            # paddlepaddle is not required here: GPU users bring paddlepaddle-gpu instead (see
            # PADDLE_REQUIRES for the supported range).
            if line and not line.startswith("paddlepaddle"):
                reqs.append(line)
    return reqs


setup(
    name="paddleseg_ext",
    version="0.2.0",
    description="Panoptic segmentation for PaddleSeg (Panoptic-DeepLab, PanopticFCN): models, data, targets, "
                "post-processing, evaluation, train/val/predict/export commands",
    packages=find_packages(include=["paddleseg_ext", "paddleseg_ext.*", "panoptic_metrics", "panoptic_metrics.*"]),
    python_requires=">=3.9,<3.13",
    install_requires=read_requirements(),
    extras_require={"cpu": ["paddlepaddle" + PADDLE_REQUIRES], "gpu": ["paddlepaddle-gpu" + PADDLE_REQUIRES],
                    "onnx": ONNX_REQUIRES},
    include_package_data=True,
    license="Apache-2.0",
    entry_points={"console_scripts": [
        # the same commands as contrib/PanopticDeepLab/*.py, tools/*.py and deploy/python/infer.py
        "panoptic-train=paddleseg_ext.cli.train:console_main",
        "panoptic-val=paddleseg_ext.cli.val:console_main",
        "panoptic-predict=paddleseg_ext.cli.predict:console_main",
        "panoptic-export=paddleseg_ext.cli.export:console_main",
        "panoptic-infer=paddleseg_ext.cli.infer:console_main",
        "panoptic-make-demo-dataset=paddleseg_ext.cli.make_demo_dataset:console_main",
        "panoptic-prepare-cityscapes=paddleseg_ext.cli.prepare_cityscapes:console_main",
        "panoptic-prepare-coco=paddleseg_ext.cli.prepare_coco:console_main",
        "panoptic-convert=paddleseg_ext.cli.convert_panoptic:console_main",
        "panoptic-check-dataset=paddleseg_ext.cli.check_dataset:console_main",
        "panoptic-eval=panoptic_metrics.cli:console_main",
    ]},
)
