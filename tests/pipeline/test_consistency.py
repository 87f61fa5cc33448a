"""One pipeline: for the same images and weights, val.py's predictions (official format), predict.py's
raw panoptic PNGs, the exported static model (``paddle.jit.load``) and deploy/python/infer.py's raw PNGs
are the same panoptic maps, pixel for pixel, at the original image size.

Two val transforms: the demo config's (pad bottom/right to 257x129) and a variant that resizes the
256x128 frames to another aspect ratio (PaddleSeg's `Resize`) before normalising, so that the maps are
brought back from a resized network input. The weights are untrained (equality does not need a
trained model); `--threshold 0` makes the centre head yield centres, and the test asserts that the
maps hold thing instances. A third case has weights whose semantic head says "road" everywhere: centres
but no thing pixel, no instance."""
import json
import os

import numpy as np
import paddle
import pytest

from paddleseg_ext.cli import infer as infer_cli
from paddleseg_ext.cli import predict as predict_cli
from paddleseg_ext.cli.common import run_cli
from paddleseg_ext.core.predict import OUTPUT_SUFFIXES
from paddleseg_ext.core.val import run_val
from paddleseg_ext.datasets import build_transforms
from paddleseg_ext.pipeline import preprocess
from paddleseg_ext.utils import read_image, read_panoptic_png
from tests.conftest import (THING_FLAGS, VOID, export_model, load_yaml,
                            write_config)

#: the variant's val transforms: 256x128 frames resized to 192x112 (another aspect ratio)
RESIZE_TRANSFORMS = [{"type": "Resize", "target_size": [192, 112]}, {"type": "Normalize"}]


def _road_everywhere(weights, path):
    """`weights` with the semantic classifier's bias of class 0 (road) far above the others."""
    state = paddle.load(weights)
    bias = state["head.semantic_head.classifier.0.1.bias"].numpy()
    bias[0] += 1000.0
    state["head.semantic_head.classifier.0.1.bias"] = paddle.to_tensor(bias)
    paddle.save(state, path)
    return path


@pytest.fixture(scope="module", params=["pad", "resize", pytest.param(
    "no_things")])
def outputs(request, demo, demo_export, tmp_path_factory):
    """The four predictions of the demo val images for one val transform (or stuff-only weights)."""
    tmp = tmp_path_factory.mktemp("consistency_" + request.param)
    weights = demo.weights
    if request.param == "pad":
        cfg, model_dir = demo.cfg, demo_export
    elif request.param == "resize":
        cfg = write_config(demo.dic, str(tmp / "resize.yml"),
                           lambda d: d["val_dataset"].update(transforms=RESIZE_TRANSFORMS))
        model_dir = export_model(cfg, weights, str(tmp / "inference_model"), THING_FLAGS)
    else:
        cfg, weights = demo.cfg, _road_everywhere(demo.weights, str(tmp / "road.pdparams"))
        model_dir = export_model(cfg, weights, str(tmp / "inference_model"), THING_FLAGS)
    image_dir = os.path.join(demo.root, "leftImg8bit", "val")
    val_dir, pred_dir, infer_dir = (str(tmp / n) for n in ("val", "predict", "infer"))
    run_val(cfg, weights, postprocess={"threshold": 0.0}, save_predictions=val_dir,
            results_file=str(tmp / "metrics.json"), device="cpu")
    common = ["--image_path", image_dir] + THING_FLAGS
    assert run_cli(predict_cli.main, ["--config", cfg, "--model_path", weights, "--save_dir", pred_dir,
                                      "--device", "cpu"] + common) == 0
    # oneDNN (infer.py's default on CPU) fuses convolutions and rounds differently: a few near-tied pixels
    # change (measured agreement: tests/pipeline/test_onnx.py); without it the maps are equal bit for bit
    assert run_cli(infer_cli.main, ["--model_dir", model_dir, "--image_path", image_dir, "--save_dir", infer_dir,
                                    "--disable_onednn"]) == 0
    return {"case": request.param, "cfg": cfg, "model_dir": model_dir, "images": demo.images, "image_dir": image_dir,
            "val": val_dir, "predict": pred_dir, "infer": infer_dir}


def _raw(folder, image_dir, image):
    """The `_panoptic_raw.png` that predict.py / infer.py wrote for `image` (sub-folders kept)."""
    stem = os.path.splitext(os.path.relpath(image, image_dir))[0]
    return read_panoptic_png(os.path.join(folder, stem + OUTPUT_SUFFIXES["panoptic_raw"])).astype(np.int64)


def _jit_load_predictions(model_dir, transforms, images):
    layer = paddle.jit.load(os.path.join(model_dir, "model"))
    layer.eval()
    out = []
    for path in images:
        x, valid_hw, ori_hw = preprocess(read_image(path), transforms)
        result = layer(paddle.to_tensor(x), paddle.to_tensor(np.asarray(valid_hw, "int64")),
                       paddle.to_tensor(np.asarray(ori_hw, "int64")))
        out.append(result[0].numpy().astype(np.int64))
    return out


def _assert_same_as_official(panoptic, seg_ids, segments_info):
    """val.py's official-format prediction (segment ids 1..N in increasing panoptic label order, 0 on
    void, with their category ids) is `panoptic` re-encoded."""
    labels = np.unique(panoptic[panoptic != VOID])
    assert [s["id"] for s in segments_info] == list(range(1, labels.size + 1))
    assert [s["category_id"] for s in segments_info] == (labels // 1000).tolist()
    expected = np.zeros(panoptic.shape, np.int64)
    expected[panoptic != VOID] = np.searchsorted(labels, panoptic[panoptic != VOID]) + 1
    np.testing.assert_array_equal(seg_ids, expected)


def test_val_predict_export_and_infer_give_one_panoptic_map(outputs):
    transforms = build_transforms(load_yaml(outputs["cfg"])["val_dataset"]["transforms"])
    static = _jit_load_predictions(outputs["model_dir"], transforms, outputs["images"])
    with open(os.path.join(outputs["val"], "panoptic.json")) as f:
        official = {a["image_id"]: a for a in json.load(f)["annotations"]}
    assert len(official) == len(outputs["images"]) == 4
    n_instances = 0
    for path, from_static in zip(outputs["images"], static):
        from_predict = _raw(outputs["predict"], outputs["image_dir"], path)
        from_infer = _raw(outputs["infer"], outputs["image_dir"], path)
        assert from_predict.shape == read_image(path).shape[:2] == (128, 256)
        np.testing.assert_array_equal(from_static, from_predict)
        np.testing.assert_array_equal(from_infer, from_predict)
        image_id = os.path.basename(path)[:-len("_leftImg8bit.png")]
        ann = official[image_id]
        seg_ids = read_panoptic_png(os.path.join(outputs["val"], "panoptic", ann["file_name"]))
        _assert_same_as_official(from_predict, seg_ids, ann["segments_info"])
        # infer.py writes every picture predict.py writes
        stem = os.path.splitext(os.path.relpath(path, outputs["image_dir"]))[0]
        for suffix in OUTPUT_SUFFIXES.values():
            assert os.path.isfile(os.path.join(outputs["infer"], stem + suffix))
        things = from_predict[(from_predict != VOID) & (from_predict % 1000 > 0)]
        assert np.isin(things // 1000, np.arange(11, 19)).all()
        n_instances += np.unique(things).size
    if outputs["case"] == "no_things":
        assert n_instances == 0 and (from_predict == 0).all()  # road everywhere
    else:
        assert n_instances > 0  # the comparison covers thing instances, not only stuff
