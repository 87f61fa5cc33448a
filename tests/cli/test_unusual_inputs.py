"""Unusual but valid inputs just work: grayscale, RGBA, 16-bit, tiny, odd-sized and 1x1 images, frames
without things or all void, predictions without any centre; through the datasets, predict.py, and a
short train.py + val.py run."""
import json
import os

import cv2
import numpy as np
import pytest

from paddleseg_ext.cli import predict as predict_cli
from paddleseg_ext.cli import val as val_cli
from paddleseg_ext.utils import read_panoptic_png, write_panoptic_png
from tests.conftest import CONTRIB, run_main, run_script, write_config


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
def test_predict_unusual_images(demo_cli, tmp_path, capfd, threshold):
    """threshold 0: every local maximum is a centre; 2.0: no centre at all (empty instance predictions)."""
    images = _unusual_images(str(tmp_path / "in"), demo_cli.pad[::-1])
    save = tmp_path / "pred"
    rc, out, err = run_main(capfd, predict_cli.main, ["--config", demo_cli.cfg, "--model_path", demo_cli.weights,
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


def test_dataset_handles_unusual_frames(demo_cli, unusual_root):
    from paddleseg_ext.datasets import CityscapesPanoptic

    assert demo_cli.crop == demo_cli.pad  # the demo config trains on crops of the val size
    cw, ch = demo_cli.crop
    for mode in ("train", "val"):
        ds = CityscapesPanoptic(unusual_root, demo_cli.dic[mode + "_dataset"]["transforms"], mode=mode, sigma=4,
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
def test_train_and_val_on_unusual_frames(demo_cli, unusual_root, tmp_path, capfd):
    cfg = write_config(demo_cli.dic, str(tmp_path / "cfg.yml"), dataset_root=unusual_root)
    save = str(tmp_path / "out")
    # one epoch of batch 2 (every frame once: permutations per epoch), two processes of data loading
    rc, out, err = run_script(os.path.join(CONTRIB, "train.py"),
                              ["--config", cfg, "--save_dir", save, "--iters", "3", "--batch_size", "2", "--device",
                               "cpu", "--log_iters", "1", "--num_workers", "2"], cwd=tmp_path, timeout=180)
    assert rc == 0, out + err
    losses = [float(x.split("loss: ")[1].split()[0]) for x in out.splitlines() if "[TRAIN] iter:" in x]
    assert len(losses) == 3 and all(np.isfinite(losses)), out
    results = str(tmp_path / "m.json")
    rc, out, err = run_main(capfd, val_cli.main, ["--config", cfg, "--model_path", os.path.join(save, "iter_3"),
                                                  "--device", "cpu", "--results_file", results, "--threshold", "0.0"])
    assert rc == 0, err
    m = json.load(open(results))
    assert m["num_images"] == len(FRAMES)
    for g in ("All", "Things", "Stuff"):
        assert 0.0 <= m["panoptic"][g]["pq"] <= 1.0
    assert 0.0 <= m["semantic"]["mIoU"] <= 1.0
