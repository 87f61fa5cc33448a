"""The exported model's runner (`pipeline.static_predictor`, deploy/python/infer.py): its deploy.yaml is
checked, and what is wrong is one line naming the folder or file. (That it predicts what val and
predict.py predict is tests/pipeline/test_consistency.py.)"""
import os
import shutil

import numpy as np
import paddle
import pytest
import yaml

from paddleseg_ext.cli import infer as infer_cli
from paddleseg_ext.compat import PADDLE_VERSION, cpu_view
from paddleseg_ext.pipeline import StaticPredictor, read_deploy_info
from paddleseg_ext.pipeline.static_predictor import paddle_inference_predictor, run_paddle_inference
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


class _Affine(paddle.nn.Layer):
    def forward(self, x, k):
        return x * 2.0 + k.astype("float32").sum()


def test_inputs_shared_or_copied_give_the_same_outputs(tmp_path):
    """On CPU the inputs are shared with the predictor where numpy allows (C-contiguous, writable) and copied
    otherwise (a transposed view, a read-only array); each run reads the arrays as they are at that run."""
    spec = [paddle.static.InputSpec([None, None], "float32", "x"), paddle.static.InputSpec([None], "int64", "k")]
    prefix = str(tmp_path / "affine")
    paddle.jit.save(paddle.jit.to_static(_Affine(), input_spec=spec), prefix, input_spec=spec)
    model = prefix + (".json" if os.path.isfile(prefix + ".json") else ".pdmodel")
    params = prefix + ".pdiparams"
    predictor = paddle_inference_predictor(model, params if os.path.isfile(params) else "", use_onednn=False)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    k = np.array([1, 2], dtype=np.int64)
    read_only = x.copy()
    read_only.flags.writeable = False
    assert cpu_view(read_only) is None and cpu_view(x.T) is None
    assert (cpu_view(x) is not None) == (PADDLE_VERSION >= (3, 0))  # Paddle 2.6 copies
    for arr in (x, read_only, np.ascontiguousarray(x.T).T):
        np.testing.assert_array_equal(run_paddle_inference(predictor, (arr, k))[0], x * 2 + 3)
    x[0, 0] = 100.0  # the shared array changed between runs
    np.testing.assert_array_equal(run_paddle_inference(predictor, (x, k))[0][0, 0], 203.0)
    np.testing.assert_array_equal(run_paddle_inference(predictor, (x, k), on_cpu=False)[0], x * 2 + 3)
