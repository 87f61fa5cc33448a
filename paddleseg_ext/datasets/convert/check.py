"""Checking a COCO-panoptic-format split (the custom layout, or COCO's) file by file, with per-class
statistics and pictures of the ground truth drawn like `predict.py`'s."""
import os

import cv2
import numpy as np

from panoptic_metrics.panoptic_files import read_segment_ids

from ...utils import UserInputError, imread_checked, load_json, read_image
from ...visualize import class_palette, panoptic_panel
from .segments import compact_ids

#: instance area percentiles reported per thing class
PERCENTILES = (5, 50, 95)


def split_paths(dataset_root, mode, image_dir=None, json_file=None, label_dir=None, layout="custom"):
    """(image folder, json, PNG folder) of a split, as `CustomPanoptic` (layout 'custom') or
    `CocoPanoptic` (layout 'coco') resolve them: explicit paths are relative to `dataset_root`."""
    if layout == "coco":
        image_dir = image_dir or "{}2017".format(mode)
        json_file = json_file or os.path.join("annotations", "panoptic_{}2017.json".format(mode))
    else:
        image_dir = image_dir or os.path.join("images", mode)
        json_file = json_file or os.path.join("annotations", "panoptic_{}.json".format(mode))
    json_file = os.path.join(dataset_root, json_file)
    label_dir = os.path.join(dataset_root, label_dir) if label_dir else os.path.splitext(json_file)[0]
    return os.path.join(dataset_root, image_dir), json_file, label_dir


class _Problems(list):
    def add(self, where, text):
        self.append("{}: {}".format(where, text))


def _ids_text(ids, limit=8):
    ids = list(ids)
    return ", ".join(map(str, ids[:limit])) + (" ... ({} in all)".format(len(ids)) if len(ids) > limit else "")


def _load(json_file, problems):
    """The json's (images by id, annotations, categories) or None after recording why not."""
    try:
        gt = load_json(json_file, "panoptic annotation json")
    except UserInputError as e:
        problems.append(str(e))
        return None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(gt, dict) or k not in gt]
    if missing:
        problems.add(json_file, "missing key(s) {} (not a COCO panoptic json)".format(", ".join(missing)))
        return None
    cats = gt["categories"]
    ids = [c.get("id") for c in cats if isinstance(c, dict)] if isinstance(cats, list) else []
    if (not ids or len(ids) != len(cats) or len(set(ids)) != len(ids)
            or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)):
        problems.add(json_file, "`categories` is empty, malformed, lists an id twice or has an id that is not a "
                     "positive integer: {}".format(_ids_text(ids)))
        return None
    images = {}
    for im in gt["images"]:
        if im.get("id") in images:
            problems.add(json_file, "image id {!r} is listed twice in `images`".format(im.get("id")))
        images[im.get("id")] = im
    return images, gt["annotations"], cats


def _segment_tables(ann):
    """ids, category ids, areas (-1 where absent), iscrowd of an annotation's segments_info, int64 arrays."""
    segs = ann.get("segments_info") or []
    table = np.array([[s.get("id", -1), s.get("category_id", -1), s.get("area", -1), s.get("iscrowd", 0)]
                      for s in segs], np.int64).reshape(-1, 4)
    return table[:, 0], table[:, 1], table[:, 2], table[:, 3].astype(bool)


def _check_segments(where, ann, png_ids, cat_lut, problems):
    """Compare a PNG's segment ids with the json's list; returns (train id, area, iscrowd) of the sound segments."""
    seg_ids, cat_ids, areas, crowd = _segment_tables(ann)
    values, inverse, counts = _unique_nonzero(png_ids)
    listed, times = np.unique(seg_ids, return_counts=True)
    if (times > 1).any():
        problems.add(where, "segment id(s) {} listed more than once in segments_info".format(
            _ids_text(listed[times > 1])))
    not_listed = values[~np.isin(values, seg_ids)]
    if not_listed.size:
        problems.add(where, "PNG segment id(s) {} not in segments_info".format(_ids_text(not_listed)))
    absent = seg_ids[~np.isin(seg_ids, values)]
    if absent.size:
        problems.add(where, "segments_info id(s) {} do not occur in the PNG".format(_ids_text(absent)))
    known = (cat_ids >= 0) & (cat_ids < cat_lut.size)
    train = np.where(known, cat_lut[np.where(known, cat_ids, 0)], -1)
    if (train < 0).any():
        problems.add(where, "unknown category_id(s) {} (not in `categories`)".format(
            _ids_text(np.unique(cat_ids[train < 0]))))
    pixel_area = np.zeros(seg_ids.size, np.int64)
    pos = np.searchsorted(values, seg_ids)
    found = (pos < values.size) & (values[np.minimum(pos, max(values.size - 1, 0))] == seg_ids) if values.size else \
        np.zeros(seg_ids.size, bool)
    pixel_area[found] = counts[pos[found]]
    wrong = found & (areas >= 0) & (areas != pixel_area)
    if wrong.any():
        k = np.flatnonzero(wrong)[0]
        problems.add(where, "area of segment {} is {} in segments_info but {} in the PNG{}".format(
            seg_ids[k], areas[k], pixel_area[k], " ({} segments wrong)".format(wrong.sum()) if wrong.sum() > 1 else ""))
    ok = found & (train >= 0)
    return seg_ids, train, pixel_area, crowd, ok


def _unique_nonzero(ids):
    idx, values, counts = compact_ids(ids)
    if values.size and values[0] == 0:
        return values[1:], idx - 1, counts[1:]
    return values, idx, counts


def _image_hw(path):
    """(height, width) of a fully decoded image: a truncated or corrupt file is a problem too."""
    return imread_checked(path).shape[:2]


def _read_pair(im, ann, image_dir, label_dir, json_file, where, problems):
    """(image path, segment ids int64 [H, W]) of the `images` entry `im` and its annotation `ann`, or None
    after adding the problem (a file missing or unreadable, sizes that differ) to `problems`."""
    image_path = os.path.join(image_dir, str(im.get("file_name")))
    png_path = os.path.join(label_dir, str(ann.get("file_name")))
    if not os.path.isfile(image_path):
        problems.add(image_path, "image file not found (listed in {})".format(json_file))
        return None
    if not os.path.isfile(png_path):
        problems.add(png_path, "panoptic PNG not found (listed in {})".format(json_file))
        return None
    try:  # the messages name the file
        hw = _image_hw(image_path)
        png = read_segment_ids(png_path).astype(np.int64)
    except (UserInputError, OSError) as e:
        problems.append(str(e))
        return None
    json_hw = (im.get("height", hw[0]), im.get("width", hw[1]))
    if png.shape != hw or json_hw != hw:
        problems.add(where, "sizes differ (h x w): image {}x{}, PNG {}x{}, json {}x{}".format(
            hw[0], hw[1], png.shape[0], png.shape[1], json_hw[0], json_hw[1]))
        return None
    return image_path, png


def check_split(image_dir, json_file, label_dir, name="split", num_pictures=0, picture_dir=None, progress=None):
    """Check every image / PNG / json entry of a split.

    Returns dict: 'problems' (list of one-line str), 'categories', 'images' (int), per train id int64
    arrays 'class_images', 'class_segments', 'class_pixels', 'total_pixels' (int), 'percentiles'
    (float [C, len(PERCENTILES)], NaN without instances), 'pictures' (paths written).
    """
    problems = _Problems()
    result = {"name": name, "problems": problems, "images": 0, "pictures": [], "categories": []}
    for path, what in ((image_dir, "image"), (label_dir, "panoptic PNG")):
        if not os.path.isdir(path):
            problems.add(path, "{} folder not found".format(what))
    loaded = _load(json_file, problems)
    if loaded is None or problems:
        return result
    images, annotations, cats = loaded
    c = len(cats)
    result["categories"] = cats
    cat_ids = np.array([int(x["id"]) for x in cats], np.int64)
    cat_lut = np.full(int(cat_ids.max()) + 1, -1, np.int64)
    cat_lut[cat_ids] = np.arange(c)
    isthing = np.array([bool(x.get("isthing", 0)) for x in cats], bool)
    palette = class_palette(c, [x.get("color") or [128, 128, 128] for x in cats])
    annotated = set()
    seg_class, seg_area, seg_image, seg_crowd = [], [], [], []
    total = 0
    for ann in annotations:
        image_id = ann.get("image_id")
        where = "{} (image {!r})".format(json_file, image_id)
        if progress is not None:
            progress()
        if image_id in annotated:
            problems.add(where, "image has more than one annotation")
            continue
        annotated.add(image_id)
        if image_id not in images:
            problems.add(where, "annotation of an image that `images` does not list")
            continue
        pair = _read_pair(images[image_id], ann, image_dir, label_dir, json_file, where, problems)
        if pair is None:
            continue
        image_path, png = pair
        try:
            seg_ids, train, area, crowd, ok = _check_segments(where, ann, png, cat_lut, problems)
        except (TypeError, ValueError, AttributeError) as e:
            problems.add(where, "malformed segments_info ({})".format(e))
            continue
        result["images"] += 1
        total += png.size
        seg_class.append(train[ok])
        seg_area.append(area[ok])
        seg_crowd.append(crowd[ok])
        seg_image.append(np.full(ok.sum(), result["images"], np.int64))
        if len(result["pictures"]) < num_pictures and picture_dir:
            result["pictures"].append(_picture(image_path, png, seg_ids, train, crowd, isthing, palette,
                                               picture_dir, image_id))
    for image_id in images:
        if image_id not in annotated:
            problems.add(json_file, "image {!r} has no annotation".format(image_id))
    result.update(_class_statistics(np.concatenate(seg_class + [np.zeros(0, np.int64)]),
                                    np.concatenate(seg_area + [np.zeros(0, np.int64)]),
                                    np.concatenate(seg_image + [np.zeros(0, np.int64)]),
                                    np.concatenate(seg_crowd + [np.zeros(0, bool)]), isthing, c))
    result["total_pixels"] = total
    return result


def _class_statistics(cls, area, image, crowd, isthing, c):
    """Per-class images, segments, pixels and instance-area percentiles (no loop over classes)."""
    out = {"class_segments": np.bincount(cls, minlength=c), "class_pixels": np.bincount(cls, area, minlength=c)}
    pairs = np.unique(cls * (image.max() + 1 if image.size else 1) + image)
    out["class_images"] = np.bincount(pairs // (image.max() + 1 if image.size else 1), minlength=c)
    inst = isthing[cls] & ~crowd if cls.size else np.zeros(0, bool)
    ic, ia = cls[inst], area[inst]
    order = np.lexsort((ia, ic))
    ic, ia = ic[order], ia[order]
    n = np.bincount(ic, minlength=c)
    start = np.cumsum(n) - n
    pct = np.full((c, len(PERCENTILES)), np.nan)
    has = n > 0
    for j, q in enumerate(PERCENTILES):  # a few fixed percentiles, each for all classes at once
        pos = start[has] + np.floor(q / 100.0 * (n[has] - 1)).astype(np.int64)
        pct[has, j] = ia[pos]
    out["percentiles"] = pct
    return out


def _picture(image_path, png, seg_ids, train, crowd, isthing, palette, picture_dir, image_id):
    """Write image | semantic | instance | panoptic of the ground truth (predict.py's drawing code)."""
    c = len(palette)
    order = np.argsort(seg_ids)
    sorted_ids = seg_ids[order]
    pos = np.clip(np.searchsorted(sorted_ids, png), 0, max(sorted_ids.size - 1, 0))
    hit = (sorted_ids[pos] == png) & (png > 0) if sorted_ids.size else np.zeros(png.shape, bool)
    seg_train = np.where(train[order] >= 0, train[order], c)
    # things get instance numbers 1..K in segment order; stuff and crowd regions 0; void is class c
    is_inst = (seg_train < c) & isthing[np.minimum(seg_train, c - 1)] & ~crowd[order]
    number = np.cumsum(is_inst) * is_inst
    divisor = max(1000, int(number.max(initial=0)) + 1)
    semantic = np.where(hit, seg_train[pos], c)
    panoptic = semantic * divisor + np.where(hit, number[pos], 0)
    panel = panoptic_panel(read_image(image_path), semantic, panoptic, palette, label_divisor=divisor)
    os.makedirs(picture_dir, exist_ok=True)
    out = os.path.join(picture_dir, "{}_gt.png".format(image_id))
    if not cv2.imwrite(out, np.ascontiguousarray(panel[..., ::-1])):
        raise UserInputError("cannot write {}".format(out))
    return out


def format_statistics(result, train_classes=None):
    """Per-class table of a `check_split` result; `train_classes` (bool [C], the classes seen in train)
    marks the classes that never occur in train."""
    cats = result["categories"]
    if not cats or "class_segments" not in result:
        return ""
    share = 100.0 * result["class_pixels"] / max(result["total_pixels"], 1)
    lines = ["{}: {} images".format(result["name"], result["images"]),
             "{:>8} {:<20} {:>5} {:>7} {:>9} {:>8}  {}".format(
                 "id", "name", "kind", "images", "segments", "pixels%",
                 "instance area p{}/p{}/p{}".format(*PERCENTILES))]
    for k, cat in enumerate(cats):
        pct = result["percentiles"][k]
        areas = "-" if np.isnan(pct[0]) else "/".join(str(int(v)) for v in pct)
        note = "  never in train" if train_classes is not None and not train_classes[k] else ""
        lines.append("{:>8} {:<20} {:>5} {:>7} {:>9} {:>8.2f}  {}{}".format(
            cat["id"], str(cat.get("name", ""))[:20], "thing" if cat.get("isthing") else "stuff",
            int(result["class_images"][k]), int(result["class_segments"][k]), share[k], areas, note))
    return "\n".join(lines)
