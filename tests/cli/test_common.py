"""Command-line conventions (`cli.common`): a user mistake is one line on stderr and exit code 2, refused
before any work: test-time augmentation flags without their switch, a GPU this Paddle cannot use,
mixed precision on the CPU; exit codes 3 (diverged) and 130 (Ctrl-C)."""
import pytest

from paddleseg_ext.cli import infer as infer_cli
from paddleseg_ext.cli import predict as predict_cli
from paddleseg_ext.cli import train as train_cli
from paddleseg_ext.cli import val as val_cli
from paddleseg_ext.cli.common import postprocess_overrides, run_cli
from paddleseg_ext.core.train import TrainingDiverged
from paddleseg_ext.runtime.device import has_gpu
from paddleseg_ext.utils import UserInputError
from tests.conftest import error_line, run_main


def _model_args(demo):
    return ["--config", demo.cfg, "--model_path", demo.weights]


@pytest.mark.parametrize("command, switch", [("val", "--aug_eval"), ("predict", "--aug_pred")])
@pytest.mark.parametrize("flags", [["--scales", "0.75", "1.0"], ["--flip_horizontal"]])
def test_tta_flags_without_their_switch_are_refused(demo, tmp_path, capfd, command, switch, flags):
    main, extra = {"val": (val_cli.main, ["--results_file", tmp_path / "m.json"]),
                   "predict": (predict_cli.main, ["--image_path", demo.images[0], "--save_dir", tmp_path / "p"]),
                   }[command]
    rc, out, err = run_main(capfd, main, _model_args(demo) + extra + flags)
    line = error_line(rc, err)
    assert flags[0] in line and switch in line
    assert err.strip() == line  # the one line is all of stderr
    assert not list(tmp_path.iterdir())  # refused before any work


@pytest.mark.skipif(has_gpu(), reason="this Paddle has a usable GPU")
@pytest.mark.parametrize("command", ["train", "val", "predict"])
def test_device_gpu_without_a_gpu_is_one_line(demo, tmp_path, capfd, command):
    args = {"train": (train_cli.main, ["--config", demo.cfg, "--save_dir", tmp_path / "out"]),
            "val": (val_cli.main, _model_args(demo) + ["--results_file", tmp_path / "m.json"]),
            "predict": (predict_cli.main, _model_args(demo) + ["--image_path", demo.images[0],
                                                               "--save_dir", tmp_path / "p"])}
    main, argv = args[command]
    rc, out, err = run_main(capfd, main, argv + ["--device", "gpu"])
    line = error_line(rc, err)
    assert "--device gpu" in line and "--device cpu" in line
    assert err.strip() == line


@pytest.mark.skipif(has_gpu(), reason="this Paddle has a usable GPU")
def test_infer_device_gpu_without_a_gpu_is_one_line(demo, demo_export, tmp_path, capfd):
    """infer.py chooses the device when it loads the exported model."""
    rc, out, err = run_main(capfd, infer_cli.main, ["--model_dir", demo_export, "--image_path", demo.images[0],
                                                    "--save_dir", tmp_path / "i", "--device", "gpu"])
    assert "--device gpu" in error_line(rc, err)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_training_on_the_cpu_is_refused(demo, tmp_path, capfd, precision):
    rc, out, err = run_main(capfd, train_cli.main, ["--config", demo.cfg, "--save_dir", tmp_path / "out", "--device",
                                                    "cpu", "--precision", precision])
    line = error_line(rc, err)
    assert "--precision {}".format(precision) in line and "--precision fp32" in line
    assert err.strip() == line and "[TRAIN]" not in out
    assert not (tmp_path / "out").exists()


def test_run_cli_exit_codes(capfd):
    def raising(exc):
        def main(argv):
            raise exc
        return main

    assert run_cli(lambda argv: None, []) == 0 and run_cli(lambda argv: 5, []) == 5
    assert run_cli(raising(UserInputError("bad thing")), []) == 2
    assert capfd.readouterr().err == "error: bad thing\n"
    assert run_cli(raising(TrainingDiverged("loss is not finite")), []) == 3
    assert capfd.readouterr().err == "error: loss is not finite\n"
    assert run_cli(raising(PermissionError(13, "Permission denied", "/root/x")), []) == 2
    assert capfd.readouterr().err == "error: Permission denied: /root/x\n"
    assert run_cli(raising(KeyboardInterrupt()), []) == 130
    assert capfd.readouterr().err == "interrupted\n"
    with pytest.raises(ValueError):  # a bug is not hidden behind a one-line message
        run_cli(raising(ValueError("bug")), [])


def test_postprocess_overrides():
    args = val_cli.build_parser().parse_args(["--config", "c.yml", "--model_path", "m", "--threshold", "0.3",
                                              "--postprocess", "top_k=5", "stuff_area = 7"])
    assert postprocess_overrides(args) == {"threshold": 0.3, "nms_kernel": None, "top_k": "5", "stuff_area": "7"}
    args = val_cli.build_parser().parse_args(["--config", "c.yml", "--model_path", "m", "--postprocess", "top_k"])
    with pytest.raises(UserInputError, match="expected KEY=VALUE, got 'top_k'"):
        postprocess_overrides(args)
