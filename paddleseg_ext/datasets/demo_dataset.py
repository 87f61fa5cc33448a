"""A deterministic synthetic street-scene dataset in the exact Cityscapes layout.

Each frame has sky, buildings, vegetation, terrain, sidewalk and road (stuff), cars, trucks and
people (things; some touching, some small, some cut by the image border), a crowd of cars
(instance id = plain label id, as Cityscapes marks crowds) and an ego-vehicle strip (void).
Classes are drawn with distinct colours and textures so a tiny network can learn them.
"""
import os
import shutil

import cv2
import numpy as np

from ..utils import UserInputError, log
from .cityscapes_prepare import prepare_cityscapes

MARKER = ".demo_cityscapes"
# Cityscapes label ids
EGO, ROAD, SIDEWALK, BUILDING, VEGETATION, TERRAIN, SKY, PERSON, CAR, TRUCK = 1, 7, 8, 11, 21, 22, 23, 24, 26, 27
# label id -> (RGB base colour, texture frequencies (fy, fx) in cycles per pixel, amplitude)
STYLE = {
    EGO: ((20, 20, 20), (0.0, 0.0), 0),
    ROAD: ((110, 100, 115), (0.0, 0.0), 6),
    SIDEWALK: ((220, 190, 200), (0.25, 0.25), 25),
    BUILDING: ((150, 90, 60), (0.0, 0.34), 35),
    VEGETATION: ((60, 150, 40), (0.45, 0.12), 30),
    TERRAIN: ((170, 200, 90), (0.2, 0.0), 20),
    SKY: ((120, 180, 245), (0.0, 0.0), 0),
    PERSON: ((230, 40, 70), (0.5, 0.0), 25),
    CAR: ((30, 40, 200), (0.0, 0.0), 10),
    TRUCK: ((240, 210, 40), (0.0, 0.5), 25),
}
SPLITS = {"train": ("synthtown", "fakeburg"), "val": ("mockdorf",)}


class _Scene:
    """Label id and instance id canvases; later drawings occlude earlier ones."""

    def __init__(self, h, w):
        self.h, self.w = h, w
        self.label = np.zeros((h, w), np.uint8)
        self.inst = np.zeros((h, w), np.int32)
        self.count = {}

    def stuff(self, mask, label_id):
        self.label[mask] = label_id
        self.inst[mask] = label_id

    def thing(self, mask, label_id, crowd=False):
        k = self.count.get(label_id, 0)
        if not mask.any():
            return
        self.label[mask] = label_id
        if crowd:
            self.inst[mask] = label_id
        else:
            self.inst[mask] = label_id * 1000 + k
            self.count[label_id] = k + 1

    def rect(self, y0, x0, y1, x1):
        m = np.zeros((self.h, self.w), bool)
        m[max(0, int(y0)):max(0, int(y1)), max(0, int(x0)):max(0, int(x1))] = True
        return m

    def ellipse(self, cy, cx, ry, rx):
        m = np.zeros((self.h, self.w), np.uint8)
        cv2.ellipse(m, (int(cx), int(cy)), (max(1, int(rx)), max(1, int(ry))), 0, 0, 360, 1, -1)
        return m.astype(bool)


def _draw_car(scene, y_bottom, x0, width, label_id=CAR, crowd=False):
    """Body plus a narrower cabin, as one mask."""
    hgt = width * 0.5
    body = scene.rect(y_bottom - hgt * 0.6, x0, y_bottom, x0 + width)
    cabin = scene.rect(y_bottom - hgt, x0 + width * 0.2, y_bottom - hgt * 0.6, x0 + width * 0.8)
    scene.thing(body | cabin, label_id, crowd)


def _draw_person(scene, y_bottom, cx, height):
    body = scene.ellipse(y_bottom - height * 0.4, cx, height * 0.4, max(1.5, height * 0.16))
    head = scene.ellipse(y_bottom - height * 0.88, cx, max(1, height * 0.12), max(1, height * 0.11))
    scene.thing(body | head, PERSON)


def render_scene(rng, h, w):
    """One frame: (RGB uint8 [h,w,3], label ids uint8 [h,w], instance ids int32 [h,w])."""
    s = _Scene(h, w)
    horizon = int(h * rng.uniform(0.35, 0.45))
    road_top = int(h * rng.uniform(0.55, 0.62))
    s.stuff(s.rect(0, 0, h, w), SKY)
    x = 0
    while x < w:  # a row of buildings of random widths and heights
        bw = int(w * rng.uniform(0.12, 0.25))
        s.stuff(s.rect(horizon - h * rng.uniform(0.1, 0.3), x, road_top, x + bw), BUILDING)
        x += bw + int(w * rng.uniform(0.0, 0.06))
    for _ in range(2):  # trees
        cx = w * rng.uniform(0.05, 0.95)
        s.stuff(s.ellipse(horizon - h * 0.02, cx, h * rng.uniform(0.08, 0.14), w * rng.uniform(0.04, 0.08)), VEGETATION)
    s.stuff(s.rect(road_top - h * 0.08, 0, road_top, w), SIDEWALK)
    tx = w * rng.uniform(0.55, 0.8)
    s.stuff(s.rect(road_top - h * 0.08, tx, road_top, tx + w * 0.15), TERRAIN)
    s.stuff(s.rect(road_top, 0, h, w), ROAD)

    # People on the sidewalk: one small and far, one larger; then a crowd of cars in the back.
    _draw_person(s, road_top - h * 0.01, w * rng.uniform(0.1, 0.3), h * 0.1)
    _draw_person(s, road_top + h * 0.02, w * rng.uniform(0.35, 0.5), h * rng.uniform(0.18, 0.24))
    crowd_x = w * rng.uniform(0.55, 0.7)
    for i in range(3):
        _draw_car(s, road_top + h * 0.06, crowd_x + i * w * 0.04, w * 0.07, CAR, crowd=True)
    # Cars on the road: two touching, one cut by the left border, one truck cut by the right one.
    y_near = h * rng.uniform(0.86, 0.92)
    cw = w * rng.uniform(0.16, 0.2)
    x1 = w * rng.uniform(0.28, 0.38)
    _draw_car(s, y_near, x1, cw)
    _draw_car(s, y_near, x1 + cw, cw * 0.9)
    _draw_car(s, h * rng.uniform(0.75, 0.8), -cw * 0.4, cw)
    _draw_car(s, h * rng.uniform(0.8, 0.86), w - cw * 0.7, cw * 1.3, TRUCK)
    _draw_person(s, h * rng.uniform(0.93, 0.97), w * rng.uniform(0.8, 0.9), h * 0.28)
    s.stuff(s.rect(h - max(2, h // 32), 0, h, w), EGO)

    img = np.zeros((h, w, 3), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for label_id, (color, (fy, fx), amp) in STYLE.items():
        m = s.label == label_id
        if not m.any():
            continue
        texture = amp * np.sin(2 * np.pi * (fy * yy[m] + fx * xx[m]))
        img[m] = np.asarray(color, np.float32) + texture[:, None]
    # Dark outlines where instance ids change, so touching things are told apart like real edges.
    edge = np.zeros((h, w), bool)
    edge[:, 1:] |= s.inst[:, 1:] != s.inst[:, :-1]
    edge[1:, :] |= s.inst[1:, :] != s.inst[:-1, :]
    img[edge & (s.inst >= 1000)] *= 0.45
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8), s.label, s.inst


def make_demo_dataset(out, seed=0, num_train=8, num_val=4, height=128, width=256, verbose=False):
    """Write the synthetic dataset under `out` and convert it with `prepare_cityscapes`.

    Files: ``leftImg8bit/<split>/<city>/<city>_<seq>_000019_leftImg8bit.png``,
    ``gtFine/<split>/<city>/..._gtFine_{labelIds,instanceIds,labelTrainIds}.png`` and the panoptic
    json/PNG folders. The same arguments give byte-identical files. Returns `out`.
    """
    if height < 32 or width < 32:
        raise UserInputError("demo images must be at least 32x32, got {}x{}".format(height, width))
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, MARKER)):
        raise UserInputError("{} exists and is not a demo dataset; choose an empty or new folder".format(out))
    for sub in ("leftImg8bit", "gtFine"):
        if os.path.isdir(os.path.join(out, sub)):
            shutil.rmtree(os.path.join(out, sub))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, MARKER), "w") as f:
        f.write("synthetic Cityscapes-layout dataset written by tools/make_demo_dataset.py\n")
    counts = {"train": num_train, "val": num_val}
    for split_no, (split, cities) in enumerate(SPLITS.items()):
        for i in range(counts[split]):
            city = cities[i % len(cities)]
            rng = np.random.default_rng([seed, split_no, i])
            img, label, inst = render_scene(rng, height, width)
            stem = "{}_{:06d}_{:06d}".format(city, i, 19)
            img_dir = os.path.join(out, "leftImg8bit", split, city)
            gt_dir = os.path.join(out, "gtFine", split, city)
            os.makedirs(img_dir, exist_ok=True)
            os.makedirs(gt_dir, exist_ok=True)
            cv2.imwrite(os.path.join(img_dir, stem + "_leftImg8bit.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            cv2.imwrite(os.path.join(gt_dir, stem + "_gtFine_labelIds.png"), label)
            cv2.imwrite(os.path.join(gt_dir, stem + "_gtFine_instanceIds.png"), inst.astype(np.uint16))
    splits = [s for s in SPLITS if counts[s] > 0]
    if splits:
        prepare_cityscapes(out, force=True, splits=splits, verbose=verbose)
    return out


# ---------------------------------------------------------------------------------------------------
# Raw annotations of the same scenes, as a user brings them (tools/convert_panoptic.py's inputs)

RAW_MARKER = ".demo_raw_annotations"
#: the categories of the raw demo: a thing class first, non-contiguous ids up to 9999
RAW_CATEGORIES = [
    {"id": 7, "name": "car", "isthing": 1, "color": [0, 0, 142]},
    {"id": 23, "name": "road", "isthing": 0, "color": [128, 64, 128]},
    {"id": 60, "name": "sidewalk", "isthing": 0, "color": [244, 35, 232]},
    {"id": 101, "name": "person", "isthing": 1, "color": [220, 20, 60]},
    {"id": 205, "name": "sky", "isthing": 0, "color": [70, 130, 180]},
    {"id": 318, "name": "building", "isthing": 0, "color": [70, 70, 70]},
    {"id": 4000, "name": "vegetation", "isthing": 0, "color": [107, 142, 35]},
    {"id": 9999, "name": "truck", "isthing": 1, "color": [0, 0, 70]},
]
#: Cityscapes label id of the scenes -> raw demo category id (0: void; terrain and the ego strip stay void)
RAW_CATEGORY_OF_LABEL = {CAR: 7, ROAD: 23, SIDEWALK: 60, PERSON: 101, SKY: 205, BUILDING: 318, VEGETATION: 4000,
                         TRUCK: 9999}
#: stuff classes in the order the scenes paint them (labelme shapes follow it)
RAW_STUFF_ORDER = (SKY, BUILDING, VEGETATION, SIDEWALK, ROAD)


def _raw_frames(seed, num_train, num_val, height, width):
    """(split, stem, RGB, label ids, instance ids) of each frame (the scenes of `make_demo_dataset`)."""
    counts = {"train": num_train, "val": num_val}
    for split_no, split in enumerate(SPLITS):
        for i in range(counts[split]):
            rng = np.random.default_rng([seed, split_no, i])
            img, label, inst = render_scene(rng, height, width)
            yield split, "street_{}_{:03d}".format(split, i), img, label, inst


def mask_polygons(mask, epsilon=0.0):
    """Outer contours of a bool mask as labelme point lists ([[x, y], ...], 3 points or more), simplified
    by Douglas-Peucker with tolerance `epsilon` pixels (0: every corner kept), as an annotator clicks them."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if epsilon > 0:
        contours = [cv2.approxPolyDP(c, epsilon, True) for c in contours]
    return [c[:, 0, :].astype(float).tolist() for c in contours if len(c) >= 3]


def _shape(label_id, points, kind="polygon", group_id=None):
    name = next(c["name"] for c in RAW_CATEGORIES if c["id"] == RAW_CATEGORY_OF_LABEL[label_id])
    return {"label": name, "points": points, "group_id": group_id, "description": "", "shape_type": kind,
            "flags": {}}


def labelme_shapes(label, inst):
    """labelme shapes drawing a frame: stuff in painting order, as a rectangle when its box holds only
    it and what is painted later, else polygons; things (largest first) as polygons, a car
    as two parts (cabin and body) sharing a group_id, an occluded thing's pieces sharing one too."""
    shapes = []
    is_thing = (inst >= 1000) | ((label == CAR) & (inst == CAR))  # instances and the crowd of cars
    for k, label_id in enumerate(RAW_STUFF_ORDER):
        mask = label == label_id
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        painted_later = is_thing[box] | np.isin(label[box], RAW_STUFF_ORDER[k + 1:])
        if (mask[box] | painted_later).all():
            shapes.append(_shape(label_id, [[float(xs.min()), float(ys.min())], [float(xs.max()), float(ys.max())]],
                                 "rectangle"))
        else:
            shapes += [_shape(label_id, p) for p in mask_polygons(mask)]
    ids, areas = np.unique(inst[is_thing], return_counts=True)
    group = 0
    for v in ids[np.argsort(-areas, kind="stable")]:  # large things first: small ones in front stay visible
        mask = inst == v
        label_id = int(label[mask][0])
        if v < 1000:  # the crowd of cars: one shape, its own instance (labelme has no crowd marking)
            shapes += [_shape(label_id, p) for p in mask_polygons(mask)]
            continue
        ys = np.nonzero(mask)[0]
        if label_id == CAR and ys.max() - ys.min() >= 4:
            cut = ys.min() + (ys.max() - ys.min() + 1) * 2 // 5
            top = mask.copy()
            top[cut:] = False
            parts = mask_polygons(top) + mask_polygons(mask & ~top)
        else:
            parts = mask_polygons(mask)
        group += 1
        shapes += [_shape(label_id, p, group_id=group if len(parts) > 1 else None) for p in parts]
    return shapes


def make_raw_demo(out, fmt, seed=0, num_train=8, num_val=4, height=128, width=256, verbose=False):
    """Write the demo scenes as raw annotations under `out`, for tools/convert_panoptic.py.

    fmt 'labelme': ``<split>/<stem>.png`` + ``<split>/<stem>.json`` (labelme 5 files);
    fmt 'semantic-instance': ``images/<split>/<stem>.png``, ``semantic/<split>/<stem>.png`` (16-bit
    category ids, 0 = void), ``instances/<split>/<stem>.png`` (16-bit, 0 = none; the crowd of cars is 0).
    Both: ``categories.json`` (`RAW_CATEGORIES`). Same arguments, same bytes. Returns `out`.
    """
    import json

    if fmt not in ("labelme", "semantic-instance"):
        raise UserInputError("unknown demo format {!r} (labelme, semantic-instance)".format(fmt))
    if height < 32 or width < 32:
        raise UserInputError("demo images must be at least 32x32, got {}x{}".format(height, width))
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, RAW_MARKER)):
        raise UserInputError("{} exists and is not a raw demo folder; choose an empty or new folder".format(out))
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    with open(os.path.join(out, RAW_MARKER), "w") as f:
        f.write("raw demo annotations ({}) written by tools/make_demo_dataset.py\n".format(fmt))
    with open(os.path.join(out, "categories.json"), "w") as f:
        json.dump(RAW_CATEGORIES, f, indent=1)
    lut = np.zeros(256, np.uint16)
    for label_id, cid in RAW_CATEGORY_OF_LABEL.items():
        lut[label_id] = cid
    for split, stem, img, label, inst in _raw_frames(seed, num_train, num_val, height, width):
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        if fmt == "labelme":
            folder = os.path.join(out, split)
            os.makedirs(folder, exist_ok=True)
            cv2.imwrite(os.path.join(folder, stem + ".png"), bgr)
            doc = {"version": "5.2.1", "flags": {}, "shapes": labelme_shapes(label, inst),
                   "imagePath": stem + ".png", "imageData": None, "imageHeight": height, "imageWidth": width}
            with open(os.path.join(folder, stem + ".json"), "w") as f:
                json.dump(doc, f, indent=1)
        else:
            for sub, array in (("images", bgr), ("semantic", lut[label]),
                               ("instances", np.where(inst >= 1000, inst, 0).astype(np.uint16))):
                os.makedirs(os.path.join(out, sub, split), exist_ok=True)
                cv2.imwrite(os.path.join(out, sub, split, stem + ".png"), array)
    if verbose:
        log.info("raw demo annotations ({}) written to {}".format(fmt, out))
    return out
