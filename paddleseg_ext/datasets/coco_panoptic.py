"""COCO panoptic dataset (annotations/panoptic_{train,val}2017.json + PNGs, {train,val}2017/*.jpg)."""
import os

from paddleseg.cvlibs import manager

from ..utils import UserInputError
from . import coco_meta as meta
from .panoptic_dataset import PanopticDataset, load_json


@manager.DATASETS.add_component
class CocoPanoptic(PanopticDataset):
    """COCO panoptic segmentation, 133 classes mapped to contiguous train ids (things 0..79).

    Args:
        dataset_root (str): COCO root holding `annotations/`, `train2017/`, `val2017/`.
        transforms (list): transform objects or dicts ({'type': ..., ...}).
        mode (str): 'train' or 'val'.
        json_file (str, optional): annotation json; default
            ``<root>/annotations/panoptic_<mode>2017.json``. Its PNGs are looked up in the folder of
            the same name without '.json'.
        label_divisor, ignore_index, sigma, ignore_stuff_in_offset, small_instance_area,
        small_instance_weight, ignore_crowd_in_semantic: see `PanopticTargetGenerator`.
        target_generator (dict or object, optional): another model's targets, e.g.
            ``{type: PanopticFCNTargetGenerator, ...}`` (see `panoptic_dataset.build_target_generator`);
            default: Panoptic-DeepLab's from the arguments above.

    Records' `segments_info` carry train ids; `json_file` / `label_dir` stay the COCO originals
    (COCO category ids) for evaluation, with `meta.TRAIN_ID_TO_CATEGORY_ID` to map back.
    """

    NUM_CLASSES = meta.NUM_CLASSES
    IMG_CHANNELS = 3
    IGNORE_INDEX = meta.IGNORE_INDEX

    def __init__(self, dataset_root, transforms, mode="train", json_file=None, label_divisor=1000,
                 ignore_index=255, sigma=8, ignore_stuff_in_offset=True, small_instance_area=4096,
                 small_instance_weight=3, ignore_crowd_in_semantic=False,
                 target_generator=None):
        super().__init__(dataset_root, transforms, mode, meta.THING_IDS, meta.CLASS_NAMES, meta.PALETTE,
                         label_divisor=label_divisor, ignore_index=ignore_index, sigma=sigma,
                         ignore_stuff_in_offset=ignore_stuff_in_offset, small_instance_area=small_instance_area,
                         small_instance_weight=small_instance_weight,
                         ignore_crowd_in_semantic=ignore_crowd_in_semantic, target_generator=target_generator)
        if json_file is None:
            json_file = os.path.join(dataset_root, "annotations", "panoptic_{}2017.json".format(mode))
        self.json_file = json_file
        self.label_dir = os.path.splitext(json_file)[0]
        self.image_dir = os.path.join(dataset_root, "{}2017".format(mode))
        self.category_id_to_train_id = dict(meta.CATEGORY_ID_TO_TRAIN_ID)
        self.train_id_to_category_id = dict(meta.TRAIN_ID_TO_CATEGORY_ID)
        if not os.path.isdir(self.image_dir):
            raise UserInputError("COCO image folder not found: {}".format(self.image_dir))
        if not os.path.isfile(self.json_file):
            raise UserInputError("COCO panoptic annotation not found: {}".format(self.json_file))
        if not os.path.isdir(self.label_dir):
            raise UserInputError("COCO panoptic PNG folder not found: {}".format(self.label_dir))
        self.records = self._make_records()

    def _make_records(self):
        gt = load_json(self.json_file, "COCO panoptic annotation")
        try:
            images = {im["id"]: im for im in gt["images"]}
            anns = {a["image_id"]: a for a in gt["annotations"]}
        except (KeyError, TypeError) as e:
            raise UserInputError("{}: missing key {} (not a panoptic annotation file?)".format(self.json_file, e))
        image_paths = {k: os.path.join(self.image_dir, im["file_name"]) for k, im in images.items()}
        label_paths = {k: os.path.join(self.label_dir, a["file_name"]) for k, a in anns.items()}
        self.check_pairs(image_paths, label_paths, self.json_file + " 'images'", self.json_file + " 'annotations'")
        records = []
        for image_id in sorted(images):
            for path, what in ((image_paths[image_id], "image"), (label_paths[image_id], "panoptic PNG")):
                if not os.path.isfile(path):
                    raise UserInputError("{} listed in {} not found: {}".format(what, self.json_file, path))
            segments = []
            for s in anns[image_id]["segments_info"]:
                cid = int(s["category_id"])
                if cid not in self.category_id_to_train_id:
                    raise UserInputError("{}: image {!r} segment {} has unknown category_id {} (not one of the 133 "
                                         "COCO panoptic categories)".format(self.json_file, image_id, s.get("id"), cid))
                seg = dict(s)
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
