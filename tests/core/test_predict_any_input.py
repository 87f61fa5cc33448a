"""predict.py beyond the dataset's frames: predictions in the official format (scored like val.py; any
category ids), images of any size and channel count (predict.py and infer.py), --long_side, and video."""
import glob
import json
import os
import types

import cv2
import numpy as np
import paddle
import pytest
from paddleseg.cvlibs import Config, SegBuilder

from panoptic_metrics.cli import main as eval_panoptic_main
from paddleseg_ext.cli import infer as infer_cli
from paddleseg_ext.cli import predict as predict_cli
from paddleseg_ext.cli import val as val_cli
from paddleseg_ext.core import predict as predict_mod
from paddleseg_ext.datasets.cityscapes_meta import TRAIN_ID_TO_CATEGORY_ID
from paddleseg_ext.datasets import build_transforms
from paddleseg_ext.pipeline import build_predictor, preprocess
from paddleseg_ext.runtime import build_model, load_config
from paddleseg_ext.runtime.weights import without_pretrained
from paddleseg_ext.utils import UserInputError, read_image, read_panoptic_png, write_panoptic_png
from tests.conftest import THING_FLAGS, error_line, run_main, write_config


def _fit_semantic_classifier(cfg_path, root, weights_path):
    """Untrained demo weights whose last semantic 1x1 convolution is a least-squares fit (ridge) of the train
    frames' one-hot train ids on its input features, classes balanced: a model trained in a second, good
    enough for stuff segments to match (PQ > 0; the demo frames colour each class in its own way)."""
    cfg = Config(cfg_path)
    cfg.dic["model"] = without_pretrained(cfg.dic["model"])
    paddle.seed(1)
    model = SegBuilder(cfg).model
    model.eval()
    head = model.head.semantic_head.classifier[0]
    feats, labels = [], []
    for lab in sorted(glob.glob(os.path.join(root, "gtFine", "train", "*", "*_gtFine_labelTrainIds.png"))):
        image = read_image(lab.replace("_gtFine_labelTrainIds", "_leftImg8bit").replace("gtFine", "leftImg8bit"))
        y = cv2.imread(lab, cv2.IMREAD_UNCHANGED)
        x = paddle.to_tensor(((image / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].astype("float32"))
        with paddle.no_grad():
            f = head[0](model.head.semantic_decoder(model.backbone(x)))
            f = paddle.nn.functional.interpolate(f, size=list(y.shape), mode="bilinear", align_corners=True)
        f = f.numpy()[0].reshape(f.shape[1], -1).T
        keep = y.ravel() < 19
        feats.append(f[keep])
        labels.append(y.ravel()[keep])
    x = np.concatenate(feats)
    x = np.concatenate([x, np.ones((len(x), 1), np.float32)], 1)
    labels = np.concatenate(labels)
    y = np.eye(19, dtype=np.float64)[labels]
    # class-balanced (each pixel weighted by 1 / its class's pixel count), so that small things are predicted too
    weight = 1.0 / np.bincount(labels, minlength=19)[labels]
    xw = x.T.astype(np.float64) * weight
    w = np.linalg.solve(xw @ x + 1e-6 * np.eye(x.shape[1]), xw @ y)
    conv = head[1]
    conv.weight.set_value(w[:-1].T.reshape(conv.weight.shape).astype("float32"))
    conv.bias.set_value(w[-1].astype("float32"))
    paddle.save(model.state_dict(), weights_path)
    return weights_path


@pytest.fixture(scope="module")
def fitted(demo):
    return _fit_semantic_classifier(demo.cfg, demo.root, os.path.join(demo.tmp, "fitted.pdparams"))


def _predict(capfd, demo, weights, *args):
    rc, out, err = run_main(capfd, predict_cli.main, ["--config", demo.cfg, "--model_path", weights,
                                                      "--device", "cpu"] + list(args))
    assert rc == 0, err
    return out


def test_panoptic_json_scored_by_eval_panoptic_equals_val(demo, fitted, tmp_path, capfd):
    save = tmp_path / "pred"
    flags = ["--threshold", "0.0"]  # centres from the untrained centre head: thing segments (with scores) too
    gt = os.path.join(demo.root, "gtFine", "cityscapes_panoptic_val")
    # image ids from the Cityscapes file names (createPanopticImgs' `images` name files that do not exist,
    # <id>_gtFine_leftImg8bit.png, so --image_info cannot take them from there)
    _predict(capfd, demo, fitted, "--image_path", os.path.join(demo.root, "leftImg8bit", "val"), "--save_dir", save,
             "--save_panoptic_json", *flags)
    rc, _, err = run_main(capfd, val_cli.main, ["--config", demo.cfg, "--model_path", fitted, "--device", "cpu",
                                                "--results_file", tmp_path / "val.json"] + flags)
    assert rc == 0, err
    val = json.load(open(str(tmp_path / "val.json")))["panoptic"]
    # scored against the label-id ground truth (cityscapesscripts' own json): category ids are label ids
    assert eval_panoptic_main(["--gt-json-file", gt + ".json", "--gt-folder", gt, "--prediction-json-file",
                               str(save / "panoptic_predictions.json"), "--prediction-folder",
                               str(save / "panoptic_predictions"), "--results_file", str(tmp_path / "pq.json")]) == 0
    scored = json.load(open(str(tmp_path / "pq.json")))
    assert val["All"]["pq"] > 0.02 and val["Stuff"]["pq"] > 0.02  # not trivially 0
    for group in ("All", "Things", "Stuff"):
        for k in ("pq", "sq", "rq", "n"):
            assert scored[group][k] == pytest.approx(val[group][k], abs=1e-12), (group, k)

    pred = json.load(open(str(save / "panoptic_predictions.json")))
    label_ids = [TRAIN_ID_TO_CATEGORY_ID[i] for i in range(19)]
    assert [c["id"] for c in pred["categories"]] == label_ids
    assert {c["id"] for c in pred["categories"] if c["isthing"]} == set(label_ids[11:])
    assert len(pred["annotations"]) == len(pred["images"]) == 4
    thing_scores = []
    for ann in pred["annotations"]:
        assert ann["image_id"].startswith("mockdorf_") and not ann["image_id"].endswith("_leftImg8bit")
        ids = read_panoptic_png(str(save / "panoptic_predictions" / ann["file_name"]))
        segs = ann["segments_info"]
        assert sorted(np.unique(ids[ids > 0]).tolist()) == [s["id"] for s in segs]
        for s in segs:
            mask = ids == s["id"]
            ys, xs = np.nonzero(mask)
            assert s["area"] == mask.sum() and s["iscrowd"] == 0
            assert s["bbox"] == [xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1]
            assert s["category_id"] in label_ids
            assert ("score" in s) == (s["category_id"] in label_ids[11:])
        thing_scores += [s["score"] for s in segs if "score" in s]
    # the scores are the model's instance confidences (first score mode) of the same instances
    cfg = load_config(demo.cfg)
    builder, model = build_model(cfg, demo.cfg, fitted)
    predictor = build_predictor(model, cfg, demo.cfg, builder, postprocess={"threshold": 0.0})
    expected = []
    for image in sorted(glob.glob(os.path.join(demo.root, "leftImg8bit", "val", "*", "*.png"))):
        r = predictor(read_image(image))
        expected += r["instance_scores"][np.argsort(r["instance_ids"]), 0].tolist()
    assert thing_scores and np.allclose(thing_scores, expected, atol=1e-6)


def _images(folder, pad_wh):
    """name -> RGB(A)/gray array: larger and smaller than the padding, odd sizes, grayscale, alpha."""
    rng = np.random.default_rng(5)
    pw, ph = pad_wh
    specs = {
        "larger.png": rng.integers(0, 255, (ph + 71, pw + 43, 3), dtype=np.uint8),      # both sides larger
        "wider_gray.png": rng.integers(0, 255, (ph - 30, pw + 100), dtype=np.uint8),    # one side larger, gray
        "taller_rgba.png": rng.integers(0, 255, (ph + 2, pw - 50, 4), dtype=np.uint8),  # one side larger, alpha
        "smaller_odd.png": rng.integers(0, 255, (41, 67, 3), dtype=np.uint8),
    }
    os.makedirs(folder, exist_ok=True)
    for name, arr in specs.items():
        assert cv2.imwrite(os.path.join(folder, name), arr)
    return specs


def test_images_of_any_size_and_channels(demo, demo_export, tmp_path, capfd):
    """predict.py and infer.py (the exported model, through the same `preprocess`) on images larger and
    smaller than the demo config's padding, odd sizes, grayscale and RGBA: the same maps at each image's size."""
    pad = tuple(next(t for t in demo.dic["val_dataset"]["transforms"] if t["type"] == "PanopticPadding")["target_size"])
    specs = _images(str(tmp_path / "in"), pad)
    save, infer_save = tmp_path / "pred", tmp_path / "infer"
    _predict(capfd, demo, demo.weights, "--image_path", tmp_path / "in", "--save_dir", save, *THING_FLAGS)
    # without oneDNN, whose fused kernels round differently (a few near-tied pixels flip; docs/deployment.md),
    # so that the comparison below can be exact
    rc, _, err = run_main(capfd, infer_cli.main, ["--model_dir", demo_export, "--image_path", tmp_path / "in",
                                                  "--save_dir", infer_save, "--disable_onednn"])
    assert rc == 0, err
    n_instances = 0
    for name, arr in specs.items():
        stem = os.path.splitext(name)[0]
        raw = read_panoptic_png(str(save / (stem + "_panoptic_raw.png")))
        assert raw.shape == arr.shape[:2]
        np.testing.assert_array_equal(read_panoptic_png(str(infer_save / (stem + "_panoptic_raw.png"))), raw)
        n_instances += len(np.unique(raw[raw % 1000 > 0]))
        for suffix in ("_panoptic.png", "_semantic.png", "_instance.png"):
            assert cv2.imread(str(save / (stem + suffix))).shape == arr.shape[:2] + (3,)
    assert n_instances > 0

    # a larger image is padded to the size a config with that padding would give: the same result
    cfg = load_config(demo.cfg)
    builder, model = build_model(cfg, demo.cfg, demo.weights)
    image = read_image(str(tmp_path / "in" / "larger.png"))
    grown = build_predictor(model, cfg, demo.cfg, builder, postprocess={"threshold": 0.0})(image)
    assert preprocess(image, build_transforms(demo.dic["val_dataset"]["transforms"]))[0].shape == (1, 3, 225, 321)
    # 257x129 = 32k + 1: the next such sizes above 300x200 are 321x225
    assert pad == (257, 129) and image.shape[:2] == (200, 300)

    def bigger_padding(dic):
        next(t for t in dic["val_dataset"]["transforms"] if t["type"] == "PanopticPadding")["target_size"] = [321, 225]

    big_cfg = write_config(demo.dic, tmp_path / "big.yml", bigger_padding)
    cfg2 = load_config(big_cfg)
    builder2, model2 = build_model(cfg2, big_cfg, demo.weights)
    fixed = build_predictor(model2, cfg2, big_cfg, builder2, postprocess={"threshold": 0.0})(image)
    for k in ("panoptic", "semantic"):
        np.testing.assert_array_equal(grown[k], fixed[k])


def test_long_side_resizes_and_maps_back(demo, fitted, tmp_path, capfd):
    """A frame shown 2x larger and --long_side 256: the network sees exactly the frame (a bilinear halving of
    a pixel-doubled image is the image), and the maps come back at the large size."""
    frame = read_image(demo.images[0])
    big = np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1)
    transforms = build_transforms(demo.dic["val_dataset"]["transforms"])
    x_big, valid_big, ori_big = preprocess(big, transforms, long_side=256)
    x, valid, ori = preprocess(frame, transforms)
    np.testing.assert_allclose(x_big, x, atol=1e-5)
    assert valid_big == valid == (128, 256) and ori_big == (256, 512)

    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "big.png"), big[..., ::-1])
    cv2.imwrite(str(src / "frame.png"), frame[..., ::-1])
    save = tmp_path / "pred"
    _predict(capfd, demo, fitted, "--image_path", src / "big.png", "--save_dir", save, "--long_side", "256")
    _predict(capfd, demo, fitted, "--image_path", src / "frame.png", "--save_dir", save)
    sem_big = read_panoptic_png(str(save / "big_panoptic_raw.png")) // 1000
    sem = read_panoptic_png(str(save / "frame_panoptic_raw.png")) // 1000
    assert sem_big.shape == big.shape[:2]
    # the same classes: they differ only along borders, where the bilinear upsampling of the probabilities
    # (align_corners, up to half a pixel from pixel doubling) decides otherwise; measured 96.3%
    agree = (sem_big == np.repeat(np.repeat(sem, 2, axis=0), 2, axis=1)).mean()
    assert agree > 0.94, agree


def _write_clip(path, frames, fps):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, frames[0].shape[1::-1])
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


def _read_frames(path):
    cap = cv2.VideoCapture(path)
    frames = []
    ok, f = cap.read()
    while ok:
        frames.append(f)
        ok, f = cap.read()
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


def test_video(demo, fitted, tmp_path, capfd):
    frame = cv2.imread(demo.images[1])
    # 5 frames of 300x130 (larger than the 257x129 padding; MPEG-4 part 2 stores even sizes only), the scene
    # sliding to the right
    padded = cv2.copyMakeBorder(frame, 0, 2, 0, 44, cv2.BORDER_REFLECT)
    frames = [np.roll(padded, 7 * i, axis=1) for i in range(5)]
    clip = str(tmp_path / "street.mp4")
    _write_clip(clip, frames, 7)
    save = tmp_path / "out"
    out = _predict(capfd, demo, fitted, "--video", clip, "--video_frames", "3", "--save_dir", save)
    assert "wrote 3 frame(s)" in out
    written, fps = _read_frames(str(save / "street_panoptic.mp4"))
    assert len(written) == 3 and fps == pytest.approx(7)
    assert all(w.shape == (130, 300, 3) for w in written)
    assert not [f for f in os.listdir(str(save)) if f.startswith(".tmp")]
    # frame 2 as predict.py draws it from the decoded input frame (what the video path saw)
    decoded, _ = _read_frames(clip)
    cv2.imwrite(str(tmp_path / "frame2.png"), decoded[2])
    _predict(capfd, demo, fitted, "--image_path", tmp_path / "frame2.png", "--save_dir", tmp_path / "pic")
    picture = cv2.imread(str(tmp_path / "pic" / "frame2_panoptic.png")).astype(np.float64)
    diff = np.abs(written[2].astype(np.float64) - picture)
    # the codec's tolerance: mp4v (MPEG-4 part 2) at OpenCV's default bit rate loses detail on the demo frames'
    # noise and textures: measured mean 6.2, median 3 grey levels; the other frames (the scene moved by 7 and
    # 14 pixels) differ from this picture by a mean of 22-25
    others = [np.abs(w.astype(np.float64) - picture).mean() for w in written[:2]]
    assert diff.mean() < 9 and np.median(diff) <= 5, (diff.mean(), np.median(diff))
    assert min(others) > 2 * diff.mean(), (others, diff.mean())


@pytest.mark.parametrize("case", ["nothing", "missing_video", "not_a_video", "long_side", "video_frames",
                                  "image_info"])
def test_bad_arguments_give_one_line(demo, tmp_path, capfd, case):
    args = ["--config", demo.cfg, "--model_path", demo.weights, "--save_dir", tmp_path / "out"]
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    _write_clip(str(tmp_path / "clip.mp4"), [np.zeros((16, 16, 3), np.uint8)] * 2, 5)
    extra, expected = {
        "nothing": ([], "--image_path"),
        "missing_video": (["--video", tmp_path / "none.mp4"], "none.mp4"),
        "not_a_video": (["--video", text], "notes.mp4"),
        "long_side": (["--image_path", demo.images[0], "--long_side", "0"], "--long_side"),
        "video_frames": (["--video", tmp_path / "clip.mp4", "--video_frames", "0"], "--video_frames"),
        "image_info": (["--image_path", demo.images[0], "--save_panoptic_json", "--image_info", text], "notes.mp4"),
    }[case]
    rc, _, err = run_main(capfd, predict_cli.main, args + extra)
    assert expected in error_line(rc, err)


def test_json_writer_any_category_ids_scores_and_image_ids(tmp_path):
    """`PanopticJsonWriter` with a custom dataset's non-contiguous category ids: ids mapped, a score per thing
    instance, image ids from --image_info; the ground truth made of the same map scores PQ 100."""
    meta = types.SimpleNamespace(category_ids=[7, 23, 101, 10000], class_names=["road", "sky", "cat", "dog"],
                                 thing_ids=[2, 3], palette=np.arange(12, dtype=np.uint8).reshape(4, 3),
                                 label_divisor=1000, void_label=255000)
    pan = np.full((20, 30), 255000, np.int64)
    pan[10:] = 0                 # road
    pan[:5] = 1000               # sky
    pan[12:15, 2:6] = 2001       # cat 1
    pan[12:18, 20:25] = 2002     # cat 2
    pan[5:9, 10:30] = 3001       # dog
    result = {"panoptic": pan, "instance_ids": np.array([3001, 2002, 2001]),
              "instance_scores": np.array([[0.3, 0.1], [0.8, 0.2], [0.6, 0.4]], np.float32)}
    pred_dir = tmp_path / "pred"
    writer = predict_mod.PanopticJsonWriter(str(pred_dir), meta, image_ids={"a.jpg": 42})
    writer.add("sub/a", "/photos/a.jpg", result)
    with pytest.raises(UserInputError, match="b.jpg is not listed"):
        writer.add("b", "/photos/b.jpg", result)
    twin = predict_mod.PanopticJsonWriter(str(tmp_path / "twin"), meta)
    twin.add("x/a", "/x/a.jpg", result)
    twin.add("y/a", "/y/a.jpg", result)  # the same default image_id "a"
    with pytest.raises(UserInputError, match="image_id 'a' is given to two images"):
        twin.finish()
    writer.finish()
    pred = json.load(open(str(pred_dir / "panoptic_predictions.json")))
    (ann,) = pred["annotations"]
    assert ann["image_id"] == 42 and ann["file_name"] == "sub/a.png"
    assert pred["images"] == [{"id": 42, "file_name": "a.jpg", "height": 20, "width": 30}]
    assert [(c["id"], c["isthing"]) for c in pred["categories"]] == [(7, 0), (23, 0), (101, 1), (10000, 1)]
    segs = {(s["category_id"], s["area"]): s for s in ann["segments_info"]}
    assert set(segs) == {(7, 10 * 30 - 12 - 30), (23, 150), (101, 12), (101, 30), (10000, 80)}
    assert segs[(101, 12)]["score"] == pytest.approx(0.6) and segs[(101, 30)]["score"] == pytest.approx(0.8)
    assert segs[(10000, 80)]["score"] == pytest.approx(0.3) and "score" not in segs[(7, 258)]
    assert segs[(10000, 80)]["bbox"] == [10, 5, 20, 4]

    # ground truth: the same segments under other segment ids, categories only in the gt json
    gt_dir = tmp_path / "gt"
    ids = read_panoptic_png(str(pred_dir / "panoptic_predictions" / "sub" / "a.png"))
    write_panoptic_png(str(gt_dir / "a.png"), np.where(ids > 0, ids + 100, 0))
    gt_segs = [dict(s, id=s["id"] + 100) for s in ann["segments_info"]]
    for s in gt_segs:
        s.pop("score", None)
    gt_json = {"annotations": [{"image_id": 42, "file_name": "a.png", "segments_info": gt_segs}],
               "categories": [{"id": c["id"], "name": c["name"], "isthing": c["isthing"]} for c in pred["categories"]]}
    json.dump(gt_json, open(str(tmp_path / "gt.json"), "w"))
    assert eval_panoptic_main(["--gt-json-file", str(tmp_path / "gt.json"), "--gt-folder", str(gt_dir),
                               "--prediction-json-file", str(pred_dir / "panoptic_predictions.json"),
                               "--prediction-folder", str(pred_dir / "panoptic_predictions"),
                               "--results_file", str(tmp_path / "pq.json")]) == 0
    scored = json.load(open(str(tmp_path / "pq.json")))
    assert scored["All"]["pq"] == pytest.approx(1.0) and scored["All"]["n"] == 4
    assert set(scored["per_class"]) == {"7", "23", "101", "10000"}
