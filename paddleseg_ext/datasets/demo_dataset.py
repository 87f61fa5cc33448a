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

from ..utils import UserInputError
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
