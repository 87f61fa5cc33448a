"""Bad input gets one clear line (`error: ...`, exit code 2, no traceback) from train.py / val.py /
predict.py, and unusual but valid inputs (grayscale, RGBA, 16-bit, tiny, odd sizes, frames without
things or all void, no centre found) just work. Most cases call the scripts' `main` in this process
through `run_cli` (what `__main__` does); the data-loader cases run the real scripts in subprocesses,
where a worker's error used to hang the loader or print tracebacks."""
import copy
import glob
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

from paddleseg_ext.cli.common import run_cli
from paddleseg_ext.utils import read_panoptic_png, write_panoptic_png
from test_predict import CONTRIB, ROOT, make_config_and_weights, val_images

def _load_script(name):
    spec = importlib.util.spec_from_file_location("contrib_{}_script".format(name), os.path.join(CONTRIB, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SCRIPTS = {}


def _main(name):
    if name not in SCRIPTS:
        SCRIPTS[name] = _load_script(name)
    return SCRIPTS[name].main


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_inproc(capfd, script, args):
    capfd.readouterr()
    rc = run_cli(_main(script), args)
    cap = capfd.readouterr()
    return rc, cap.out, cap.err


def run_subprocess(script, args, cwd, timeout=180):
    p = subprocess.run([sys.executable, os.path.join(CONTRIB, script + ".py")] + args, cwd=cwd, env=_env(),
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def error_line(rc, err):
    """The single `error:` line of a failed run (exit code 2, no traceback, no decoder noise)."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    assert "libpng" not in err and "Corrupt JPEG" not in err and "Premature end" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def digest(folder):
    """{relative path: sha1} of every file under `folder`."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, folder)] = hashlib.sha1(open(p, "rb").read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def setup(demo_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reliability_inputs"))
    cfg, weights = make_config_and_weights(demo_root, out)
    with open(cfg) as f:
        dic = yaml.safe_load(f)

    def size_of(transforms, name, key):
        (t,) = [t for t in transforms if t["type"] == name]
        return tuple(t[key])  # [w, h]

    return {"cfg": cfg, "weights": weights, "dic": dic, "root": demo_root, "tmp": out,
            "image": val_images(demo_root)[0],
            "crop": size_of(dic["train_dataset"]["transforms"], "PanopticRandomPaddingCrop", "crop_size"),
            "pad": size_of(dic["val_dataset"]["transforms"], "PanopticPadding", "target_size")}


def write_config(setup, path, mutate=None, dataset_root=None):
    dic = copy.deepcopy(setup["dic"])
    if dataset_root is not None:
        for k in ("train_dataset", "val_dataset"):
            dic[k]["dataset_root"] = dataset_root
    if mutate is not None:
        mutate(dic)
    with open(path, "w") as f:
        yaml.safe_dump(dic, f)
    return path


def script_args(script, setup, cfg, tmp_path, model_path=None):
    if script == "train":
        return ["--config", cfg, "--save_dir", str(tmp_path / "out"), "--iters", "2", "--batch_size", "1",
                "--device", "cpu", "--log_iters", "1"]
    if script == "val":
        return ["--config", cfg, "--model_path", model_path or setup["weights"], "--device", "cpu",
                "--results_file", str(tmp_path / "metrics.json"), "--max_images", "1"]
    return ["--config", cfg, "--model_path", model_path or setup["weights"], "--image_path", setup["image"],
            "--save_dir", str(tmp_path / "pred"), "--device", "cpu"]


# ---------------------------------------------------------------- configs

CONFIG_CASES = {
    # case: (mutation of the demo config, words the message must contain)
    "unknown_model_type": (lambda d: d["model"].update(type="NoSuchModel"), ["NoSuchModel"]),
    "misspelled_model_arg": (lambda d: d["model"].update(num_clases=19), ["num_clases", "model"]),
    "unknown_top_level_key": (lambda d: d.update(batchsize=2), ["batchsize", "did you mean 'batch_size'"]),
    "unknown_postprocess_key": (lambda d: d["postprocess"].update(treshold=0.3), ["treshold", "postprocess"]),
    "num_classes_model_vs_dataset": (lambda d: d["model"].update(num_classes=7), ["(7)", "(19)"]),
    "postprocess_thing_ids_out_of_range": (lambda d: d["postprocess"].update(thing_ids=[11, 40]),
                                           ["thing_ids", "[40]", "num_classes=19"]),
    "postprocess_thing_ids_differ": (lambda d: d["postprocess"].update(thing_ids=[11, 12]),
                                     ["thing_ids", "[11, 12]", "differ"]),
}


@pytest.mark.parametrize("script", ["train", "val", "predict"])
@pytest.mark.parametrize("case", ["missing_file"] + sorted(CONFIG_CASES))
def test_bad_config(setup, tmp_path, capfd, script, case):
    if case == "missing_file":
        cfg, words = str(tmp_path / "no_such_config.yml"), ["config file not found"]
    else:
        mutate, words = CONFIG_CASES[case]
        cfg = write_config(setup, str(tmp_path / "bad.yml"), mutate)
    rc, out, err = run_inproc(capfd, script, script_args(script, setup, cfg, tmp_path))
    line = error_line(rc, err)
    assert cfg in line
    for w in words:
        assert w in line, (w, line)
    if script == "train":
        assert not glob.glob(str(tmp_path / "out" / "iter_*"))


@pytest.mark.parametrize("script", ["train", "val"])
@pytest.mark.parametrize("case", ["root_missing", "root_empty", "image_without_label"])
def test_bad_dataset_tree(setup, tmp_path, capfd, script, case):
    root = str(tmp_path / "data")
    mode = "train" if script == "train" else "val"
    if case == "root_empty":
        os.makedirs(root)
        expect = os.path.join(root, "leftImg8bit", mode)
    elif case == "image_without_label":
        shutil.copytree(setup["root"], root)
        first = sorted(glob.glob(os.path.join(root, "leftImg8bit", mode, "*", "*.png")))[0]
        extra = first.replace("_000019_leftImg8bit", "_000123_leftImg8bit")
        shutil.copy(first, extra)
        expect = extra
    else:
        expect = root
    cfg = write_config(setup, str(tmp_path / "cfg.yml"), dataset_root=root)
    rc, out, err = run_inproc(capfd, script, script_args(script, setup, cfg, tmp_path))
    assert expect in error_line(rc, err)


def _corrupt_dataset(src, dst, case, mode):
    """A copy of the demo dataset with every `mode` image (or label) broken as `case` says; returns
    (the broken paths, a word the error must contain)."""
    shutil.copytree(src, dst)
    images = sorted(glob.glob(os.path.join(dst, "leftImg8bit", mode, "*", "*.png")))
    labels = sorted(glob.glob(os.path.join(dst, "gtFine", "cityscapes_panoptic_{}_trainId".format(mode), "*.png")))
    for img, lab in zip(images, labels):
        if case == "truncated_png_image":
            data = open(img, "rb").read()
            open(img, "wb").write(data[: len(data) // 2])
        elif case == "garbage_png_image":
            open(img, "wb").write(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(300))
        elif case == "truncated_jpeg_image":
            # JPEG content (OpenCV reads by content, not by name), cut in the middle of the scan
            ok, buf = cv2.imencode(".jpg", cv2.imread(img))
            open(img, "wb").write(buf.tobytes()[: buf.size // 2])
        elif case == "bitflip_png_label":
            data = bytearray(open(lab, "rb").read())
            data[len(data) // 2] ^= 0xFF
            open(lab, "wb").write(bytes(data))
        elif case == "truncated_png_label":
            data = open(lab, "rb").read()
            open(lab, "wb").write(data[: len(data) // 2])
        elif case == "ids_not_in_json":
            ids = read_panoptic_png(lab)
            ids[:3, :3] = 424242
            write_panoptic_png(lab, ids)
    broken = labels if "label" in case or case == "ids_not_in_json" else images
    word = "424242" if case == "ids_not_in_json" else ("JPEG" if "jpeg" in case else "PNG")
    return broken, word


CORRUPT_CASES = ["truncated_png_image", "garbage_png_image", "truncated_jpeg_image", "bitflip_png_label",
                 "truncated_png_label", "ids_not_in_json"]


@pytest.mark.parametrize("case", CORRUPT_CASES)
def test_corrupt_files_fail_val_clearly(setup, tmp_path, capfd, case):
    broken, word = _corrupt_dataset(setup["root"], str(tmp_path / "data"), case, "val")
    cfg = write_config(setup, str(tmp_path / "cfg.yml"), dataset_root=str(tmp_path / "data"))
    rc, out, err = run_inproc(capfd, "val", script_args("val", setup, cfg, tmp_path))
    line = error_line(rc, err)
    assert broken[0] in line and word in line, line


@pytest.mark.slow
@pytest.mark.parametrize("case,workers", [("truncated_png_image", 0), ("truncated_jpeg_image", 2),
                                          ("truncated_png_label", 0), ("ids_not_in_json", 2)])
def test_corrupt_files_fail_training_clearly_and_keep_checkpoints(setup, tmp_path, case, workers):
    """An error inside the DataLoader (thread or worker process) surfaces as one line; the checkpoint the
    run resumed from is left byte for byte as it was."""
    import paddle
    from paddleseg.cvlibs import Config, SegBuilder

    from paddleseg_ext.core import checkpoint as ckpt

    data = str(tmp_path / "data")
    broken, word = _corrupt_dataset(setup["root"], data, case, "train")
    cfg = write_config(setup, str(tmp_path / "cfg.yml"), dataset_root=data)
    save = str(tmp_path / "out")
    os.makedirs(save)
    builder = SegBuilder(Config(setup["cfg"]))
    paddle.seed(0)
    ckpt.save_checkpoint(save, 2, builder.model, builder.optimizer, {"best_pq": 0.25, "best_iter": 2})
    before = digest(save)
    rc, out, err = run_subprocess("train", ["--config", cfg, "--save_dir", save, "--resume_model", save,
                                            "--iters", "4", "--batch_size", "1", "--device", "cpu",
                                            "--num_workers", str(workers)], cwd=str(tmp_path), timeout=120)
    line = error_line(rc, err)
    assert word in line and any(b in line for b in broken), line
    assert digest(save) == before


@pytest.mark.slow
def test_corrupt_val_file_during_training_keeps_the_trained_iterations(setup, tmp_path):
    """--do_eval meets an unreadable val image at the first evaluation: one line, and the iterations trained
    so far are saved before stopping."""
    import paddle

    broken, word = _corrupt_dataset(setup["root"], str(tmp_path / "data"), "truncated_png_image", "val")
    cfg = write_config(setup, str(tmp_path / "cfg.yml"),
                       lambda d: d["val_dataset"].update(dataset_root=str(tmp_path / "data")))
    save = str(tmp_path / "out")
    rc, out, err = run_subprocess("train", ["--config", cfg, "--save_dir", save, "--iters", "4", "--save_interval",
                                            "2", "--do_eval", "--batch_size", "1", "--device", "cpu"],
                                  cwd=str(tmp_path), timeout=120)
    line = error_line(rc, err)
    assert broken[0] in line and word in line
    assert sorted(os.listdir(save)) == ["iter_2"]
    assert sorted(os.listdir(os.path.join(save, "iter_2"))) == ["model.pdopt", "model.pdparams", "train_state.json"]
    assert len(paddle.load(os.path.join(save, "iter_2", "model.pdparams"))) > 100


# ---------------------------------------------------------------- weights and output folders

@pytest.fixture(scope="module")
def bad_weights(setup):
    """Broken copies of the weights: the semantic classifier made for 21 classes, or left out; a cut file."""
    import paddle

    state = paddle.load(setup["weights"])
    (key,) = [k for k, v in state.items() if "semantic_head" in k and k.endswith("weight") and v.shape[0] == 19]
    d = os.path.join(setup["tmp"], "bad_weights")
    os.makedirs(d, exist_ok=True)
    rest = list(state[key].shape[1:])
    wrong = dict(state)
    wrong[key] = paddle.zeros([21] + rest)
    paddle.save(wrong, os.path.join(d, "wrong_shape.pdparams"))
    missing = {k: v for k, v in state.items() if k != key}
    paddle.save(missing, os.path.join(d, "missing_key.pdparams"))
    data = open(setup["weights"], "rb").read()
    open(os.path.join(d, "truncated.pdparams"), "wb").write(data[: len(data) // 2])
    return {"dir": d, "key": key, "mismatch": "{} {} vs {}".format(key, [21] + rest, [19] + rest)}


@pytest.mark.parametrize("script", ["val", "predict"])
@pytest.mark.parametrize("case", ["missing", "wrong_shape", "missing_key", "truncated"])
def test_bad_model_path(setup, bad_weights, tmp_path, capfd, script, case):
    path = os.path.join(bad_weights["dir"], case + ".pdparams")
    rc, out, err = run_inproc(capfd, script, script_args(script, setup, setup["cfg"], tmp_path, model_path=path))
    line = error_line(rc, err)
    assert path in line
    if case == "wrong_shape":
        # the key and both shapes, nothing skipped silently
        assert bad_weights["mismatch"] in line
    if case == "missing_key":
        assert "missing in checkpoint: {}".format(bad_weights["key"]) in line


def test_resume_from_checkpoint_that_does_not_fit(setup, bad_weights, tmp_path, capfd):
    save = tmp_path / "out"
    os.makedirs(save / "iter_2")
    shutil.copy(os.path.join(bad_weights["dir"], "wrong_shape.pdparams"), save / "iter_2" / "model.pdparams")
    (save / "iter_2" / "model.pdopt").write_bytes(b"unused")
    before = digest(str(save))
    args = script_args("train", setup, setup["cfg"], tmp_path) + ["--resume_model", str(save)]
    rc, out, err = run_inproc(capfd, "train", args)
    line = error_line(rc, err)
    assert str(save / "iter_2" / "model.pdparams") in line and bad_weights["mismatch"] in line
    assert digest(str(save)) == before


@pytest.mark.parametrize("case", ["train_save_dir", "val_results_file", "val_results_file_is_dir",
                                  "val_save_predictions"])
def test_unwritable_outputs_fail_before_the_work(setup, tmp_path, capfd, case):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder is expected")
    script = case.split("_")[0]
    args = script_args(script, setup, setup["cfg"], tmp_path)
    bad = str(blocker / "sub")
    if case == "train_save_dir":
        args[args.index("--save_dir") + 1] = bad
    elif case == "val_results_file":
        bad = str(blocker / "metrics.json")
        args[args.index("--results_file") + 1] = bad
    elif case == "val_results_file_is_dir":
        bad = str(tmp_path)
        args[args.index("--results_file") + 1] = bad
    else:
        args += ["--save_predictions", bad]
    rc, out, err = run_inproc(capfd, script, args)
    assert bad in error_line(rc, err)
    # refused before training / evaluating
    assert "[TRAIN] iter" not in out and "[VAL]" not in out


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write to read-only folders")
def test_read_only_results_folder(setup, tmp_path, capfd):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        args = script_args("val", setup, setup["cfg"], tmp_path)
        args[args.index("--results_file") + 1] = str(ro / "m.json")
        rc, out, err = run_inproc(capfd, "val", args)
        assert str(ro) in error_line(rc, err)
    finally:
        os.chmod(ro, 0o755)


def test_predict_corrupt_image_is_reported_and_the_others_written(setup, tmp_path, capfd):
    src = tmp_path / "in"
    src.mkdir()
    good = val_images(setup["root"])[:2]
    for p in good:
        shutil.copy(p, src / os.path.basename(p))
    data = open(good[0], "rb").read()
    bad = src / "zz_truncated.png"
    bad.write_bytes(data[: len(data) // 3])
    save = tmp_path / "pred"
    rc, out, err = run_inproc(capfd, "predict", ["--config", setup["cfg"], "--model_path", setup["weights"],
                                                 "--image_path", str(src), "--save_dir", str(save)])
    line = error_line(rc, err)
    assert str(bad) in line and "1 of 3" in line
    assert "warning: skipping" in err
    for p in good:
        stem = os.path.splitext(os.path.basename(p))[0]
        assert os.path.isfile(str(save / (stem + "_panoptic_raw.png")))
    assert not glob.glob(str(save / "zz_truncated*"))


def test_predict_image_larger_than_the_padding_names_the_image(setup, tmp_path, capfd):
    big = str(tmp_path / "big.png")
    pad_w, pad_h = setup["pad"]
    cv2.imwrite(big, np.zeros((pad_h + 3, pad_w + 5, 3), np.uint8))  # larger than the val padding
    rc, out, err = run_inproc(capfd, "predict", ["--config", setup["cfg"], "--model_path", setup["weights"],
                                                 "--image_path", big, "--save_dir", str(tmp_path / "pred")])
    line = error_line(rc, err)
    assert big in line and "target_size" in line


def test_predict_script_subprocess_bad_config(setup, tmp_path):
    """The real script (no in-process shortcut): unknown model type, one line, exit 2."""
    cfg = write_config(setup, str(tmp_path / "bad.yml"), lambda d: d["model"].update(type="NoSuchModel"))
    rc, out, err = run_subprocess("predict", ["--config", cfg, "--model_path", setup["weights"],
                                              "--image_path", setup["image"], "--save_dir", str(tmp_path / "p")],
                                  cwd=str(tmp_path))
    assert "NoSuchModel" in error_line(rc, err)


# ---------------------------------------------------------------- inputs that must just work

def _unusual_images(folder, full_hw):
    """name -> (file, (h, w)): grayscale, RGBA, 16-bit RGB and gray, tiny, odd, 1x1, JPEG, the full size."""
    rng = np.random.default_rng(3)
    os.makedirs(folder, exist_ok=True)
    specs = {
        "gray.png": rng.integers(0, 255, (37, 53), dtype=np.uint8),
        "rgba.png": rng.integers(0, 255, (50, 61, 4), dtype=np.uint8),
        "rgb16.png": rng.integers(0, 65535, (45, 70, 3), dtype=np.uint16),
        "gray16.png": rng.integers(0, 65535, (33, 41), dtype=np.uint16),
        "tiny.png": rng.integers(0, 255, (5, 7, 3), dtype=np.uint8),
        "one_pixel.png": rng.integers(0, 255, (1, 1, 3), dtype=np.uint8),
        "odd.jpg": rng.integers(0, 255, (37, 53, 3), dtype=np.uint8),
        "full.png": rng.integers(0, 255, full_hw + (3,), dtype=np.uint8),
    }
    out = {}
    for name, arr in specs.items():
        path = os.path.join(folder, name)
        assert cv2.imwrite(path, arr)
        out[name] = (path, arr.shape[:2])
    return out


@pytest.mark.parametrize("threshold", ["0.0", "2.0"])
def test_predict_unusual_images(setup, tmp_path, capfd, threshold):
    """threshold 0: every local maximum is a centre; 2.0: no centre at all (empty instance predictions)."""
    images = _unusual_images(str(tmp_path / "in"), setup["pad"][::-1])
    save = tmp_path / "pred"
    rc, out, err = run_inproc(capfd, "predict", ["--config", setup["cfg"], "--model_path", setup["weights"],
                                                 "--image_path", str(tmp_path / "in"), "--save_dir", str(save),
                                                 "--threshold", threshold, "--stuff_area", "4"])
    assert rc == 0, err
    n_instances = 0
    for name, (path, hw) in images.items():
        stem = os.path.splitext(name)[0]
        for suffix in ("_panoptic.png", "_semantic.png", "_instance.png"):
            pic = cv2.imread(str(save / (stem + suffix)))
            assert pic is not None and pic.shape == hw + (3,), (name, suffix)
        raw = read_panoptic_png(str(save / (stem + "_panoptic_raw.png"))).astype(np.int64)
        assert raw.shape == hw, name
        cls, inst = raw // 1000, raw % 1000
        assert ((cls < 19) | (raw == 255000)).all(), name
        assert not ((inst > 0) & (cls < 11)).any(), name  # stuff carries no instance number
        n_instances += len(np.unique(raw[inst > 0]))
    if threshold == "2.0":
        assert n_instances == 0
    else:
        assert n_instances > 0


def _frame(h, w, kind):
    """(image uint8 [h,w,3] or other, panoptic ids [h,w], segments_info) of one synthetic frame."""
    ids = np.zeros((h, w), np.int64)
    segs = []
    if kind in ("stuff_and_things", "no_things"):
        ids[:] = 1
        segs.append({"id": 1, "category_id": 0, "iscrowd": 0})  # road
        ids[: h // 3] = 2
        segs.append({"id": 2, "category_id": 10, "iscrowd": 0})  # sky
    if kind == "stuff_and_things":
        ids[h // 3: h // 3 + max(h // 4, 1), w // 4: w // 4 + max(w // 4, 1)] = 11000 + 1
        segs.append({"id": 11001, "category_id": 11, "iscrowd": 0})  # a person
    for s in segs:
        m = ids == s["id"]
        ys, xs = np.nonzero(m)
        s["area"] = int(m.sum())
        s["bbox"] = [int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)]
    return ids, segs


FRAMES = {
    # name: (h, w, label kind, image kind)
    "tiny_things": (20, 30, "stuff_and_things", "rgb"),
    "odd_gray": (37, 53, "stuff_and_things", "gray"),
    "rgba_no_things": (64, 100, "no_things", "rgba"),
    "rgb16_all_void": (50, 70, "all_void", "rgb16"),
    "one_pixel_void": (1, 1, "all_void", "rgb"),
    "full_size": (128, 256, "stuff_and_things", "rgb"),
}


def make_unusual_dataset(root, mode):
    """A Cityscapes-layout dataset (trainId json/PNGs) holding the FRAMES of one mode."""
    rng = np.random.default_rng(7)
    img_dir = os.path.join(root, "leftImg8bit", mode, "oddcity")
    png_dir = os.path.join(root, "gtFine", "cityscapes_panoptic_{}_trainId".format(mode))
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(png_dir, exist_ok=True)
    images, anns = [], []
    for i, (name, (h, w, kind, img_kind)) in enumerate(sorted(FRAMES.items())):
        image_id = "oddcity_{:06d}_000019".format(i)
        shape = {"gray": (h, w), "rgba": (h, w, 4)}.get(img_kind, (h, w, 3))
        img = rng.integers(0, 65535 if img_kind == "rgb16" else 255, shape).astype(
            np.uint16 if img_kind == "rgb16" else np.uint8)
        cv2.imwrite(os.path.join(img_dir, image_id + "_leftImg8bit.png"), img)
        ids, segs = _frame(h, w, kind)
        write_panoptic_png(os.path.join(png_dir, image_id + "_gtFine_panoptic.png"), ids)
        images.append({"id": image_id, "file_name": image_id + "_leftImg8bit.png", "height": h, "width": w})
        anns.append({"image_id": image_id, "file_name": image_id + "_gtFine_panoptic.png", "segments_info": segs})
    with open(os.path.join(root, "gtFine", "cityscapes_panoptic_{}_trainId.json".format(mode)), "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": []}, f)
    return root


@pytest.fixture(scope="module")
def unusual_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("unusual") / "data")
    make_unusual_dataset(root, "train")
    make_unusual_dataset(root, "val")
    return root


def test_dataset_handles_unusual_frames(setup, unusual_root):
    from paddleseg_ext.datasets import CityscapesPanoptic

    assert setup["crop"] == setup["pad"]  # the demo config trains on crops of the val size
    cw, ch = setup["crop"]
    for mode in ("train", "val"):
        ds = CityscapesPanoptic(unusual_root, setup["dic"][mode + "_dataset"]["transforms"], mode=mode, sigma=4,
                                small_instance_area=256)
        assert len(ds) == len(FRAMES)
        for i, (name, (h, w, kind, _)) in enumerate(sorted(FRAMES.items())):
            s = ds[i]
            # train: random crop (padding small frames); val: bottom/right padding, both to ch x cw
            assert s["img"].shape == (3, ch, cw) and s["img"].dtype == np.float32, name
            assert np.isfinite(s["img"]).all()
            for k, shape in (("semantic", (ch, cw)), ("center", (1, ch, cw)), ("offset", (2, ch, cw)),
                             ("semantic_weights", (ch, cw)), ("center_weights", (ch, cw)),
                             ("offset_weights", (ch, cw)), ("panoptic", (ch, cw))):
                assert s[k].shape == shape, (name, k)
                assert np.isfinite(s[k]).all(), (name, k)
            sem = s["semantic"]
            assert set(np.unique(sem)) <= set(range(19)) | {255}, name
            if kind == "all_void":
                assert (sem == 255).all() and (s["panoptic"] == 255000).all(), name
            if kind != "stuff_and_things":
                assert s["center"].max() == 0 and (s["offset"] == 0).all(), name
            if mode == "val":
                # the frame sits top-left, the padding is void
                assert (sem[h:] == 255).all() and (sem[:, w:] == 255).all(), name
                if kind == "stuff_and_things":
                    assert s["center"].max() == pytest.approx(1.0), name
                    assert (sem[:h, :w] != 255).all(), name
            assert set(np.unique(s["semantic_weights"])) <= {0.0, 1.0, 3.0}, name


@pytest.mark.slow
def test_train_and_val_on_unusual_frames(setup, unusual_root, tmp_path, capfd):
    cfg = write_config(setup, str(tmp_path / "cfg.yml"), dataset_root=unusual_root)
    save = str(tmp_path / "out")
    # one epoch of batch 2 (every frame once: permutations per epoch), two processes of data loading
    rc, out, err = run_subprocess("train", ["--config", cfg, "--save_dir", save, "--iters", "3", "--batch_size",
                                            "2", "--device", "cpu", "--log_iters", "1", "--num_workers", "2"],
                                  cwd=str(tmp_path), timeout=180)
    assert rc == 0, out + err
    losses = [float(x.split("loss: ")[1].split()[0]) for x in out.splitlines() if "[TRAIN] iter:" in x]
    assert len(losses) == 3 and all(np.isfinite(losses)), out
    results = str(tmp_path / "m.json")
    rc, out, err = run_inproc(capfd, "val", ["--config", cfg, "--model_path", os.path.join(save, "iter_3"),
                                             "--device", "cpu", "--results_file", results, "--threshold", "0.0"])
    assert rc == 0, err
    m = json.load(open(results))
    assert m["num_images"] == len(FRAMES)
    for g in ("All", "Things", "Stuff"):
        assert 0.0 <= m["panoptic"][g]["pq"] <= 1.0
    assert 0.0 <= m["semantic"]["mIoU"] <= 1.0
