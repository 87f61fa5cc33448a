"""COCO panoptic dataset (annotations/panoptic_{train,val}2017.json + PNGs, {train,val}2017/*.jpg)."""
import os

from paddleseg.cvlibs import manager

from . import coco_meta as meta
from .custom_panoptic import CustomPanoptic


@manager.DATASETS.add_component
class CocoPanoptic(CustomPanoptic):
    """COCO panoptic segmentation, 133 classes mapped to contiguous train ids (things 0..79).

    `CustomPanoptic` with COCO's fixed categories (`coco_meta`, whatever the json lists) and layout.

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
    (COCO category ids) for evaluation, with `train_id_to_category_id` to map back.
    """

    NUM_CLASSES = meta.NUM_CLASSES
    IMG_CHANNELS = 3
    IGNORE_INDEX = meta.IGNORE_INDEX
    MODES = ("train", "val")
    LAYOUT = ("{mode}2017", os.path.join("annotations", "panoptic_{mode}2017.json"))
    WHAT = "COCO panoptic annotation"

    def __init__(self, dataset_root, transforms, mode="train", json_file=None, label_divisor=1000,
                 ignore_index=255, sigma=8, ignore_stuff_in_offset=True, small_instance_area=4096,
                 small_instance_weight=3, ignore_crowd_in_semantic=False,
                 target_generator=None):
        super().__init__(dataset_root, transforms, mode, json_file=json_file, label_divisor=label_divisor,
                         ignore_index=ignore_index, sigma=sigma, ignore_stuff_in_offset=ignore_stuff_in_offset,
                         small_instance_area=small_instance_area, small_instance_weight=small_instance_weight,
                         ignore_crowd_in_semantic=ignore_crowd_in_semantic, target_generator=target_generator)

    def read_categories(self, gt):
        return [{"id": cid, "name": name, "isthing": int(isthing), "color": list(color)}
                for cid, isthing, name, color in meta.COCO_PANOPTIC_CATEGORIES]

    def unknown_category_message(self, image_id, segment, cid):
        return "{}: image {!r} segment {} has unknown category_id {} (not one of the 133 COCO panoptic " \
               "categories)".format(self.json_file, image_id, segment.get("id"), cid)
