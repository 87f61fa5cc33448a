"""Install the `paddleseg_ext` package (Panoptic-DeepLab components for PaddleSeg)."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_requirements():
    reqs = []
    with open(os.path.join(HERE, "requirements.txt")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            # paddlepaddle is not required here: GPU users bring paddlepaddle-gpu instead.
            if line and not line.startswith("paddlepaddle"):
                reqs.append(line)
    return reqs


setup(
    name="paddleseg_ext",
    version="0.1.0",
    description="Panoptic-DeepLab for PaddleSeg: model, data, targets, post-processing, evaluation",
    packages=find_packages(include=["paddleseg_ext", "paddleseg_ext.*"]),
    python_requires=">=3.9,<3.13",
    install_requires=read_requirements(),
    include_package_data=True,
    license="Apache-2.0",
)
