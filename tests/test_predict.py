"""predict.py on the demo data with the demo config and freshly initialised (untrained) weights."""
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import yaml

from paddleseg_ext.core import predict as predict_mod
from paddleseg_ext.cli.common import run_cli
from paddleseg_ext.utils import read_image, read_panoptic_png

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(ROOT, "configs", "panoptic_deeplab", "panoptic_deeplab_demo_cpu.yml")
CONTRIB = os.path.join(ROOT, "contrib", "PanopticDeepLab")


def make_config_and_weights(demo_root, out_dir):
    """The demo config pointing at `demo_root`, and untrained weights saved as model.pdparams."""
    from paddleseg.cvlibs import Config, SegBuilder

    with open(DEMO_CONFIG) as f:
        dic = yaml.safe_load(f)
    for key in ("train_dataset", "val_dataset"):
        dic[key]["dataset_root"] = demo_root
    cfg_path = os.path.join(out_dir, "demo.yml")
    with open(cfg_path, "w") as f:
        yaml.safe_dump(dic, f)
    # this seed's untrained semantic head mixes several stuff and thing classes on the demo frames
    paddle.seed(1)
    model = SegBuilder(Config(cfg_path)).model
    weights = os.path.join(out_dir, "model.pdparams")
    paddle.save(model.state_dict(), weights)
    return cfg_path, weights


def val_images(demo_root):
    found = []
    for d, _, files in os.walk(os.path.join(demo_root, "leftImg8bit", "val")):
        found += [os.path.join(d, f) for f in files if f.endswith(".png")]
    return sorted(found)


@pytest.fixture(scope="module")
def setup(demo_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("predict"))
    cfg, weights = make_config_and_weights(demo_root, out)
    return {"cfg": cfg, "weights": weights, "images": val_images(demo_root), "tmp": out}


def _one_error_line(err):
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_predict_folder_writes_every_output(setup, tmp_path, capfd):
    src = tmp_path / "in"
    (src / "cityA").mkdir(parents=True)
    (src / "cityB" / "deeper").mkdir(parents=True)
    a, b = setup["images"][:2]
    shutil.copy(a, src / "cityA" / "frame_a.png")
    cv2.imwrite(str(src / "cityB" / "deeper" / "frame_b.jpg"), cv2.imread(b))
    (src / "cityA" / "notes.md").write_text("not an image")
    save = tmp_path / "result"
    rc = run_cli(predict_mod.main, ["--config", setup["cfg"], "--model_path", setup["weights"],
                                    "--image_path", str(src), "--save_dir", str(save), "--device", "cpu",
                                    "--threshold", "0.0", "--stuff_area", "16"])
    err = capfd.readouterr().err
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


def test_txt_list_and_rank_sharding(setup, tmp_path):
    imgs = setup["images"][:3]
    lst = tmp_path / "list.txt"
    # a relative path (to the list's folder), an absolute one, a comment and a blank line
    local = tmp_path / "local.png"
    shutil.copy(imgs[0], local)
    lst.write_text("# images\nlocal.png\n\n{}\n{}\n".format(imgs[1], imgs[2]))
    images, root = predict_mod.collect_images(str(lst))
    assert images == [str(local), os.path.abspath(imgs[1]), os.path.abspath(imgs[2])]

    from paddleseg_ext.core.inference import build_val_transforms, load_model, postprocess_params

    cfg, builder, model = load_model(setup["cfg"], setup["weights"])
    meta = predict_mod.dataset_metadata(cfg, builder)
    post = postprocess_params(cfg, meta)
    done = predict_mod.predict(model, images, root, str(tmp_path / "out"), build_val_transforms(builder, setup["cfg"]),
                               post, meta.palette, rank=1, nranks=2, progress=False)
    # rank 1 of 2 takes images 1, 3, 5, ...
    assert [d[0] for d in done] == [images[1]]
    written = sorted(f for _, _, fs in os.walk(str(tmp_path / "out")) for f in fs)
    stem = os.path.splitext(os.path.basename(images[1]))[0]
    assert written == sorted(stem + s for s in predict_mod.OUTPUT_SUFFIXES.values())


@pytest.mark.parametrize("case", ["missing", "empty_dir", "only_text", "bad_list", "not_image", "save_dir_is_file"])
def test_bad_input_gives_one_line_error(setup, tmp_path, capfd, case):
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
        image_path = setup["images"][0]
        save_dir = str(tmp_path / "a_file")
        open(save_dir, "w").close()
        expected = save_dir
    rc = run_cli(predict_mod.main, ["--config", setup["cfg"], "--model_path", setup["weights"],
                                    "--image_path", image_path, "--save_dir", save_dir])
    err = capfd.readouterr().err
    assert rc == 2
    line = _one_error_line(err)
    assert expected in line


def test_predict_script_error_and_help(setup, tmp_path):
    missing = str(tmp_path / "no_such_folder")
    proc = subprocess.run([sys.executable, "predict.py", "--config", setup["cfg"], "--model_path", setup["weights"],
                           "--image_path", missing, "--save_dir", str(tmp_path / "out")],
                          cwd=CONTRIB, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert missing in _one_error_line(proc.stderr)
    proc = subprocess.run([sys.executable, "predict.py", "--help"], cwd=CONTRIB, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "--image_path" in proc.stdout and "--flip_horizontal" in proc.stdout


def test_aug_pred_multi_scale_flip(setup, tmp_path, capfd):
    image = setup["images"][0]
    save = str(tmp_path / "aug")
    rc = run_cli(predict_mod.main, ["--config", setup["cfg"], "--model_path", setup["weights"], "--image_path", image,
                                    "--save_dir", save, "--aug_pred", "--scales", "0.75 1.0", "--flip_horizontal"])
    assert rc == 0, capfd.readouterr().err
    stem = os.path.splitext(os.path.basename(image))[0]
    raw = read_panoptic_png(os.path.join(save, stem + "_panoptic_raw.png"))
    assert raw.shape == read_image(image).shape[:2]
    rc = run_cli(predict_mod.main, ["--config", setup["cfg"], "--model_path", setup["weights"], "--image_path", image,
                                    "--save_dir", save, "--aug_pred", "--scales", "1.0 -2"])
    assert rc == 2 and "--scales" in _one_error_line(capfd.readouterr().err)
