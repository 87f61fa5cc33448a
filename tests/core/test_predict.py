"""predict.py (`core.predict`) on the demo data with the demo config and untrained weights: the four
outputs per image, image lists and folders, rank sharding (one official-format json over the ranks), TTA,
one-line errors for bad input. (Other sizes, the official format scored, video: test_predict_any_input.py.)"""
import hashlib
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from paddleseg_ext.cli import predict as predict_cli
from paddleseg_ext.core import predict as predict_mod
from paddleseg_ext.pipeline import build_predictor
from paddleseg_ext.runtime import build_model, dataset_metadata, load_config
from paddleseg_ext.utils import read_image, read_panoptic_png
from tests.conftest import CONTRIB, error_line, run_main, run_script


def test_predict_folder_writes_every_output(demo, tmp_path, capfd):
    src = tmp_path / "in"
    (src / "cityA").mkdir(parents=True)
    (src / "cityB" / "deeper").mkdir(parents=True)
    a, b = demo.images[:2]
    shutil.copy(a, src / "cityA" / "frame_a.png")
    cv2.imwrite(str(src / "cityB" / "deeper" / "frame_b.jpg"), cv2.imread(b))
    (src / "cityA" / "notes.md").write_text("not an image")
    save = tmp_path / "result"
    rc, _, err = run_main(capfd, predict_cli.main, ["--config", demo.cfg, "--model_path", demo.weights,
                                                    "--image_path", src, "--save_dir", save, "--device", "cpu",
                                                    "--threshold", "0.0", "--stuff_area", "16"])
    assert rc == 0, err
    assert "warning: skipping non-image file" in err and "notes.md" in err
    for stem in ("cityA/frame_a", "cityB/deeper/frame_b"):
        for kind, suffix in predict_mod.OUTPUT_SUFFIXES.items():
            assert os.path.isfile(str(save / (stem + suffix))), stem + suffix
    assert not any("notes" in f for _, _, fs in os.walk(save) for f in fs)

    image = read_image(str(src / "cityA" / "frame_a.png"))
    raw = read_panoptic_png(str(save / "cityA/frame_a_panoptic_raw.png")).astype(np.int64)
    assert raw.shape == image.shape[:2]
    cls, inst = raw // 1000, raw % 1000
    assert (((cls >= 0) & (cls < 19)) | (raw == 255000)).all()
    # with threshold 0 the untrained centre head gives centres, so thing instances exist
    thing = (inst > 0)
    assert thing.any() and (np.isin(cls[thing], np.arange(11, 19))).all()
    assert not ((inst > 0) & (cls < 11)).any()  # stuff classes carry no instance number
    # stuff pixels (not next to a thing) look the same in the panoptic and semantic pictures:
    # both blend the pixel's semantic class colour
    pan_pic = cv2.imread(str(save / "cityA/frame_a_panoptic.png"))
    sem_pic = cv2.imread(str(save / "cityA/frame_a_semantic.png"))
    near_thing = thing.copy()
    near_thing[1:] |= thing[:-1]
    near_thing[:-1] |= thing[1:]
    near_thing[:, 1:] |= thing[:, :-1]
    near_thing[:, :-1] |= thing[:, 1:]
    stuff = (inst == 0) & (raw != 255000) & ~near_thing
    assert stuff.any()
    assert (pan_pic[stuff] == sem_pic[stuff]).all()
    # void pixels (not next to a thing) are left as the image in the panoptic picture
    void = (raw == 255000) & ~near_thing
    if void.any():
        assert (pan_pic[void][:, ::-1] == image[void]).all()


def test_txt_list_and_rank_sharding(demo, tmp_path):
    imgs = demo.images[:3]
    lst = tmp_path / "list.txt"
    # a relative path (to the list's folder), an absolute one, a comment and a blank line
    local = tmp_path / "local.png"
    shutil.copy(imgs[0], local)
    lst.write_text("# images\nlocal.png\n\n{}\n{}\n".format(imgs[1], imgs[2]))
    images, root = predict_mod.collect_images(str(lst))
    assert images == [str(local), os.path.abspath(imgs[1]), os.path.abspath(imgs[2])]

    cfg = load_config(demo.cfg)
    builder, model = build_model(cfg, demo.cfg, demo.weights)
    meta = dataset_metadata(cfg, builder, demo.cfg)
    predictor = build_predictor(model, cfg, demo.cfg, builder, meta=meta)
    done = predict_mod.predict(predictor, images, root, str(tmp_path / "out"), meta.palette, meta.label_divisor,
                               rank=1, nranks=2, progress=False)
    # rank 1 of 2 takes images 1, 3, 5, ...
    assert [d[0] for d in done] == [images[1]]
    written = sorted(f for _, _, fs in os.walk(str(tmp_path / "out")) for f in fs)
    stem = os.path.splitext(os.path.basename(images[1]))[0]
    assert written == sorted(stem + s for s in predict_mod.OUTPUT_SUFFIXES.values())


@pytest.mark.parametrize("case", ["missing", "empty_dir", "only_text", "bad_list", "not_image", "save_dir_is_file"])
def test_bad_input_gives_one_line_error(demo, tmp_path, capfd, case):
    image_path = str(tmp_path / "nothing_here")
    save_dir = str(tmp_path / "out")
    expected = image_path
    if case == "empty_dir":
        os.makedirs(image_path)
    elif case == "only_text":
        os.makedirs(image_path)
        open(os.path.join(image_path, "a.txt"), "w").close()
    elif case == "bad_list":
        image_path = str(tmp_path / "list.txt")
        with open(image_path, "w") as f:
            f.write("missing_image.png\n")
        expected = "missing_image.png"
    elif case == "not_image":
        image_path = str(tmp_path / "model.yml")
        open(image_path, "w").close()
        expected = image_path
    elif case == "save_dir_is_file":
        image_path = demo.images[0]
        save_dir = str(tmp_path / "a_file")
        open(save_dir, "w").close()
        expected = save_dir
    rc, _, err = run_main(capfd, predict_cli.main, ["--config", demo.cfg, "--model_path", demo.weights,
                                                    "--image_path", image_path, "--save_dir", save_dir])
    assert expected in error_line(rc, err)


def test_predict_script_error(demo, tmp_path):
    """The real script in a subprocess: a missing --image_path is one line, exit code 2."""
    missing = str(tmp_path / "no_such_folder")
    rc, _, err = run_script(os.path.join(CONTRIB, "predict.py"),
                            ["--config", demo.cfg, "--model_path", demo.weights, "--image_path", missing,
                             "--save_dir", tmp_path / "out"], cwd=CONTRIB, timeout=120)
    assert missing in error_line(rc, err)


def test_aug_pred_multi_scale_flip(demo, tmp_path, capfd):
    image = demo.images[0]
    save = str(tmp_path / "aug")
    args = ["--config", demo.cfg, "--model_path", demo.weights, "--image_path", image, "--save_dir", save]
    rc, _, err = run_main(capfd, predict_cli.main, args + ["--aug_pred", "--scales", "0.75", "1.0",
                                                           "--flip_horizontal"])
    assert rc == 0, err
    stem = os.path.splitext(os.path.basename(image))[0]
    raw = read_panoptic_png(os.path.join(save, stem + "_panoptic_raw.png"))
    assert raw.shape == read_image(image).shape[:2]
    rc, _, err = run_main(capfd, predict_cli.main, args + ["--aug_pred", "--scales", "1.0", "-2"])
    assert "--scales" in error_line(rc, err)


@pytest.mark.slow
def test_two_rank_prediction_writes_each_image_once(demo, tmp_path, capfd):
    src = tmp_path / "in"
    src.mkdir()
    for p in demo.images[:3]:  # 3 images over 2 ranks: an uneven split
        shutil.copy(p, src / os.path.basename(p))
    two, one, logs = tmp_path / "two", tmp_path / "one", tmp_path / "logs"
    args = ["--config", demo.cfg, "--model_path", demo.weights, "--image_path", src, "--device", "cpu",
            "--threshold", "0.0", "--save_panoptic_json"]
    rc, out, _ = run_script(os.path.join(CONTRIB, "predict.py"), args + ["--save_dir", two], cwd=tmp_path,
                            launch=2, log_dir=logs, merge_output=True)
    log0, log1 = (open(str(logs / "workerlog.{}".format(r))).read() for r in (0, 1))
    assert rc == 0, out + log0 + log1
    # rank 0 takes images 0 and 2, rank 1 image 1
    assert "saved the results of 2 image(s) of rank 0" in log0
    assert "saved the results of 1 image(s) of rank 1" in log1
    rc, _, err = run_main(capfd, predict_cli.main, args + ["--save_dir", one])
    assert rc == 0, err
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(str(src)))
    expected = sorted(s + suffix for s in stems for suffix in predict_mod.OUTPUT_SUFFIXES.values())
    official = ["panoptic_predictions", "panoptic_predictions.json"]
    assert sorted(os.listdir(str(two))) == sorted(expected + official)
    # one json with every rank's images, the same as one process writes
    assert json.load(open(str(two / official[1]))) == json.load(open(str(one / official[1])))
    assert len(json.load(open(str(two / official[1])))["annotations"]) == 3
    for s in stems:
        np.testing.assert_array_equal(read_panoptic_png(str(two / official[0] / (s + ".png"))),
                                      read_panoptic_png(str(one / official[0] / (s + ".png"))))
    for s in stems:
        a = read_panoptic_png(str(two / (s + "_panoptic_raw.png")))
        b = read_panoptic_png(str(one / (s + "_panoptic_raw.png")))
        np.testing.assert_array_equal(a, b)
        for suffix in ("_panoptic.png", "_semantic.png", "_instance.png"):
            assert hashlib.sha1((two / (s + suffix)).read_bytes()).digest() == \
                hashlib.sha1((one / (s + suffix)).read_bytes()).digest()
