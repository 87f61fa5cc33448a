"""export.py + deploy/python/infer.py: the static model's panoptic map equals predict.py's, bit for bit."""
import os
import runpy
import shutil
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml

from paddleseg_ext.core import export as export_mod
from paddleseg_ext.core import predict as predict_mod
from paddleseg_ext.cli.common import run_cli
from paddleseg_ext.postprocess import PanopticPostprocess, panoptic_postprocess
from paddleseg_ext.utils import UserInputError, read_panoptic_png

from test_predict import CONTRIB, ROOT, make_config_and_weights, val_images

INFER = os.path.join(ROOT, "deploy", "python", "infer.py")


def _infer_main():
    return runpy.run_path(INFER)["main"]


@pytest.fixture(scope="module")
def exported(demo_root, tmp_path_factory):
    """One export per session (tracing is the slow part), plus predict.py and infer.py on the same images."""
    tmp = str(tmp_path_factory.mktemp("export"))
    cfg, weights = make_config_and_weights(demo_root, tmp)
    images = os.path.join(tmp, "images")
    os.makedirs(images)
    for p in val_images(demo_root)[:2]:
        shutil.copy(p, images)
    # threshold 0 so that the untrained centre head yields centres (and thing instances)
    flags = ["--threshold", "0.0"]
    model_dir = os.path.join(tmp, "inference_model")
    assert run_cli(export_mod.main, ["--config", cfg, "--model_path", weights, "--save_dir", model_dir] + flags) == 0
    pred_dir, infer_dir = os.path.join(tmp, "predict"), os.path.join(tmp, "infer")
    assert run_cli(predict_mod.main, ["--config", cfg, "--model_path", weights, "--image_path", images,
                                      "--save_dir", pred_dir, "--device", "cpu"] + flags) == 0
    assert run_cli(_infer_main(), ["--model_dir", model_dir, "--image_path", images, "--save_dir", infer_dir]) == 0
    return {"cfg": cfg, "weights": weights, "model_dir": model_dir, "images": images, "predict": pred_dir,
            "infer": infer_dir, "tmp": tmp}


def test_exported_files_and_deploy_yaml(exported):
    files = os.listdir(exported["model_dir"])
    assert "model.pdiparams" in files and ("model.json" in files or "model.pdmodel" in files)
    with open(os.path.join(exported["model_dir"], "deploy.yaml")) as f:
        info = yaml.safe_load(f)["Deploy"]
    assert info["model"] in files and info["params"] == "model.pdiparams"
    assert [t["type"] for t in info["transforms"]] == ["PanopticPadding", "Normalize"]
    assert info["inputs"] == ["x", "ori_hw"] and info["outputs"] == ["panoptic", "semantic", "center", "offset"]
    # the demo config's postprocess block, with the --threshold override
    with open(exported["cfg"]) as f:
        block = yaml.safe_load(f)["postprocess"]
    assert info["postprocess"] == {"thing_ids": list(range(11, 19)), "label_divisor": 1000, "void_label": 255000,
                                   "threshold": 0.0, "nms_kernel": block["nms_kernel"], "top_k": block["top_k"],
                                   "stuff_area": block["stuff_area"]}
    assert info["num_classes"] == 19 and len(info["palette"]) == 19 and info["palette"][0] == [128, 64, 128]


def test_inference_model_equals_predict(exported):
    names = sorted(f for f in os.listdir(exported["images"]))
    assert len(names) == 2
    n_instances = 0
    for name in names:
        stem = os.path.splitext(name)[0]
        for suffix in predict_mod.OUTPUT_SUFFIXES.values():
            assert os.path.isfile(os.path.join(exported["infer"], stem + suffix))
        a = read_panoptic_png(os.path.join(exported["predict"], stem + "_panoptic_raw.png"))
        b = read_panoptic_png(os.path.join(exported["infer"], stem + "_panoptic_raw.png"))
        assert a.shape == (128, 256)
        np.testing.assert_array_equal(a, b)
        n_instances += len(np.unique(a[a % 1000 > 0]))
    assert n_instances > 0  # the comparison covers thing instances, not only stuff


def _random_case(rs, h, w, num_classes=19):
    sem = rs.randint(0, num_classes, (h, w))
    sem[rs.rand(h, w) < 0.5] = rs.choice([11, 13])
    heat = rs.rand(1, h, w).astype("float32")
    if rs.rand() < 0.5:
        heat = (np.round(heat * 4) / 4).astype("float32")  # plateaus: tied scores and tied NMS maxima
    off = (rs.randn(2, h, w) * 4).astype("float32")
    if rs.rand() < 0.5:
        off = (np.round(off) + 0.5).astype("float32")  # points half-way between centres: distance ties
    return sem, heat, off


POST_KWARGS = dict(thing_ids=list(range(11, 19)), label_divisor=1000, void_label=255000, threshold=0.3,
                   nms_kernel=3, top_k=4, stuff_area=6)
POST_SPEC = [paddle.static.InputSpec([None, None], "int64", "semantic"),
             paddle.static.InputSpec([1, None, None], "float32", "center"),
             paddle.static.InputSpec([2, None, None], "float32", "offset")]


def _post_cases():
    rs = np.random.RandomState(0)
    cases = [_random_case(rs, rs.randint(1, 24), rs.randint(1, 24)) for _ in range(12)]
    sem, heat, off = _random_case(rs, 9, 11)
    cases.append((sem, heat * 0, off))  # no centre: thing pixels are void
    cases.append((np.full_like(sem, 2), heat, off))  # no thing pixel
    sem_one = sem.copy()
    sem_one[:] = 13
    cases.append((sem_one, heat, off))  # no stuff pixel
    return cases


# group_block 7: with K + 1 <= 5 candidates, blocks of 1 to 7 pixels, so the traced while loop
# runs many times (and its padded last block is exercised).
@pytest.mark.parametrize("group_block", [None, 7])
def test_traced_postprocess_equals_panoptic_postprocess(group_block):
    """The graph version (traced whole with to_static) against the eager function, incl. edge cases."""
    layer = PanopticPostprocess(19, group_block=group_block, **POST_KWARGS)
    traced = paddle.jit.to_static(layer, input_spec=POST_SPEC, full_graph=True)
    for sem, heat, off in _post_cases():
        expected, centers = panoptic_postprocess(sem, heat, off, **POST_KWARGS)
        got, got_centers = traced(paddle.to_tensor(sem), paddle.to_tensor(heat), paddle.to_tensor(off))
        np.testing.assert_array_equal(got.numpy(), expected)
        np.testing.assert_array_equal(got_centers.numpy(), centers)


def test_saved_postprocess_in_paddle_inference_equals_panoptic_postprocess(tmp_path):
    """Saved and run by paddle.inference (as infer.py does), where the graph may be rewritten by passes."""
    from paddle import inference

    layer = PanopticPostprocess(19, group_block=7, **POST_KWARGS)
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=POST_SPEC, full_graph=True), str(tmp_path / "post"),
                    input_spec=POST_SPEC)
    model = [f for f in os.listdir(tmp_path) if f.endswith((".json", ".pdmodel"))]
    # a layer without parameters: Paddle 2.6 writes no .pdiparams and refuses to load one, so pass ""
    params = str(tmp_path / "post.pdiparams")
    config = inference.Config(str(tmp_path / model[0]), params if os.path.isfile(params) else "")
    config.disable_gpu()
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    for sem, heat, off in _post_cases():
        for name, array in zip(predictor.get_input_names(), (sem, heat, off)):
            handle = predictor.get_input_handle(name)
            handle.reshape(array.shape)
            handle.copy_from_cpu(np.ascontiguousarray(array))
        predictor.run()
        got = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
        np.testing.assert_array_equal(got, panoptic_postprocess(sem, heat, off, **POST_KWARGS)[0])


def test_traced_postprocess_without_thing_classes():
    kwargs = dict(POST_KWARGS, thing_ids=[])
    traced = paddle.jit.to_static(PanopticPostprocess(19, **kwargs), input_spec=POST_SPEC, full_graph=True)
    sem, heat, off = _post_cases()[0]
    got, _ = traced(paddle.to_tensor(sem), paddle.to_tensor(heat), paddle.to_tensor(off))
    areas = np.bincount(sem.ravel(), minlength=19)
    np.testing.assert_array_equal(got.numpy(), np.where(areas[sem] < 6, 255000, sem * 1000))


@pytest.mark.parametrize("kwargs, match", [
    (dict(thing_ids=[11, 19]), "thing_ids"),
    (dict(top_k=1000), "top_k"),  # instance numbers could reach label_divisor: not checkable in the graph
    (dict(nms_kernel=2), "nms_kernel"),
])
def test_postprocess_layer_rejects_bad_settings(kwargs, match):
    with pytest.raises(UserInputError, match=match):
        PanopticPostprocess(19, **dict(POST_KWARGS, **kwargs))


def test_export_rejects_batch_input_shape(exported, tmp_path, capfd):
    rc = run_cli(export_mod.main, ["--config", exported["cfg"], "--model_path", exported["weights"],
                                   "--save_dir", str(tmp_path / "m"), "--input_shape", "2", "3", "-1", "-1"])
    assert rc == 2
    err = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "--input_shape" in err[0]


def test_infer_without_deploy_yaml_is_a_user_error(exported, tmp_path, capfd):
    rc = run_cli(_infer_main(), ["--model_dir", str(tmp_path), "--image_path", exported["images"],
                                 "--save_dir", str(tmp_path / "out")])
    assert rc == 2
    err = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "deploy.yaml" in err[0] and str(tmp_path) in err[0]


@pytest.mark.parametrize("script", [os.path.join(CONTRIB, "export.py"), INFER])
def test_scripts_answer_help(script):
    proc = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "usage:" in proc.stdout and "--save_dir" in proc.stdout
