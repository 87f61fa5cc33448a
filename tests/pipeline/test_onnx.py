"""ONNX export (export.py --format onnx|all) and the deploy backends (`pipeline.load_deployed`,
deploy/python/infer.py): for Panoptic-DeepLab (demo config; R50 OS32 with random weights, marked
slow) and PanopticFCN (demo config), the panoptic maps of ONNX Runtime, Paddle Inference (oneDNN on,
the default) and the eager predict path (`pipeline.Predictor`, what predict.py runs) agree, for a
padding and a resizing val transform and two image sizes.

Float rounding differs between the three (fused oneDNN convolutions, ONNX Runtime's kernels), and the
untrained weights with ``--threshold 0`` give hundreds of near-tied centre votes, so a pixel may change
instance. Measured here: at most 4 of 32768 pixels (0.012%) differ, and the classes of the segments are
the same; the test asserts >= 99.9% of pixels and the same classes. (PanopticFCN's GroupNorm needs the
epsilon fix of `core.export._fix_group_norm_epsilon`: without it ONNX Runtime's map was void almost
everywhere.)

The graph does not contain the val transforms (deploy.yaml does), so the resizing variant reuses the
padding variant's export with another `transforms` entry, as export.py would write it."""
import importlib.util
import os
import shutil

import numpy as np
import pytest
import yaml
from paddleseg.cvlibs import Config

from paddleseg_ext.cli import infer as infer_cli
from paddleseg_ext.compat import PADDLE_VERSION
from paddleseg_ext.core.export import check_onnx_tools, convert_to_onnx
from paddleseg_ext.pipeline import OnnxPredictor, StaticPredictor, build_predictor, load_deployed
from paddleseg_ext.runtime import build_model, load_config
from paddleseg_ext.utils import UserInputError, read_image
from tests.conftest import (CONFIG_DIR, FCN_DEMO_CONFIG, THING_FLAGS, export_model, run_main, save_untrained_weights,
                            write_config)

HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("paddle2onnx", "onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAVE_ONNX or PADDLE_VERSION < (3, 0),
                                reason="ONNX export needs paddle2onnx + onnxruntime (pip install -e .[onnx]) and "
                                       "Paddle 3 (paddle2onnx 2.1 converts PIR programs; Paddle 2.6 is not served)")

R50_CONFIG = os.path.join(CONFIG_DIR, "panoptic_deeplab_resnet50_os32_cityscapes_1025x513_bs8_90k_lr00005.yml")
#: model -> (config, post-processing flags, padding target [w, h], resize target [w, h], two image sizes (h, w))
CASES = {
    "deeplab": (None, THING_FLAGS, [257, 129], [192, 112], [(128, 256), (100, 200)]),
    "fcn": (FCN_DEMO_CONFIG, [], [256, 128], [192, 96], [(128, 256), (96, 160)]),
    "r50": (R50_CONFIG, THING_FLAGS, [161, 97], [129, 65], [(96, 160), (64, 128)]),
}
MIN_AGREEMENT = 0.999


def _transforms(kind, target):
    if kind == "pad":
        return [{"type": "PanopticPadding", "target_size": target, "label_padding_value": 0}, {"type": "Normalize"}]
    return [{"type": "Resize", "target_size": target}, {"type": "Normalize"}]


def _images(demo, sizes):
    """Two frames: the first demo val image cropped to each size (top-left)."""
    image = read_image(demo.images[0])
    return [np.ascontiguousarray(image[:h, :w]) for h, w in sizes]


@pytest.fixture(scope="module", params=["deeplab", "fcn", pytest.param("r50", marks=pytest.mark.slow)])
def exported(request, demo, tmp_path_factory):
    """(name, {'pad'|'resize': (config path, export folder)}, post-processing overrides, weights, images)."""
    name = request.param
    config, flags, pad, resize, sizes = CASES[name]
    tmp = tmp_path_factory.mktemp("onnx_" + name)
    base = demo.dic if config is None else Config(config).dic  # _base_ merged: the R50 config inherits its datasets
    out = {}
    for kind, target in (("pad", pad), ("resize", resize)):
        def mutate(d, kind=kind, target=target):
            d["val_dataset"]["transforms"] = _transforms(kind, target)
        out[kind] = write_config(base, str(tmp / (kind + ".yml")), mutate, dataset_root=demo.root)
    weights = demo.weights if config is None else save_untrained_weights(out["pad"], str(tmp / "model.pdparams"))
    folder = export_model(out["pad"], weights, str(tmp / "model_pad"), list(flags) + ["--format", "all"])
    resized = str(tmp / "model_resize")
    shutil.copytree(folder, resized)
    with open(os.path.join(resized, "deploy.yaml")) as f:
        info = yaml.safe_load(f)
    info["Deploy"]["transforms"] = _transforms("resize", resize)
    with open(os.path.join(resized, "deploy.yaml"), "w") as f:
        yaml.safe_dump(info, f)
    post = {"threshold": 0.0} if flags else None
    return name, {"pad": (out["pad"], folder), "resize": (out["resize"], resized)}, post, weights, _images(demo, sizes)


def _segments(panoptic):
    labels = np.unique(panoptic)
    return labels, np.unique(labels // 1000)


def _agree(a, b, what):
    assert a.shape == b.shape, what
    share = float((a == b).mean())
    assert share >= MIN_AGREEMENT, "{}: {:.5f} of the pixels agree".format(what, share)
    # the classes present are the same (an instance may split differently at a near-tie)
    np.testing.assert_array_equal(_segments(a)[1], _segments(b)[1], err_msg=what)
    return share


@pytest.mark.parametrize("kind", ["pad", "resize"])
@needs_onnx
def test_onnxruntime_paddle_inference_and_predict_agree(exported, kind):
    name, variants, post, weights, images = exported
    config, folder = variants[kind]
    cfg = load_config(config)
    builder, model = build_model(cfg, config, weights)
    model.eval()
    eager = build_predictor(model, cfg, config, builder, postprocess=post)
    onnx_run = load_deployed(folder, "onnxruntime")
    paddle_run = load_deployed(folder)  # both formats: Paddle Inference by default, oneDNN on
    assert isinstance(onnx_run, OnnxPredictor) and isinstance(paddle_run, StaticPredictor)
    things = 0
    for image in images:
        ref = eager(image)
        got_onnx, got_paddle = onnx_run(image), paddle_run(image)
        for a, b, what in ((got_paddle, ref, "Paddle Inference vs predict"), (got_onnx, ref, "onnxruntime vs predict"),
                           (got_onnx, got_paddle, "onnxruntime vs Paddle Inference")):
            _agree(a["panoptic"], b["panoptic"], "{} {} {}: {}".format(name, kind, image.shape, what))
        assert got_onnx["panoptic"].shape == image.shape[:2]
        assert got_onnx["panoptic"].dtype == np.int64 and got_onnx["semantic"].dtype == np.int64
        assert got_onnx["instance_scores"].shape[0] == got_onnx["instance_ids"].shape[0]
        things += int((got_onnx["panoptic"] % 1000 > 0).sum())
    # the DeepLab comparisons cover thing instances (threshold 0); the untrained PanopticFCN finds none
    assert things > 0 or name == "fcn"


@needs_onnx
def test_class_table_and_default_backend(exported):
    name, variants, _, _, _ = exported
    folder = variants["pad"][1]
    onnx_only = folder + "_onnx_only"
    shutil.copytree(folder, onnx_only, dirs_exist_ok=True)
    with open(os.path.join(onnx_only, "deploy.yaml")) as f:
        info = yaml.safe_load(f)
    for key in ("model", "params"):
        os.remove(os.path.join(onnx_only, info["Deploy"][key]))
        info["Deploy"][key] = None
    with open(os.path.join(onnx_only, "deploy.yaml"), "w") as f:
        yaml.safe_dump(info, f)
    run = load_deployed(onnx_only)
    assert run.backend == "onnxruntime"
    table = run.class_table
    assert len(table) == info["Deploy"]["num_classes"]
    assert [c["id"] for c in table if c["isthing"]] == info["Deploy"]["thing_ids"]
    assert table[0]["name"] == info["Deploy"]["class_names"][0] and table[0]["color"] == info["Deploy"]["palette"][0]
    with pytest.raises(UserInputError, match="names no `model`.*--format paddle"):
        load_deployed(onnx_only, "paddle")


@needs_onnx
def test_infer_benchmark_table_both_backends(exported, demo, tmp_path, capfd):
    name, variants, _, _, _ = exported
    if name != "deeplab":
        pytest.skip("one model is enough for the command line")
    folder = variants["pad"][1]
    for backend in ("paddle", "onnxruntime"):
        rc, out, err = run_main(capfd, infer_cli.main, ["--model_dir", folder, "--image_path", demo.images[0],
                                                        "--save_dir", tmp_path / backend, "--backend", backend,
                                                        "--benchmark", "2", "--cpu_threads", "1"])
        assert rc == 0, err
        lines = out.strip().splitlines()
        assert lines[0].startswith("backend " + backend) and "2 image(s) timed" in lines[0]
        stages = [ln.split()[0] for ln in lines[2:6]]
        assert stages == ["read+preprocess", "model", "write", "total"]
        medians = [float(ln.split()[1]) for ln in lines[2:6]]
        assert all(m >= 0 for m in medians) and medians[1] > 0
        assert abs(sum(medians[:3]) - medians[3]) <= 0.05 * medians[3] + 0.5  # medians of a sum, two samples
        assert lines[6].startswith("images/s: ") and float(lines[6].split()[1]) > 0
        assert any(f.endswith("_panoptic_raw.png") for f in os.listdir(tmp_path / backend))


def test_use_trt_on_a_cpu_build_is_one_line_exit_1(demo, tmp_path, capfd):
    import paddle

    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        pytest.skip("a GPU build with a GPU: TensorRT may be available")
    # refused before anything is loaded: no exported model needed
    rc, out, err = run_main(capfd, infer_cli.main, ["--model_dir", tmp_path, "--image_path", demo.images[0],
                                                    "--save_dir", tmp_path, "--use_trt", "--precision", "fp16"])
    assert rc == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --use_trt needs --device gpu") and "CPU build" in lines[0]


@needs_onnx
def test_unconvertible_op_is_named_with_its_layer(tmp_path):
    """A layer with an op paddle2onnx has no converter for (bincount): one line naming op and layer, no
    file left behind."""
    import paddle

    class Histogram(paddle.nn.Layer):
        def forward(self, x):
            return paddle.bincount(x.flatten(), minlength=4)

    class Model(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.histogram = Histogram()

        def forward(self, x):
            return self.histogram(x + 1)

    spec = [paddle.static.InputSpec([None], "int64", "x")]
    layer = Model()
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), str(tmp_path / "model"),
                    input_spec=spec)
    model_file = [f for f in os.listdir(tmp_path) if f.startswith("model.") and not f.endswith(".pdiparams")][0]
    with pytest.raises(UserInputError, match=r"no converter for op `bincount` in layer /Histogram/") as e:
        convert_to_onnx(str(tmp_path / model_file), str(tmp_path / "model.pdiparams"), str(tmp_path / "m.onnx"),
                        output_names=["counts"])
    assert "\n" not in str(e.value)
    assert not [f for f in os.listdir(tmp_path) if f.startswith("m.onnx")]


def test_missing_onnx_tools_is_one_line(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "paddle2onnx", None)  # as if not installed
    with pytest.raises(UserInputError, match=r"--format onnx needs paddle2onnx .*pip install -e \.\[onnx\]"):
        check_onnx_tools()


@needs_onnx
def test_group_norm_keeps_its_epsilon_in_onnx(tmp_path):
    """paddle2onnx 2.1 writes GroupNorm with epsilon 2e-19; the export puts the layer's 1e-5 back. Input
    whose group variance is near epsilon (as in an untrained PanopticFCN head), checked against float64."""
    import onnxruntime as ort
    import paddle

    norm = paddle.nn.GroupNorm(4, 8, epsilon=1e-5)
    spec = [paddle.static.InputSpec([1, 8, None, None], "float32", "x")]
    paddle.jit.save(paddle.jit.to_static(norm, input_spec=spec, full_graph=True), str(tmp_path / "model"),
                    input_spec=spec)
    convert_to_onnx(str(tmp_path / "model.json"), str(tmp_path / "model.pdiparams"), str(tmp_path / "m.onnx"),
                    output_names=["y"])
    x = (np.random.default_rng(0).standard_normal([1, 8, 5, 7]) * 3e-3).astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    g = x.astype(np.float64).reshape(1, 4, -1)
    want = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(got, want, atol=1e-4)
