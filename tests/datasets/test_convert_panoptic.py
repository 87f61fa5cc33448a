"""tools/convert_panoptic.py (`paddleseg_ext.datasets.convert`): semantic+instance PNGs and labelme files
to the custom COCO panoptic layout. The written segments are compared with masks built in the tests
(by hand, or by rasterising each labelme shape on its own as labelme does), read back from the files."""
import base64
import filecmp
import json
import os

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw

from paddleseg_ext.cli import convert_panoptic as cli
from paddleseg_ext.cli import make_demo_dataset as demo_cli
from paddleseg_ext.datasets.convert import build_segments
from paddleseg_ext.utils import read_panoptic_png
from tests.conftest import error_line, load_benchmark, run_main

CATS = [{"id": 10000, "name": "person", "isthing": 1, "color": [220, 20, 60]},  # a thing at train id 0
        {"id": 7, "name": "road", "isthing": 0, "color": [128, 64, 128]},
        {"id": 23, "name": "car", "isthing": 1, "color": [0, 0, 142]},
        {"id": 205, "name": "sky", "isthing": 0, "color": [70, 130, 180]}]


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


def write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return str(path)


def read_back(root, split):
    """{image id: {(category_id, iscrowd, mask bytes)}} plus the json, from the written files; checks area
    and bbox of every segment against its mask."""
    with open(os.path.join(root, "annotations", "panoptic_{}.json".format(split))) as f:
        gt = json.load(f)
    out = {}
    for ann in gt["annotations"]:
        ids = read_panoptic_png(os.path.join(root, "annotations", "panoptic_" + split, ann["file_name"]))
        listed = {s["id"] for s in ann["segments_info"]}
        assert set(np.unique(ids[ids > 0]).tolist()) == listed
        segs = set()
        for s in ann["segments_info"]:
            mask = ids == s["id"]
            ys, xs = np.nonzero(mask)
            assert s["area"] == mask.sum()
            assert s["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            segs.add((s["category_id"], s["iscrowd"], mask.tobytes()))
        out[ann["image_id"]] = segs
    return out, gt


def expected_segments(sem, inst, cats):
    """Segments from a semantic/instance pair, written out class by class and instance by instance."""
    segs = set()
    for c in cats:
        cls = sem == c["id"]
        if not cls.any():
            continue
        if not c["isthing"]:
            segs.add((c["id"], 0, cls.tobytes()))
            continue
        for i in np.unique(inst[cls]):
            segs.add((c["id"], int(i == 0), (cls & (inst == i)).tobytes()))
    return segs


def si_inputs(tmp_path, frames, cats=CATS, name="in"):
    """Write images / semantic / instances folders and a categories file; frames: {stem: (sem, inst)}."""
    d = tmp_path / name
    for stem, (sem, inst) in frames.items():
        h, w = sem.shape
        img = ((np.arange(h * w * 3).reshape(h, w, 3) * 7) % 251).astype(np.uint8)
        write_png(d / "images" / (stem + ".jpg"), img)
        write_png(d / "semantic" / (stem + ".png"), sem)
        write_png(d / "instances" / (stem + ".png"), inst)
    cats_file = write_json(str(d / "categories.json"), cats)
    return ["semantic-instance", "--categories", cats_file, "--images", d / "images", "--semantic", d / "semantic",
            "--instances", d / "instances"]


def hand_built_frame(h=24, w=40, bits=16):
    """sky on top, road below, 2 persons (one id reused by a car), a car crowd, void 0 / 255 / 42."""
    sem = np.full((h, w), 7, np.uint16 if bits == 16 else np.uint8)
    inst = np.zeros((h, w), sem.dtype)
    sem[:6] = 205 if bits == 16 else 7
    sem[8:16, 2:8] = 10000 if bits == 16 else 23
    inst[8:16, 2:8] = 5
    sem[10:20, 6:12] = 10000 if bits == 16 else 23  # overlaps the first: the later one wins
    inst[10:20, 6:12] = 9
    sem[14:20, 20:30] = 23
    inst[14:20, 20:30] = 5  # the same id as a person: another class, another segment
    sem[2:4, 30:38] = 23  # car pixels without instance: the crowd
    sem[20:, :3] = 255
    sem[22:, 30:] = 0
    sem[0, 0] = 42
    inst[0:6, :] = 77  # instance ids on stuff are ignored
    return sem, inst


@pytest.mark.parametrize("bits", [16, 8])
def test_semantic_instance_equals_hand_built_masks(tmp_path, capfd, bits):
    frames = {"b": hand_built_frame(bits=bits), "a": hand_built_frame(18, 30, bits)}
    out = tmp_path / "out"
    rc, stdout, err = run_main(capfd, cli.main, si_inputs(tmp_path, frames) + ["--out", out, "--split", "train"])
    assert rc == 0, err
    segs, gt = read_back(str(out), "train")
    for stem, (sem, inst) in frames.items():
        assert segs[stem] == expected_segments(sem, inst, CATS)
    assert gt["categories"] == CATS and [im["id"] for im in gt["images"]] == ["a", "b"]
    assert gt["images"][1] == {"id": "b", "file_name": "b.jpg", "height": 24, "width": 40}
    assert filecmp.cmp(str(out / "images" / "train" / "b.jpg"), str(tmp_path / "in" / "images" / "b.jpg"), False)
    lines = stdout.splitlines()
    assert "2 images written" in stdout and any(ln.split()[:2] == ["23", "car"] for ln in lines)
    assert "[0, 42, 255]" in stdout  # the void values are reported


@pytest.mark.parametrize("kinds", [(1,), (0,), (1, 1), (0, 0, 0), (0, 1, 0, 1)], ids=[
    "one-thing-class", "one-stuff-class", "things-only", "stuff-only", "mixed"])
def test_semantic_instance_random_frames(tmp_path, capfd, kinds):
    rng = np.random.default_rng(len(kinds))
    ids = rng.choice(np.arange(1, 10001), len(kinds), replace=False).tolist()  # any ids up to 10000
    cats = [{"id": i, "name": "c{}".format(i), "isthing": k, "color": [1, 2, 3]} for i, k in zip(ids, kinds)]
    frames = {}
    for n in range(3):
        sem = np.zeros((20, 28), np.uint16)
        inst = np.zeros((20, 28), np.uint16)
        for _ in range(8):  # random rectangles painted over each other
            y, x = rng.integers(0, 18), rng.integers(0, 26)
            sl = (slice(y, y + rng.integers(2, 9)), slice(x, x + rng.integers(2, 9)))
            sem[sl] = rng.choice(ids + [0])
            inst[sl] = rng.integers(0, 4)
        frames["f{}".format(n)] = (sem, inst)
    out = tmp_path / "out"
    rc, _, err = run_main(capfd, cli.main, si_inputs(tmp_path, frames, cats) + ["--out", out, "--split", "val"])
    assert rc == 0, err
    segs, _ = read_back(str(out), "val")
    for stem, (sem, inst) in frames.items():
        assert segs[stem] == expected_segments(sem, inst, cats)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4).flatmap(lambda c: st.tuples(
    hnp.arrays(np.int64, st.tuples(st.integers(1, 7), st.integers(1, 7)), elements=st.integers(-1, c - 1)),
    st.lists(st.booleans(), min_size=c, max_size=c),
    st.sampled_from([3, 70000, 2 ** 40]))))
def test_build_segments_property(case):
    """Every (class, instance) pair of the maps is one segment (stuff: per class, thing key 0: crowd), with
    its exact pixels, area and box, for small and huge instance ids (bincount and np.unique paths)."""
    cls, isthing, id_scale = case
    rng = np.random.default_rng(cls.size)
    inst = rng.integers(0, 3, cls.shape) * id_scale
    seg_map, segs = build_segments(cls, inst, np.array(isthing))
    got = {}
    for k in range(len(segs["class"])):
        mask = seg_map == k + 1
        ys, xs = np.nonzero(mask)
        assert segs["area"][k] == mask.sum()
        assert segs["bbox"][k].tolist() == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        got[(int(segs["class"][k]), bool(segs["iscrowd"][k]))] = got.get(
            (int(segs["class"][k]), bool(segs["iscrowd"][k])), []) + [mask.tobytes()]
    want = {}
    for c in np.unique(cls[cls >= 0]).tolist():
        keys = np.unique(inst[cls == c]).tolist() if isthing[c] else [0]
        for i in keys:
            mask = (cls == c) & ((inst == i) | (not isthing[c]))
            want.setdefault((c, bool(isthing[c] and i == 0)), []).append(mask.tobytes())
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}
    assert ((seg_map == 0) == (cls < 0)).all()


# ------------------------------------------------------------------------------------------------- labelme

def labelme_mask(shape, h, w):
    """One shape's mask, as labelme's `shape_to_mask` draws it (PIL, outline and fill)."""
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    pts = [tuple(p) for p in shape["points"]]
    if shape["shape_type"] == "rectangle":
        (x0, y0), (x1, y1) = pts
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif shape["shape_type"] == "circle":
        (cx, cy), (px, py) = pts
        r = ((cx - px) ** 2 + (cy - py) ** 2) ** 0.5
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    else:
        draw.polygon(pts, outline=1, fill=1)
    return np.asarray(mask).astype(bool)


def expected_labelme(shapes, h, w, cats):
    """Paint shapes one by one; group thing shapes by (label, group_id) or alone, stuff by label."""
    owner = np.full((h, w), -1)
    for k, s in enumerate(shapes):
        owner[labelme_mask(s, h, w)] = k
    by_name = {c["name"]: c for c in cats}
    groups = {}
    for k, s in enumerate(shapes):
        c = by_name[s["label"]]
        key = (s["label"], "stuff") if not c["isthing"] else (
            (s["label"], "group", s["group_id"]) if s.get("group_id") is not None else (s["label"], "shape", k))
        groups.setdefault(key, np.zeros((h, w), bool))
        groups[key] |= owner == k
    return {(by_name[key[0]]["id"], 0, m.tobytes()) for key, m in groups.items() if m.any()}


def shape(label, points, kind="polygon", group_id=None):
    return {"label": label, "points": points, "group_id": group_id, "shape_type": kind, "flags": {}, "description": ""}


SHAPES = [
    shape("sky", [[0, 0], [39, 9.4]], "rectangle"),
    shape("road", [[39, 29], [0, 10.5]], "rectangle"),  # corners in the other order
    shape("road", [[30.2, 2.5], [38.7, 4.1], [35.5, 8.8]]),  # a second road shape: the same segment
    shape("person", [[3.3, 12.1], [9.6, 12.7], [8.2, 25.5], [2.1, 20.0]], group_id=1),
    shape("person", [[12.5, 14.2], [15.8, 14.0], [14.6, 22.9]], group_id=1),  # a second part of person 1
    shape("person", [[6, 18], [11.7, 19], [9, 28.6]]),  # own instance, covers part of person 1
    shape("car", [[22, 16], [25.5, 16.2]], "circle", group_id=1),  # group_id 1 of another class: another instance
    shape("car", [[28.4, 11.1], [36.9, 13.3], [33.2, 16.7], [27.0, 15.2]]),
    shape("car", [[31.0, 20.0], [38.0, 25.0]], "rectangle", group_id=4),
]


def labelme_file(folder, stem, shapes, h=30, w=40, embed=False):
    img = ((np.arange(h * w * 3).reshape(h, w, 3) * 5) % 253).astype(np.uint8)
    ok, png = cv2.imencode(".png", img)
    doc = {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": stem + ".png",
           "imageData": base64.b64encode(png.tobytes()).decode() if embed else None,
           "imageHeight": h, "imageWidth": w}
    if not embed:
        write_png(os.path.join(str(folder), stem + ".png"), img)
    return write_json(os.path.join(str(folder), stem + ".json"), doc)


def test_labelme_equals_rasterised_shapes(tmp_path, capfd):
    lm = tmp_path / "lm"
    labelme_file(lm, "x1", SHAPES)
    labelme_file(lm / "sub", "x2", SHAPES[::-1], embed=True)  # subfolders are searched; imageData only
    cats = write_json(str(tmp_path / "cats.json"), CATS)
    out = tmp_path / "out"
    rc, stdout, err = run_main(capfd, cli.main, ["labelme", "--categories", cats, "--labelme", lm, "--out", out,
                                                 "--split", "train"])
    assert rc == 0, err
    segs, gt = read_back(str(out), "train")
    assert segs["x1"] == expected_labelme(SHAPES, 30, 40, CATS)
    assert segs["x2"] == expected_labelme(SHAPES[::-1], 30, 40, CATS)
    assert len(segs["x1"]) == 1 + 1 + 2 + 3  # sky, road, persons 1 and 2, three cars
    assert sorted(os.listdir(str(out / "images" / "train"))) == ["x1.png", "x2.png"]
    assert "2 images written" in stdout


# ------------------------------------------------------------------------------------------- bad inputs

def snapshot(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for d, _, files in os.walk(str(root)):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, str(root))] = fh.read()
    return out


def _bad_si(tmp_path, case):
    sem, inst = hand_built_frame()
    frames = {"a": (sem, inst), "b": (sem, inst)}
    args = si_inputs(tmp_path, frames)
    d = tmp_path / "in"
    if case == "size":
        write_png(d / "semantic" / "b.png", sem[:-1])
        return args, "sizes differ for 'b'"
    if case == "no-image":
        write_png(d / "semantic" / "c.png", sem)
        write_png(d / "instances" / "c.png", inst)
        return args, "semantic PNG without image: {}".format(d / "semantic" / "c.png")
    if case == "duplicate":
        write_png(d / "images" / "sub" / "b.png", np.zeros((24, 40, 3), np.uint8))
        return args, "duplicate stem 'b'"
    if case == "empty-categories":
        write_json(args[2], [])
        return args, "categories file is empty"
    if case == "category-id":
        write_json(args[2], CATS[:1] + [dict(CATS[1], id=0)])
        return args, "has id 0; ids must be positive integers"
    if case == "rgb-semantic":
        write_png(d / "semantic" / "b.png", np.dstack([sem.astype(np.uint8)] * 3))
        return args, "semantic PNG must be single-channel"
    raise AssertionError(case)


def _bad_labelme(tmp_path, case):
    lm = tmp_path / "lm"
    labelme_file(lm, "a", SHAPES)
    cats = write_json(str(tmp_path / "cats.json"), CATS)
    args = ["labelme", "--categories", cats, "--labelme", lm]
    if case == "label":
        labelme_file(lm, "b", SHAPES + [shape("bicycle", [[1, 1], [5, 1], [3, 4]])])
        return args, "{}: unknown label 'bicycle'".format(lm / "b.json")
    if case == "size":
        labelme_file(lm, "b", SHAPES)
        doc = json.load(open(str(lm / "b.json")))
        doc["imageWidth"] = 41
        write_json(str(lm / "b.json"), doc)
        return args, "sizes differ: {} says imageHeight x imageWidth 30x41".format(lm / "b.json")
    if case == "no-image":
        labelme_file(lm, "b", SHAPES)
        os.remove(str(lm / "b.png"))
        return args, "label without image: {}".format(lm / "b.json")
    if case == "duplicate":
        labelme_file(lm / "sub", "a", SHAPES)
        return args, "duplicate stem 'a'"
    if case == "shape-type":
        labelme_file(lm, "b", SHAPES + [shape("road", [[1, 1], [5, 1]], "line")])
        return args, "has shape_type 'line'"
    raise AssertionError(case)


@pytest.mark.parametrize("fmt,case", [("si", c) for c in ("size", "no-image", "duplicate", "empty-categories",
                                                          "category-id", "rgb-semantic")]
                         + [("labelme", c) for c in ("label", "size", "no-image", "duplicate", "shape-type")])
def test_bad_input_one_line_and_output_untouched(tmp_path, capfd, fmt, case):
    out = tmp_path / "out"
    # an earlier conversion of the split is in place; the failed run must leave it as it was
    rc, _, err = run_main(capfd, cli.main, si_inputs(tmp_path, {"z": hand_built_frame()}, name="old")
                          + ["--out", out, "--split", "train"])
    assert rc == 0, err
    before = snapshot(out)
    args, message = (_bad_si if fmt == "si" else _bad_labelme)(tmp_path, case)
    rc, _, err = run_main(capfd, cli.main, args + ["--out", out, "--split", "train"])
    line = error_line(rc, err)
    assert message in line, line
    assert snapshot(out) == before
    assert sorted(os.listdir(str(out))) == ["annotations", "images"]  # no staging folder left


# -------------------------------------------------------------------------------------- raw demo data

@pytest.mark.parametrize("fmt", ["labelme", "semantic-instance"])
def test_raw_demo_converts(tmp_path, capfd, fmt):
    raw, out = tmp_path / "raw", tmp_path / "ds"
    args = ["--format", fmt, "--out", raw, "--num-train", "2", "--num-val", "1", "--height", "48", "--width", "96"]
    assert run_main(capfd, demo_cli.main, args)[0] == 0
    first = snapshot(raw)
    assert run_main(capfd, demo_cli.main, args)[0] == 0
    assert snapshot(raw) == first  # same arguments, same bytes
    cats = json.loads(first["categories.json"])
    assert cats[0]["isthing"] == 1 and [c["id"] for c in cats] == [7, 23, 60, 101, 205, 318, 4000, 9999]
    if fmt == "labelme":
        shapes = [s for k, v in first.items() if k.endswith(".json") and "/" in k for s in json.loads(v)["shapes"]]
        assert {s["shape_type"] for s in shapes} == {"polygon", "rectangle"}
        assert any(s["group_id"] is not None for s in shapes)
        inputs = lambda split: ["labelme", "--labelme", raw / split]  # noqa: E731
    else:
        assert cv2.imread(str(raw / "semantic" / "train" / "street_train_000.png"), -1).dtype == np.uint16
        inputs = lambda split: ["semantic-instance"] + sum(  # noqa: E731
            [["--" + k, raw / k / split] for k in ("images", "semantic", "instances")], [])
    for split in ("train", "val"):
        rc, stdout, err = run_main(capfd, cli.main, inputs(split) + ["--categories", raw / "categories.json",
                                                                     "--out", out, "--split", split])
        assert rc == 0, err
    segs, gt = read_back(str(out), "train")
    assert len(segs) == 2 and {s["category_id"] for a in gt["annotations"] for s in a["segments_info"]} >= {7, 101}


def test_convert_benchmark_runs(capsys):
    bench = load_benchmark("convert")
    assert bench.main(["--height", "65", "--width", "129", "--instances", "6", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "outputs equal: True" in out and "| labelme |" in out and "check_dataset:" in out
