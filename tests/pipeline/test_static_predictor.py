"""The exported model's runner (`pipeline.static_predictor`, deploy/python/infer.py): its deploy.yaml is
checked, and what is wrong is one line naming the folder or file. (That it predicts what val and
predict.py predict is tests/pipeline/test_consistency.py.)"""
import os
import shutil

import pytest
import yaml

from paddleseg_ext.cli import infer as infer_cli
from paddleseg_ext.pipeline import StaticPredictor, read_deploy_info
from paddleseg_ext.utils import UserInputError
from tests.conftest import error_line, run_main


def test_infer_without_deploy_yaml_is_a_user_error(demo, tmp_path, capfd):
    rc, _, err = run_main(capfd, infer_cli.main, ["--model_dir", tmp_path, "--image_path", demo.images[0],
                                                  "--save_dir", tmp_path / "out"])
    line = error_line(rc, err)
    assert "deploy.yaml" in line and str(tmp_path) in line


@pytest.fixture
def model_copy(demo_export, tmp_path):
    """A copy of the exported demo model, and its deploy.yaml as a dict."""
    folder = str(tmp_path / "model")
    shutil.copytree(demo_export, folder)
    with open(os.path.join(folder, "deploy.yaml")) as f:
        return folder, yaml.safe_load(f)


def _write(folder, dic):
    with open(os.path.join(folder, "deploy.yaml"), "w") as f:
        yaml.safe_dump(dic, f)


def test_deploy_yaml_checks(model_copy):
    folder, dic = model_copy
    assert read_deploy_info(folder)["outputs"] == ["panoptic", "semantic", "instance_ids", "instance_scores"]
    _write(folder, {"Other": 1})
    with pytest.raises(UserInputError, match="has no `Deploy:` section"):
        read_deploy_info(folder)
    _write(folder, {"Deploy": {k: v for k, v in dic["Deploy"].items() if k != "palette"}})
    with pytest.raises(UserInputError, match="lacks key\\(s\\) palette"):
        read_deploy_info(folder)
    # what an export.py before the restructuring wrote: two inputs, centre and offset outputs
    old = dict(dic["Deploy"], inputs=["x", "ori_hw"], outputs=["panoptic", "semantic", "center", "offset"])
    _write(folder, {"Deploy": old})
    with pytest.raises(UserInputError, match="written by an older export.py"):
        read_deploy_info(folder)


def test_missing_model_file(model_copy):
    folder, dic = model_copy
    os.remove(os.path.join(folder, "model.pdiparams"))
    with pytest.raises(UserInputError, match="exported model file not found: .*model.pdiparams"):
        StaticPredictor(folder)
