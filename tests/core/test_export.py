"""export.py: the saved static model (the pipeline's `InferenceModel`) and deploy.yaml. That the exported
model gives the same panoptic maps as val and predict is checked in tests/pipeline/test_consistency.py."""
import os
import warnings

import pytest
import yaml

from paddleseg_ext.cli import export as export_cli
from paddleseg_ext.core.export import INPUT_NAMES, parse_input_shape
from paddleseg_ext.models.base import INFERENCE_OUTPUTS
from paddleseg_ext.utils import UserInputError
from tests.conftest import error_line, run_main


def test_exported_files_and_deploy_yaml(demo, demo_export):
    files = os.listdir(demo_export)
    assert "model.pdiparams" in files and ("model.json" in files or "model.pdmodel" in files)
    with open(os.path.join(demo_export, "deploy.yaml")) as f:
        info = yaml.safe_load(f)["Deploy"]
    assert info["model"] in files and info["params"] == "model.pdiparams"
    assert [t["type"] for t in info["transforms"]] == ["PanopticPadding", "Normalize"]
    assert info["inputs"] == ["x", "valid_hw", "ori_hw"] == list(INPUT_NAMES)
    assert info["outputs"] == ["panoptic", "semantic", "instance_ids", "instance_scores"] == list(INFERENCE_OUTPUTS)
    assert info["model_type"] == "PanopticDeepLab"
    assert info["score_modes"] == ["semantic", "semantic_x_instance"]
    assert info["input_shape"] == [1, 3, -1, -1]
    # the model's settings: the demo config's postprocess block, with the --threshold override
    block = demo.dic["postprocess"]
    assert info["postprocess"] == {"threshold": 0.0, "nms_kernel": block["nms_kernel"], "top_k": block["top_k"],
                                   "stuff_area": block["stuff_area"]}
    # the dataset's label coding
    assert info["thing_ids"] == list(range(11, 19))
    assert (info["label_divisor"], info["ignore_index"], info["void_label"]) == (1000, 255, 255000)
    assert info["num_classes"] == 19 and len(info["palette"]) == 19 and info["palette"][0] == [128, 64, 128]
    assert info["class_names"][0] == "road" and len(info["class_names"]) == 19


def test_export_rejects_batch_input_shape(demo, tmp_path, capfd):
    rc, _, err = run_main(capfd, export_cli.main, ["--config", demo.cfg, "--model_path", demo.weights,
                                                   "--save_dir", tmp_path / "m", "--input_shape", "2", "3", "-1", "-1"])
    assert "--input_shape" in error_line(rc, err)
    assert not (tmp_path / "m").exists() or not os.listdir(tmp_path / "m")


@pytest.mark.parametrize("shape, match", [([1, 3, 5], "4 numbers"), ([1, 1, -1, -1], "C must be 3"),
                                          ([1, 3, 0, 64], "positive or -1"), ([1, 3, -2, 64], "positive or -1")])
def test_parse_input_shape_errors(shape, match):
    with pytest.raises(UserInputError, match=match):
        parse_input_shape(shape)


def test_parse_input_shape_default_and_fixed():
    assert parse_input_shape(None) == [1, 3, -1, -1]
    assert parse_input_shape(["1", "3", "129", "257"]) == [1, 3, 129, 257]


def test_export_prints_no_paddle_warnings(demo, tmp_path, capfd):
    """Paddle's PIR / deprecation warnings while the model is traced and saved are not for the user: by default
    stderr stays empty (Python warnings recorded here too, so that pytest's own capture hides none)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc, out, err = run_main(capfd, export_cli.main, ["--config", demo.cfg, "--model_path", demo.weights,
                                                         "--save_dir", tmp_path / "m"])
    assert rc == 0 and out.startswith("exported "), err
    assert not [ln for ln in err.splitlines() if "warn" in ln.lower()], err
    assert not caught, [str(w.message) for w in caught]
