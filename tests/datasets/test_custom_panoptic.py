"""CustomPanoptic: a COCO panoptic dataset with the categories of its json (non-contiguous ids, any
order, things anywhere), its one-line errors, the targets of both models on it, and the metadata that
flows from it into the model (num_classes, thing ids, class names)."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from paddleseg_ext.datasets import CocoPanoptic, CustomPanoptic
from paddleseg_ext.datasets.demo_dataset import CAR, PERSON, ROAD, SIDEWALK, SKY, TRUCK, BUILDING, render_scene
from paddleseg_ext.utils import UserInputError, write_panoptic_png

# ---------------------------------------------------------------- a generated dataset

#: category lists of the generated datasets: (id, name, isthing), in train-id order, and which demo-scene
#: label ids each category takes (labels of no category are void)
STREET = [  # a thing at train id 0 (as COCO's person), ids up to 10000, not sorted
    ((10000, "pedestrian", 1), (PERSON,)), ((7, "road", 0), (ROAD, SIDEWALK)), ((23, "vehicle", 1), (CAR, TRUCK)),
    ((101, "sky", 0), (SKY,)), ((205, "building", 0), (BUILDING,))]
STUFF_ONLY = [((3, "road", 0), (ROAD,)), ((9, "sky", 0), (SKY,)), ((12, "building", 0), (BUILDING,))]
THINGS_ONLY = [((42, "car", 1), (CAR,)), ((43, "person", 1), (PERSON,))]
ONE_CLASS = [((5, "car", 1), (CAR, TRUCK))]


def make_custom_dataset(root, spec, splits=(("train", 2), ("val", 2)), h=96, w=192, seed=0, colors=True):
    """Write a CustomPanoptic dataset (default layout) of demo street scenes under `root`.

    `spec`: list of ((category id, name, isthing), demo label ids). Thing pixels of a demo instance
    form one segment, the demo's crowd cars one crowd segment (``iscrowd: 1``), each stuff category one
    segment; segment ids are large and scattered (RGB-coded up to 2^24). Returns `root`.
    """
    cats = [{"id": c, "name": n, "isthing": t} for (c, n, t), _ in spec]
    if colors:
        for i, c in enumerate(cats):
            c["color"] = [(60 * i + 20) % 256, (97 * i + 50) % 256, (151 * i + 90) % 256]
    lut = np.zeros(256, np.int64)  # demo label id -> category index + 1 (0 = void)
    for k, (_, labels) in enumerate(spec):
        lut[list(labels)] = k + 1
    is_thing = np.array([0] + [t for (_, _, t), _ in spec], bool)
    for split, n in splits:
        img_dir = os.path.join(root, "images", split)
        png_dir = os.path.join(root, "annotations", "panoptic_" + split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(png_dir, exist_ok=True)
        images, anns = [], []
        for i in range(n):
            img, label, inst = render_scene(np.random.default_rng([seed, len(split), i]), h, w)
            cat = lut[label]
            # a thing pixel's key is its demo instance id (crowd: the label id, < 1000), a stuff pixel's its category
            key = np.where(is_thing[cat], inst.astype(np.int64), 10 ** 6 + cat)
            key[cat == 0] = -1
            keys, index = np.unique(key, return_inverse=True)
            index = index.reshape(key.shape)
            ids = 1 + np.arange(keys.size) * 104729 + i  # scattered segment ids
            seg = np.where(key >= 0, ids[index], 0)
            areas = np.bincount(index.ravel(), minlength=keys.size)
            first = np.unique(index.ravel(), return_index=True)[1]
            seg_cat = cat.ravel()[first]
            segments = [{"id": int(ids[j]), "category_id": cats[seg_cat[j] - 1]["id"],
                         "iscrowd": int(bool(is_thing[seg_cat[j]]) and keys[j] < 1000), "area": int(areas[j])}
                        for j in range(keys.size) if keys[j] >= 0]
            stem = "{}_{:03d}".format(split, i)
            cv2.imwrite(os.path.join(img_dir, stem + ".jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            write_panoptic_png(os.path.join(png_dir, stem + ".png"), seg)
            images.append({"id": 300 + i, "file_name": stem + ".jpg", "height": h, "width": w})
            anns.append({"image_id": 300 + i, "file_name": stem + ".png", "segments_info": segments})
        with open(os.path.join(root, "annotations", "panoptic_{}.json".format(split)), "w") as f:
            json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return root


@pytest.fixture(scope="module")
def street(tmp_path_factory):
    return make_custom_dataset(str(tmp_path_factory.mktemp("custom") / "street"), STREET)


@pytest.fixture
def street_copy(street, tmp_path):
    root = str(tmp_path / "street")
    shutil.copytree(street, root)
    return root


# ---------------------------------------------------------------- the dataset

def test_categories_map_to_train_ids_in_json_order(street):
    ds = CustomPanoptic(street, [{"type": "Normalize"}], mode="val", small_instance_area=50)
    assert len(ds) == 2 and ds.num_classes == 5
    assert ds.category_ids == [10000, 7, 23, 101, 205]
    assert ds.train_id_to_category_id == {0: 10000, 1: 7, 2: 23, 3: 101, 4: 205}
    assert ds.category_id_to_train_id[10000] == 0 and ds.category_id_to_train_id[205] == 4
    assert ds.thing_ids == [0, 2] and ds.class_names == ["pedestrian", "road", "vehicle", "sky", "building"]
    assert ds.palette[1] == [80, 147, 241]
    gt = json.load(open(ds.json_file))
    raw = {a["image_id"]: a["segments_info"] for a in gt["annotations"]}
    for r in ds.records:
        assert [s["category_id"] for s in r["segments_info"]] == [
            ds.category_id_to_train_id[s["category_id"]] for s in raw[r["image_id"]]]
    # the sample: train ids on every pixel of a segment, void elsewhere, crowd cars kept as class 2
    s = ds[0]
    from paddleseg_ext.utils import read_panoptic_png

    seg = read_panoptic_png(ds.records[0]["label_path"])
    info = ds.records[0]["segments_info"]
    seg_ids = np.array([x["id"] for x in info])
    order = np.argsort(seg_ids)
    pos = np.minimum(np.searchsorted(seg_ids[order], seg), len(info) - 1)
    hit = seg_ids[order][pos] == seg
    expected = np.where(hit, np.array([x["category_id"] for x in info])[order][pos], 255)
    np.testing.assert_array_equal(s["semantic"], expected)
    crowd = [x["id"] for x in info if x["iscrowd"]]
    crowd_labels = np.unique(s["panoptic"][np.isin(seg, crowd)])
    assert len(crowd) == 1 and crowd_labels.size == 1 and crowd_labels[0] // 1000 == 2
    assert set(np.unique(s["panoptic"] // 1000)) <= {0, 1, 2, 3, 4, 255}
    assert (s["center_weights"][np.isin(seg, crowd)] == 0).all()


def test_explicit_paths_and_any_split_name(street, tmp_path):
    root = str(tmp_path / "moved")
    os.makedirs(root)
    shutil.copytree(os.path.join(street, "images", "val"), os.path.join(root, "pics"))
    shutil.copytree(os.path.join(street, "annotations", "panoptic_val"), os.path.join(root, "masks"))
    shutil.copy(os.path.join(street, "annotations", "panoptic_val.json"), os.path.join(root, "gt.json"))
    ds = CustomPanoptic(root, [], mode="test", image_dir="pics", json_file="gt.json", label_dir="masks")
    assert len(ds) == 2 and ds.json_file == os.path.join(root, "gt.json")
    assert ds[1]["semantic"].shape == (96, 192)


def test_missing_colours_are_generated(tmp_path):
    root = make_custom_dataset(str(tmp_path / "d"), THINGS_ONLY, splits=(("val", 1),), h=64, w=128, colors=False)
    ds = CustomPanoptic(root, [], mode="val")
    assert len(ds.palette) == 2 and ds.palette[0] != ds.palette[1]
    assert ds.thing_ids == [0, 1]


def _edit_json(root, mode, fn):
    path = os.path.join(root, "annotations", "panoptic_{}.json".format(mode))
    gt = json.load(open(path))
    fn(gt)
    json.dump(gt, open(path, "w"))


@pytest.mark.parametrize("edit, message", [
    (lambda gt: gt["annotations"][0]["segments_info"][0].update(category_id=8), "category_id 8, which is not in"),
    (lambda gt: gt.update(categories=[]), "`categories` is empty"),
    (lambda gt: gt.pop("categories"), "`categories` is empty"),
    (lambda gt: gt["categories"].append(dict(gt["categories"][0])), "category id 10000 is listed twice"),
    (lambda gt: gt["categories"][1].update(id=0), r"id 0 is not a positive integer"),
    (lambda gt: gt["categories"][1].update(isthing=2), "isthing=2"),
    (lambda gt: gt["categories"][1].update(color=[1, 2]), r"color \[1, 2\]"),
    (lambda gt: gt.update(annotations=gt["annotations"][1:]), "no panoptic annotation"),
    (lambda gt: gt["images"][0].update(file_name="nope.jpg"), "image of image 300 .* not found: .*nope.jpg"),
    (lambda gt: gt["annotations"][0].update(file_name="nope.png"), "panoptic PNG of image 300 .*nope.png"),
    (lambda gt: gt.pop("images"), "missing key 'images'"),
    (lambda gt: gt["images"].append(dict(gt["images"][1])), "image id 301 appears more than once in `images`"),
    (lambda gt: gt["annotations"].append(dict(gt["annotations"][0])), "image id 300 .* in `annotations`"),
])
def test_bad_json_gives_one_line(street_copy, edit, message):
    _edit_json(street_copy, "val", edit)
    with pytest.raises(UserInputError, match=message) as e:
        CustomPanoptic(street_copy, [], mode="val")
    assert "\n" not in str(e.value)


def test_more_categories_than_ignore_index(street):
    with pytest.raises(UserInputError, match="5 categories, but train ids must stay below ignore_index 4"):
        CustomPanoptic(street, [], mode="val", ignore_index=4)


def test_missing_files_give_one_line(street_copy):
    with pytest.raises(UserInputError, match="panoptic annotation not found: .*panoptic_test.json"):
        CustomPanoptic(street_copy, [], mode="test")
    with pytest.raises(UserInputError, match="dataset_root is not a directory"):
        CustomPanoptic(os.path.join(street_copy, "nope"), [], mode="val")
    shutil.rmtree(os.path.join(street_copy, "annotations", "panoptic_val"))
    with pytest.raises(UserInputError, match="panoptic PNG folder not found"):
        CustomPanoptic(street_copy, [], mode="val")
    shutil.rmtree(os.path.join(street_copy, "images", "train"))
    with pytest.raises(UserInputError, match="image folder not found: .*images.train"):
        CustomPanoptic(street_copy, [], mode="train")


def test_png_segment_missing_from_json(street_copy):
    _edit_json(street_copy, "val", lambda gt: gt["annotations"][0]["segments_info"].pop(0))
    ds = CustomPanoptic(street_copy, [], mode="val")
    with pytest.raises(UserInputError, match="in the PNG but not in the json"):
        ds[0]


def test_coco_is_custom_with_fixed_categories():
    assert issubclass(CocoPanoptic, CustomPanoptic) and CocoPanoptic.NUM_CLASSES == 133


# ---------------------------------------------------------------- both models' targets

@pytest.mark.parametrize("spec", [STREET, STUFF_ONLY, THINGS_ONLY, ONE_CLASS], ids=["street", "stuff_only",
                                                                                   "things_only", "one_class"])
def test_both_models_targets(tmp_path, spec):
    root = make_custom_dataset(str(tmp_path / "d"), spec, splits=(("train", 1),), h=64, w=128)
    ds = CustomPanoptic(root, [{"type": "Normalize"}], mode="train", sigma=2)
    things = [i for i, ((_, _, t), _) in enumerate(spec) if t]
    assert ds.thing_ids == things and ds.num_classes == len(spec)
    s = ds[0]
    assert s["img"].shape == (3, 64, 128) and s["semantic"].shape == (64, 128)
    classes = set(np.unique(s["panoptic"] // 1000)) - {255}
    assert classes <= set(range(len(spec)))
    has_instance = (s["panoptic"] % 1000 > 0).any()
    assert has_instance == bool(things)
    assert (s["center"].max() == 1.0) == bool(things)
    if not things:
        return  # PanopticFCN needs a thing class
    fcn = CustomPanoptic(root, [{"type": "Normalize"}], mode="train", target_generator="PanopticFCNTargetGenerator")
    assert list(fcn.target_generator.thing_ids) == things
    t = fcn[0]
    n = int(t["fcn_levels"].max(0).sum())
    valid_classes = t["fcn_classes"][:n]
    assert n > 0 and set(valid_classes.tolist()) <= set(things)
    assert t["fcn_center_l0"].shape[0] == len(things)


# ---------------------------------------------------------------- metadata into the model

CUSTOM_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "configs", "custom")


def custom_config(tmp_path, name, root, mutate=None):
    """configs/custom/<name> with both datasets under `root` (the only thing a user sets)."""
    from tests.conftest import load_yaml, write_config

    return write_config(load_yaml(os.path.join(CUSTOM_CONFIGS, name)), str(tmp_path / name), mutate=mutate,
                        dataset_root=root)


def test_custom_configs_leave_the_classes_to_the_dataset():
    from paddleseg_ext.runtime import load_config

    for name in sorted(os.listdir(CUSTOM_CONFIGS)):
        cfg = load_config(os.path.join(CUSTOM_CONFIGS, name))
        for ds in (cfg.train_dataset_cfg, cfg.val_dataset_cfg):
            assert ds["type"] == "CustomPanoptic" and ds["dataset_root"] == "data/my_dataset", name
        assert "num_classes" not in cfg.model_cfg and "thing_ids" not in cfg.model_cfg, name
        assert cfg.val_dataset_cfg["mode"] == "val" and cfg.train_dataset_cfg["mode"] == "train"


@pytest.mark.parametrize("name", ["panoptic_deeplab_custom_demo_cpu.yml", "panoptic_fcn_custom_demo_cpu.yml"])
def test_model_classes_come_from_the_dataset(street, tmp_path, name):
    from paddleseg_ext.runtime import build_model, dataset_metadata, load_config

    path = custom_config(tmp_path, name, street)
    cfg = load_config(path)
    assert "num_classes" not in cfg.model_cfg
    builder, model = build_model(cfg, path)
    assert "num_classes" not in cfg.model_cfg  # filled in build_model's copy, not the caller's config
    assert builder.config.model_cfg["num_classes"] == 5
    assert getattr(model, "num_classes", 5) == 5
    if "fcn" in name:
        assert model.thing_ids == [0, 2]
    meta = dataset_metadata(cfg, builder, path)
    assert meta.class_names == ["pedestrian", "road", "vehicle", "sky", "building"]
    assert meta.category_ids == [10000, 7, 23, 101, 205] and meta.thing_ids == [0, 2]
    assert meta.palette.shape == (5, 3) and meta.palette[1].tolist() == [80, 147, 241]


def test_model_metadata_mismatch_names_both_values(street, tmp_path):
    from paddleseg_ext.runtime import build_model, load_config

    path = custom_config(tmp_path, "panoptic_deeplab_custom_demo_cpu.yml", street,
                         mutate=lambda d: d["model"].update(num_classes=19))
    with pytest.raises(UserInputError, match="model.num_classes=19 but dataset CustomPanoptic has 5 classes"):
        build_model(load_config(path), path)
    path = custom_config(tmp_path, "panoptic_fcn_custom_demo_cpu.yml", street,
                         mutate=lambda d: d["model"].update(num_classes=5, thing_ids=[1]))
    with pytest.raises(UserInputError, match=r"model.thing_ids \[1\] .* differ from the dataset's thing classes \[0, 2\]"):
        build_model(load_config(path), path)


def test_train_and_val_categories_must_agree(street_copy, tmp_path):
    from paddleseg_ext.runtime import build_model, load_config

    def swap(gt):
        gt["categories"][1], gt["categories"][3] = gt["categories"][3], gt["categories"][1]

    _edit_json(street_copy, "train", swap)
    path = custom_config(tmp_path, "panoptic_deeplab_custom_demo_cpu.yml", street_copy)
    with pytest.raises(UserInputError, match=r"panoptic_train.json: categories .* differ from the val split's"):
        build_model(load_config(path), path)


def test_fcn_on_a_stuff_only_dataset_says_why(tmp_path):
    from paddleseg_ext.runtime import build_model, load_config

    root = make_custom_dataset(str(tmp_path / "d"), STUFF_ONLY, splits=(("train", 1), ("val", 1)), h=64, w=128)
    path = custom_config(tmp_path, "panoptic_fcn_custom_demo_cpu.yml", root)
    with pytest.raises(UserInputError, match="at least one thing class"):
        build_model(load_config(path), path)
