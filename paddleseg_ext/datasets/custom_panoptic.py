"""A panoptic dataset in COCO panoptic format with any categories (a user's own data).

Layout under `dataset_root` (each of the three can be given explicitly):
``images/<mode>/`` (the images, `images[].file_name` relative to it), ``annotations/panoptic_<mode>.json``
(COCO panoptic json: `images`, `annotations`, `categories`) and ``annotations/panoptic_<mode>/`` (the PNGs,
`annotations[].file_name` relative to it). The classes are the json's `categories` (``id``, ``name``,
``isthing``, optional ``color``), in the json's order: category ``categories[i].id`` is train id ``i``.
"""
import collections
import os

from paddleseg.cvlibs import manager
from paddleseg.utils.visualize import get_color_map_list

from ..utils import UserInputError
from .panoptic_dataset import PanopticDataset, load_json


def parse_categories(categories, where):
    """The json's `categories` -> list of ``{id, name, isthing, color}`` (color an RGB list or None).

    Ids must be distinct positive integers (any, e.g. 7, 23, 101, 10000); one-line errors name `where`.
    """
    if not isinstance(categories, list) or not categories:
        raise UserInputError("{}: `categories` is empty or not a list; list every class as "
                             "{{id, name, isthing, color}}".format(where))
    out, seen = [], set()
    for i, c in enumerate(categories):
        if not isinstance(c, dict) or "id" not in c:
            raise UserInputError("{}: categories[{}] has no `id`: {!r}".format(where, i, c))
        try:
            cid = int(c["id"])
        except (TypeError, ValueError):
            cid = -1
        if cid <= 0 or cid != c["id"]:
            raise UserInputError("{}: categories[{}] id {!r} is not a positive integer".format(where, i, c["id"]))
        if cid in seen:
            raise UserInputError("{}: category id {} is listed twice in `categories`".format(where, cid))
        seen.add(cid)
        isthing = c.get("isthing")
        if isthing not in (0, 1, True, False):
            raise UserInputError("{}: category {} has isthing={!r}; use 1 (countable objects) or 0 (stuff)".format(
                where, cid, isthing))
        color = c.get("color")
        if color is not None and (not isinstance(color, (list, tuple)) or len(color) != 3 or
                                  not all(isinstance(v, int) and 0 <= v <= 255 for v in color)):
            raise UserInputError("{}: category {} color {!r} is not [R, G, B] in 0..255".format(where, cid, color))
        out.append({"id": cid, "name": str(c.get("name", cid)), "isthing": int(isthing),
                    "color": list(color) if color is not None else None})
    return out


def category_palette(categories):
    """RGB per category: its `color`, or PaddleSeg's colour map for those without one."""
    generated = get_color_map_list(len(categories))
    return [c["color"] or generated[3 * i:3 * i + 3] for i, c in enumerate(categories)]


@manager.DATASETS.add_component
class CustomPanoptic(PanopticDataset):
    """Panoptic segmentation with the classes of the annotation json (COCO panoptic format).

    Args:
        dataset_root (str): root of the default layout (and of relative `image_dir`, `json_file`, `label_dir`).
        transforms (list): transform objects or dicts ({'type': ..., ...}).
        mode (str): the split name ('train', 'val', 'test', ...), used by the default layout.
        image_dir (str, optional): image folder; default ``<root>/images/<mode>``.
        json_file (str, optional): COCO panoptic json; default ``<root>/annotations/panoptic_<mode>.json``.
        label_dir (str, optional): panoptic PNG folder; default: `json_file` without '.json'.
        label_divisor, ignore_index, sigma, ignore_stuff_in_offset, small_instance_area,
        small_instance_weight, ignore_crowd_in_semantic: see `PanopticTargetGenerator`.
        target_generator (str, dict or object, optional): another model's targets; in a YAML config give
            the name only (``target_generator: PanopticFCNTargetGenerator``) so that it gets this dataset's
            thing ids (see `panoptic_dataset.build_target_generator`).

    Attributes: `categories` (the parsed json categories), `category_ids` (train id -> category id, a
    list), `train_id_to_category_id` / `category_id_to_train_id` (dicts), `num_classes`, `class_names`,
    `thing_ids` (train ids of the categories with isthing 1), `palette`. Records' `segments_info` carry
    train ids; `json_file` / `label_dir` stay the originals (category ids) for evaluation.
    """

    NUM_CLASSES = None  # from the json
    IMG_CHANNELS = 3
    IGNORE_INDEX = 255
    MODES = None
    #: default image folder and json under dataset_root, formatted with the mode (PNGs: the json's name)
    LAYOUT = (os.path.join("images", "{mode}"), os.path.join("annotations", "panoptic_{mode}.json"))
    #: what the annotation is called in messages
    WHAT = "panoptic annotation"

    def __init__(self, dataset_root, transforms, mode="train", image_dir=None, json_file=None, label_dir=None,
                 label_divisor=1000, ignore_index=255, sigma=8, ignore_stuff_in_offset=True,
                 small_instance_area=4096, small_instance_weight=3, ignore_crowd_in_semantic=False,
                 target_generator=None):
        self.check_root_and_mode(dataset_root, mode)
        default_images = self.LAYOUT[0].format(mode=mode)
        self.image_dir = os.path.join(dataset_root, image_dir or default_images)
        self.json_file = self.json_path(dataset_root, mode, json_file)
        self.label_dir = (os.path.join(dataset_root, label_dir) if label_dir
                          else os.path.splitext(self.json_file)[0])
        for path, what, exists in ((self.json_file, self.WHAT, os.path.isfile),
                                   (self.image_dir, "image folder", os.path.isdir),
                                   (self.label_dir, "panoptic PNG folder", os.path.isdir)):
            if not exists(path):
                raise UserInputError("{}: {} not found: {}".format(type(self).__name__, what, path))
        gt = load_json(self.json_file, self.WHAT)
        if not isinstance(gt, dict):
            raise UserInputError("{}: not a COCO panoptic json (a dict with images, annotations, categories)".format(
                self.json_file))
        self.categories = self.read_categories(gt)
        if 0 <= int(ignore_index) < len(self.categories):  # train id `ignore_index` would be void
            raise UserInputError("{}: {} categories, but train ids must stay below ignore_index {}; set "
                                 "ignore_index: {} (or more) in the dataset config".format(
                                     self.json_file, len(self.categories), ignore_index, len(self.categories)))
        self.category_ids = [c["id"] for c in self.categories]
        self.category_id_to_train_id = {cid: i for i, cid in enumerate(self.category_ids)}
        self.train_id_to_category_id = dict(enumerate(self.category_ids))
        super().__init__(dataset_root, transforms, mode, [i for i, c in enumerate(self.categories) if c["isthing"]],
                         [c["name"] for c in self.categories], category_palette(self.categories),
                         label_divisor=label_divisor, ignore_index=ignore_index, sigma=sigma,
                         ignore_stuff_in_offset=ignore_stuff_in_offset, small_instance_area=small_instance_area,
                         small_instance_weight=small_instance_weight,
                         ignore_crowd_in_semantic=ignore_crowd_in_semantic, target_generator=target_generator)
        self.records = self._make_records(gt)

    @classmethod
    def json_path(cls, dataset_root, mode, json_file=None):
        """The annotation json of a split: `json_file` (relative to `dataset_root`) or the default layout's."""
        return os.path.join(dataset_root, json_file or cls.LAYOUT[1].format(mode=mode))

    def read_categories(self, gt):
        """The dataset's classes in train-id order (list of ``{id, name, isthing, color}``)."""
        return parse_categories(gt.get("categories"), self.json_file)

    def unknown_category_message(self, image_id, segment, cid):
        return "{}: image {!r} segment {} has category_id {}, which is not in its `categories` (ids {})".format(
            self.json_file, image_id, segment.get("id"), cid, self.category_ids[:20])

    def _make_records(self, gt):
        try:
            images = {im["id"]: im for im in gt["images"]}
            anns = {a["image_id"]: a for a in gt["annotations"]}
            image_paths = {k: os.path.join(self.image_dir, im["file_name"]) for k, im in images.items()}
            label_paths = {k: os.path.join(self.label_dir, a["file_name"]) for k, a in anns.items()}
        except (KeyError, TypeError) as e:
            raise UserInputError("{}: missing key {} (not a COCO panoptic annotation file?)".format(self.json_file, e))
        if not images:
            raise UserInputError("{}: `images` is empty".format(self.json_file))
        for key, entries, found in (("images", gt["images"], images), ("annotations", gt["annotations"], anns)):
            if len(found) != len(entries):
                counts = collections.Counter(e["id" if key == "images" else "image_id"] for e in entries)
                twice = next(i for i, n in counts.items() if n > 1)
                raise UserInputError("{}: image id {!r} appears more than once in `{}`".format(
                    self.json_file, twice, key))
        self.check_pairs(image_paths, label_paths, self.json_file + " 'images'", self.json_file + " 'annotations'")
        records = []
        for image_id in sorted(images, key=lambda k: (type(k).__name__, k)):  # ints in numeric order
            for path, what in ((image_paths[image_id], "image"), (label_paths[image_id], "panoptic PNG")):
                if not os.path.isfile(path):
                    raise UserInputError("{} of image {!r} listed in {} not found: {}".format(
                        what, image_id, self.json_file, path))
            segments = []
            for s in anns[image_id].get("segments_info", []):
                try:
                    cid = int(s["category_id"])
                    seg_id = int(s["id"])
                except (KeyError, TypeError, ValueError):
                    raise UserInputError("{}: image {!r} has a segment without integer `id` and `category_id`: "
                                         "{!r}".format(self.json_file, image_id, s))
                if cid not in self.category_id_to_train_id:
                    raise UserInputError(self.unknown_category_message(image_id, s, cid))
                seg = dict(s)
                seg["id"] = seg_id
                seg["category_id"] = self.category_id_to_train_id[cid]
                seg["iscrowd"] = int(s.get("iscrowd", 0))
                segments.append(seg)
            im = images[image_id]
            records.append({
                "image_path": image_paths[image_id],
                "label_path": label_paths[image_id],
                "image_id": image_id,
                "segments_info": segments,
                "height": int(im["height"]) if "height" in im else None,
                "width": int(im["width"]) if "width" in im else None,
            })
        return records
