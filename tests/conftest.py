"""Shared pytest fixtures: a generated demo dataset in the Cityscapes layout."""
import os

import pytest

import paddleseg_ext  # noqa: F401  (registers every component)
from paddleseg_ext.datasets.demo_dataset import make_demo_dataset

# The demo_root dataset: tools/make_demo_dataset.py defaults (8 train + 4 val frames, 128x256).
DEMO_ARGS = dict(seed=0, num_train=8, num_val=4, height=128, width=256)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes more than a few seconds")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """Path (str) of a generated demo dataset: 8 train + 4 val frames of 128x256 in the Cityscapes
    layout, already converted (panoptic trainId json/PNGs, label-id json/PNGs, labelTrainIds).
    Shared by the whole session: copy it before modifying anything."""
    root = os.path.join(str(tmp_path_factory.mktemp("demo")), "demo_cityscapes")
    make_demo_dataset(root, verbose=False, **DEMO_ARGS)
    return root
