"""Cityscapes panoptic dataset (the Cityscapes layout that PaddleSeg uses; labels from
cityscapesscripts' `createPanopticImgs --use-train-id`)."""
import glob
import os

from paddleseg.cvlibs import manager

from ..utils import UserInputError
from . import cityscapes_meta as meta
from .panoptic_dataset import PanopticDataset, load_json

IMAGE_SUFFIX = "_leftImg8bit.png"


@manager.DATASETS.add_component
class CityscapesPanoptic(PanopticDataset):
    """Cityscapes panoptic segmentation, 19 train ids, things = train ids 11..18.

    Expects ``<root>/leftImg8bit/<mode>/<city>/*_leftImg8bit.png``,
    ``<root>/gtFine/cityscapes_panoptic_<mode>_trainId.json`` and the PNGs in
    ``<root>/gtFine/cityscapes_panoptic_<mode>_trainId/`` (``tools/prepare_cityscapes.py`` makes
    them). `json_file` / `label_dir` name that ground truth (train-id categories) for evaluation;
    `official_json_file` / `official_label_dir` the label-id version cityscapesscripts evaluates.

    Args:
        dataset_root (str): Cityscapes root.
        transforms (list): transform objects or dicts ({'type': ..., ...}).
        mode (str): 'train' or 'val'.
        label_divisor, ignore_index, sigma, ignore_stuff_in_offset, small_instance_area,
        small_instance_weight, ignore_crowd_in_semantic: see `PanopticTargetGenerator`.
        target_generator (dict or object, optional): another model's targets, e.g.
            ``{type: PanopticFCNTargetGenerator, ...}`` (see `panoptic_dataset.build_target_generator`);
            default: Panoptic-DeepLab's from the arguments above.
    """

    NUM_CLASSES = meta.NUM_CLASSES
    IMG_CHANNELS = 3
    IGNORE_INDEX = meta.IGNORE_INDEX

    def __init__(self, dataset_root, transforms, mode="train", label_divisor=1000, ignore_index=255,
                 sigma=8, ignore_stuff_in_offset=True, small_instance_area=4096, small_instance_weight=3,
                 ignore_crowd_in_semantic=False, target_generator=None):
        super().__init__(dataset_root, transforms, mode, meta.THING_IDS, meta.CLASS_NAMES, meta.PALETTE,
                         label_divisor=label_divisor, ignore_index=ignore_index, sigma=sigma,
                         ignore_stuff_in_offset=ignore_stuff_in_offset, small_instance_area=small_instance_area,
                         small_instance_weight=small_instance_weight,
                         ignore_crowd_in_semantic=ignore_crowd_in_semantic, target_generator=target_generator)
        gt_root = os.path.join(dataset_root, "gtFine")
        self.json_file = os.path.join(gt_root, "cityscapes_panoptic_{}_trainId.json".format(mode))
        self.label_dir = os.path.join(gt_root, "cityscapes_panoptic_{}_trainId".format(mode))
        self.official_json_file = os.path.join(gt_root, "cityscapes_panoptic_{}.json".format(mode))
        self.official_label_dir = os.path.join(gt_root, "cityscapes_panoptic_{}".format(mode))
        self.image_dir = os.path.join(dataset_root, "leftImg8bit", mode)
        if not os.path.isdir(self.image_dir):
            raise UserInputError("Cityscapes image folder not found: {}".format(self.image_dir))
        if not os.path.isfile(self.json_file):
            raise UserInputError("Cityscapes panoptic annotation not found: {} (run `python tools/prepare_cityscapes.py "
                                 "--root {}` to create it)".format(self.json_file, dataset_root))
        if not os.path.isdir(self.label_dir):
            raise UserInputError("Cityscapes panoptic PNG folder not found: {}".format(self.label_dir))
        self.records = self._make_records()

    def _make_records(self):
        images = {os.path.basename(p)[:-len(IMAGE_SUFFIX)]: p
                  for p in glob.glob(os.path.join(self.image_dir, "*", "*" + IMAGE_SUFFIX))}
        if not images:
            raise UserInputError("no *{} images under {}".format(IMAGE_SUFFIX, self.image_dir))
        gt = load_json(self.json_file, "Cityscapes panoptic annotation")
        try:
            sizes = {im["id"]: (int(im["height"]), int(im["width"])) for im in gt["images"]}
            anns = {a["image_id"]: a for a in gt["annotations"]}
        except (KeyError, TypeError) as e:
            raise UserInputError("{}: missing key {} (not a panoptic annotation file?)".format(self.json_file, e))
        labels = {k: os.path.join(self.label_dir, a["file_name"]) for k, a in anns.items()}
        self.check_pairs(images, labels, self.image_dir, self.json_file)
        records = []
        for image_id in sorted(images):
            ann = anns[image_id]
            if not os.path.isfile(labels[image_id]):
                raise UserInputError("panoptic PNG listed in {} not found: {}".format(self.json_file, labels[image_id]))
            for s in ann["segments_info"]:
                if not 0 <= int(s["category_id"]) < self.NUM_CLASSES:
                    raise UserInputError("{}: image {!r} has category_id {} outside the 19 train ids; "
                                         "use the *_trainId.json made with --use-train-id".format(
                                             self.json_file, image_id, s["category_id"]))
            h, w = sizes.get(image_id, (None, None))
            records.append({
                "image_path": images[image_id],
                "label_path": labels[image_id],
                "image_id": image_id,
                "segments_info": ann["segments_info"],
                "height": h,
                "width": w,
            })
        return records
