"""Every command's argument parser, in this process: `--help` answers with a usage text naming the
command's options (one test for all: a fresh process per script would only time Paddle's start-up), and
setup.py's console scripts point at existing entry points."""
import ast
import importlib
import os

import pytest

import panoptic_metrics.cli
from paddleseg_ext.cli import (export, infer, make_demo_dataset, predict, prepare_cityscapes, prepare_coco, train,
                               val)
from tests.conftest import ROOT, load_benchmark, load_script

#: command -> (its parser, or its main for the commands without `build_parser`; options its help names)
COMMANDS = {
    "train": (train.build_parser, ["--config", "--iters", "--resume_model", "--do_eval", "--precision", "--device"]),
    "val": (val.build_parser, ["--model_path", "--aug_eval", "--scales", "--flip_horizontal", "--oracle",
                               "--save_predictions", "--results_file", "--threshold", "--postprocess"]),
    "predict": (predict.build_parser, ["--image_path", "--save_dir", "--aug_pred", "--scales", "--flip_horizontal",
                                       "--stuff_area"]),
    "export": (export.build_parser, ["--save_dir", "--input_shape", "--top_k"]),
    "infer": (infer.build_parser, ["--model_dir", "--image_path", "--disable_ir_optim", "--device"]),
    "make_demo_dataset": (make_demo_dataset.main, ["--out", "--num-train", "--height"]),
    "prepare_cityscapes": (prepare_cityscapes.main, ["--root", "--force"]),
    "prepare_coco": (prepare_coco.main, ["--root", "--splits"]),
    "eval_panoptic": (panoptic_metrics.cli.build_parser, ["--gt-json-file", "--prediction-folder", "--results_file"]),
}
#: tools/benchmark.py sub-commands -> options their help names
BENCHMARKS = {"targets": ["--height", "--instances"], "postprocess": ["--sizes"], "eval": ["--num-images"],
              "network": ["--configs"], "batch_norm": ["--config", "--size", "--repeats"]}


def _help_of(call, capsys):
    """stdout of `--help` (argparse exits 0 after printing it)."""
    with pytest.raises(SystemExit) as e:
        parser = call()
        parser.parse_args(["--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_every_command_answers_help(capsys):
    for name, (call, options) in COMMANDS.items():
        if call.__name__ == "main":
            with pytest.raises(SystemExit) as e:
                call(["--help"])
            assert e.value.code == 0, name
            text = capsys.readouterr().out
        else:
            text = _help_of(call, capsys)
        assert text.startswith("usage:"), (name, text)
        missing = [o for o in options if o not in text]
        assert not missing, (name, missing)
    # tools/benchmark.py and its sub-commands
    assert load_script(os.path.join(ROOT, "tools", "benchmark.py")).main(["--help"]) == 0
    assert "available: targets, postprocess, eval, network" in capsys.readouterr().out
    for name, options in BENCHMARKS.items():
        with pytest.raises(SystemExit) as e:
            load_benchmark(name).main(["--help"])
        assert e.value.code == 0, name
        text = capsys.readouterr().out
        assert "usage:" in text and all(o in text for o in options), (name, text)


def test_console_scripts_point_at_entry_points():
    """setup.py's `console_scripts` name existing callables (`console_main` of each command)."""
    with open(os.path.join(ROOT, "setup.py")) as f:
        tree = ast.parse(f.read())
    (entry_points,) = [n for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "entry_points"]
    scripts = ast.literal_eval(entry_points.value)["console_scripts"]
    assert sorted(line.split("=")[0].strip() for line in scripts) == [
        "panoptic-check-dataset", "panoptic-convert", "panoptic-eval", "panoptic-export", "panoptic-infer",
        "panoptic-make-demo-dataset", "panoptic-predict", "panoptic-prepare-cityscapes", "panoptic-prepare-coco",
        "panoptic-train", "panoptic-val"]
    for line in scripts:
        name, target = (s.strip() for s in line.split("="))
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), line
