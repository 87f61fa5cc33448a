"""Fixtures of the command-line tests: the demo model with its crop and padding sizes, and the
arguments of a short train / val / predict run."""
import types

import pytest


@pytest.fixture(scope="module")
def demo_cli(demo):
    """The session's `demo` (config, untrained weights, dataset), plus `crop` (the train crop) and `pad`
    (the val padding), both (w, h)."""
    def size_of(transforms, name, key):
        (t,) = [t for t in transforms if t["type"] == name]
        return tuple(t[key])

    return types.SimpleNamespace(
        **vars(demo), crop=size_of(demo.dic["train_dataset"]["transforms"], "PanopticRandomPaddingCrop", "crop_size"),
        pad=size_of(demo.dic["val_dataset"]["transforms"], "PanopticPadding", "target_size"))


def script_args(script, demo_cli, cfg, tmp_path, model_path=None):
    """Arguments of a short run of `script` ('train', 'val' or 'predict') with config `cfg`."""
    if script == "train":
        return ["--config", cfg, "--save_dir", str(tmp_path / "out"), "--iters", "2", "--batch_size", "1",
                "--device", "cpu", "--log_iters", "1"]
    if script == "val":
        return ["--config", cfg, "--model_path", model_path or demo_cli.weights, "--device", "cpu",
                "--results_file", str(tmp_path / "metrics.json"), "--max_images", "1"]
    return ["--config", cfg, "--model_path", model_path or demo_cli.weights, "--image_path", demo_cli.images[0],
            "--save_dir", str(tmp_path / "pred"), "--device", "cpu"]
