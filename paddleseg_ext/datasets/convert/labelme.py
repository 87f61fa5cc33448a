"""labelme JSON files (polygons, rectangles, circles as labelme 5 writes them) -> COCO panoptic layout.

Shapes are rasterised the way labelme itself does it (`labelme.utils.shape_to_mask`: PIL's
ImageDraw polygon / rectangle / ellipse with outline and fill, so boundary pixels belong to the
shape) and painted in file order, a later shape covering an earlier one.
"""
import base64
import io
import math
import os

import numpy as np
from PIL import Image, ImageDraw

from ...utils import UserInputError, load_json
from .categories import category_tables
from .output import SplitWriter, find_by_stem
from .segments import build_segments
from .semantic_instance import image_size

SHAPE_TYPES = ("polygon", "rectangle", "circle")


def _shape_points(shape, path, k):
    pts = shape.get("points")
    try:
        xy = [(float(p[0]), float(p[1])) for p in pts]
    except (TypeError, ValueError, IndexError):
        raise UserInputError("{}: shape #{} ({!r}) has malformed points {!r}".format(path, k, shape.get("label"), pts))
    kind = shape.get("shape_type") or "polygon"
    if kind not in SHAPE_TYPES:
        raise UserInputError("{}: shape #{} ({!r}) has shape_type {!r}; supported: {}".format(
            path, k, shape.get("label"), kind, ", ".join(SHAPE_TYPES)))
    need_ok = len(xy) > 2 if kind == "polygon" else len(xy) == 2
    if not need_ok:
        raise UserInputError("{}: shape #{} ({!r}) is a {} with {} points ({})".format(
            path, k, shape.get("label"), kind, len(xy), "needs 3 or more" if kind == "polygon" else "needs 2"))
    return kind, xy


def rasterize_shapes(shapes, height, width, path="labelme json"):
    """Paint labelme shapes in order: int32 [H, W] with k+1 on the pixels where shape k is on top, 0 elsewhere.

    One int canvas, each shape drawn with value k+1 (PIL, as labelme's `shape_to_mask`), so the pixels
    of shape k are exactly labelme's mask of it and later shapes overwrite earlier ones.
    """
    canvas = Image.new("I", (int(width), int(height)), 0)
    draw = ImageDraw.Draw(canvas)
    for k, shape in enumerate(shapes):
        kind, xy = _shape_points(shape, path, k)
        if kind == "rectangle":
            (x0, y0), (x1, y1) = xy  # labelme stores two opposite corners in drawing order
            draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=k + 1, fill=k + 1)
        elif kind == "circle":
            (cx, cy), (px, py) = xy  # centre and a point on the circle
            d = math.hypot(cx - px, cy - py)
            draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=k + 1, fill=k + 1)
        else:
            draw.polygon(xy, outline=k + 1, fill=k + 1)
    return np.asarray(canvas, dtype=np.int32)


def shape_tables(shapes, name_to_train_id, isthing, path):
    """Per painted value (0 = nothing, k+1 = shape k): train id int64 [S+1] (-1 for 0) and instance key
    int64 [S+1]: thing shapes with the same group_id share a key, every other thing shape has its own,
    stuff shapes 0."""
    n = len(shapes)
    cls = np.full(n + 1, -1, np.int64)
    inst = np.zeros(n + 1, np.int64)
    groups = {}
    for k, shape in enumerate(shapes):
        label = shape.get("label")
        if label not in name_to_train_id:
            raise UserInputError("{}: unknown label {!r} (shape #{}); known: {}".format(
                path, label, k, ", ".join(sorted(name_to_train_id))))
        c = name_to_train_id[label]
        cls[k + 1] = c
        if isthing[c]:
            gid = shape.get("group_id")
            # a shape without group_id is its own instance: key n + 1 + k never collides with a group key
            inst[k + 1] = groups.setdefault((c, gid), len(groups) + 1) if gid is not None else n + 1 + k
    return cls, inst


def _image_source(ann, json_path):
    """(file name to write, path or bytes) of a labelme file's image: imagePath beside the json, else imageData."""
    rel = ann.get("imagePath") or ""
    folder = os.path.dirname(json_path)
    candidate = os.path.normpath(os.path.join(folder, rel.replace("\\", "/"))) if rel else ""
    stem = os.path.splitext(os.path.basename(json_path))[0]
    ext = os.path.splitext(rel)[1] or ".png"
    if candidate and os.path.isfile(candidate):
        return stem + ext, candidate
    if ann.get("imageData"):
        try:
            return stem + ext, base64.b64decode(ann["imageData"])
        except (ValueError, TypeError):
            raise UserInputError("{}: imageData is not valid base64".format(json_path))
    raise UserInputError("label without image: {} (imagePath {!r} not found: {}, and no imageData)".format(
        json_path, rel, candidate or folder))


def _embedded_size(data, json_path):
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size[1], im.size[0]
    except OSError as e:
        raise UserInputError("{}: cannot decode imageData: {}".format(json_path, e))


def convert_one_labelme(json_path, name_to_train_id, isthing):
    """(image file name, image path or bytes, segment id map int32 [H, W], `build_segments` arrays)."""
    ann = load_json(json_path, "labelme file")
    if not isinstance(ann, dict) or not isinstance(ann.get("shapes"), list):
        raise UserInputError("{}: not a labelme file (no 'shapes' list)".format(json_path))
    name, source = _image_source(ann, json_path)
    h, w = image_size(source) if isinstance(source, str) else _embedded_size(source, json_path)
    jh, jw = ann.get("imageHeight"), ann.get("imageWidth")
    if (jh is not None and jh != h) or (jw is not None and jw != w):
        raise UserInputError("sizes differ: {} says imageHeight x imageWidth {}x{}, its image {} is {}x{}".format(
            json_path, jh, jw, source if isinstance(source, str) else "(imageData)", h, w))
    shapes = ann["shapes"]
    cls, inst = shape_tables(shapes, name_to_train_id, isthing, json_path)
    painted = rasterize_shapes(shapes, h, w, json_path)
    seg_map, segments = build_segments(cls[painted], inst[painted], isthing)
    return name, source, seg_map, segments


def convert_labelme(categories, labelme, out, split, progress=None):
    """Convert a folder of labelme JSON files (searched recursively) into ``out`` (custom layout, `split`).

    A shape's label is a category name. Returns the summary dict of `SplitWriter.summary`.
    """
    files = find_by_stem(labelme, (".json",), "--labelme")
    if not files:
        raise UserInputError("no labelme .json files in {}".format(labelme))
    isthing = category_tables(categories)[1]
    name_to_train_id = {c["name"]: i for i, c in enumerate(categories)}
    with SplitWriter(out, split, categories) as writer:
        for stem in sorted(files):
            name, source, seg_map, segments = convert_one_labelme(files[stem], name_to_train_id, isthing)
            writer.add(stem, name, source, seg_map, segments)
            if progress is not None:
                progress()
        return writer.commit()
