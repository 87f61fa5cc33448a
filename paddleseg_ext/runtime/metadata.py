"""Class metadata of a config's dataset (names, colours, thing ids, label coding), read without the data."""
import inspect
import os
import types

from paddleseg.cvlibs import SegBuilder, manager
from paddleseg.utils import utils as paddleseg_utils
from paddleseg.utils.utils import CachedProperty

from ..datasets import cityscapes_meta, coco_meta
from ..datasets.custom_panoptic import parse_categories
from ..utils import UserInputError, load_json
from ..visualize.colors import class_palette
from .config import build, check_postprocess_thing_ids
from .schema import settings

#: dataset types whose metadata is known without reading their files
KNOWN_METADATA = {"CityscapesPanoptic": cityscapes_meta, "CocoPanoptic": coco_meta}


def dataset_metadata(cfg, builder=None, cfg_path="the config"):
    """Class metadata of a config's dataset.

    Returns a namespace with `num_classes`, `thing_ids`, `class_names`, `palette` (uint8 [C, 3]),
    `category_ids` (train id -> the dataset's own category id, for files written in the dataset's format:
    Cityscapes label ids, COCO category ids, a custom dataset's json ids; train ids themselves otherwise),
    `label_divisor`, `ignore_index` and `void_label` (= ignore_index * label_divisor, the void value of
    panoptic maps in this project). Known datasets (CityscapesPanoptic, CocoPanoptic) use their
    metadata modules; other dataset types are built (which needs their data).
    """
    ds_cfg = dict(cfg.val_dataset_cfg or cfg.train_dataset_cfg or {})
    ds_type = ds_cfg.get("type")
    meta = KNOWN_METADATA.get(ds_type)
    if meta is not None:
        thing_ids, class_names, palette = list(meta.THING_IDS), list(meta.CLASS_NAMES), meta.PALETTE
        num_classes = meta.NUM_CLASSES
        category_ids = [int(meta.TRAIN_ID_TO_CATEGORY_ID[i]) for i in range(num_classes)]
    else:
        builder = builder or SegBuilder(cfg)
        ds = build(builder, "val_dataset" if cfg.val_dataset_cfg else "train_dataset", cfg_path)
        thing_ids, class_names = list(ds.thing_ids), list(getattr(ds, "class_names", []))
        num_classes = int(ds.num_classes)
        palette = getattr(ds, "palette", None)
        category_ids = list(getattr(ds, "category_ids", None) or range(num_classes))
    check_num_classes(cfg, num_classes, thing_ids, cfg_path, "dataset {}".format(ds_type))
    configured = settings(cfg.dic, "postprocess", cfg_path)["thing_ids"]
    if configured is not None:
        thing_ids = configured
    label_divisor = int(ds_cfg.get("label_divisor", 1000))
    ignore_index = int(ds_cfg.get("ignore_index", 255))
    return types.SimpleNamespace(
        num_classes=int(num_classes), thing_ids=[int(t) for t in thing_ids], class_names=class_names,
        category_ids=[int(c) for c in category_ids], palette=class_palette(int(num_classes), palette), label_divisor=label_divisor,
        ignore_index=ignore_index, void_label=ignore_index * label_divisor)


def check_num_classes(cfg, num_classes, thing_ids, cfg_path, dataset="the dataset"):
    """The one class-count check: the config's ``model.num_classes`` (when given) must equal the dataset's
    `num_classes` (None: unknown, the model's is used), the dataset's `thing_ids` must be class ids, and
    ``postprocess.thing_ids`` valid and the dataset's (`check_postprocess_thing_ids`). `dataset` names the
    dataset in the error line."""
    model_nc = cfg.model_cfg.get("num_classes")
    if model_nc is not None and num_classes is not None and int(model_nc) != int(num_classes):
        raise UserInputError("num_classes mismatch in {}: model.num_classes={} but {} has {} classes".format(
            cfg_path, model_nc, dataset, num_classes))
    nc = int(num_classes if num_classes is not None else model_nc)
    bad = [t for t in thing_ids or [] if not 0 <= int(t) < nc]
    if bad:
        raise UserInputError("thing ids {} out of range for num_classes={} (config {})".format(bad, nc, cfg_path))
    check_postprocess_thing_ids(cfg, nc, thing_ids, cfg_path)


def classes_from_data(cfg):
    """True when the config's dataset reads its classes from its files (`NUM_CLASSES` None, e.g.
    CustomPanoptic): the model's `num_classes` (and `thing_ids`) then come from the dataset."""
    ds_type = (cfg.train_dataset_cfg or cfg.val_dataset_cfg or {}).get("type")
    cls = manager.DATASETS.components_dict.get(ds_type)
    return cls is not None and getattr(cls, "NUM_CLASSES", 0) is None


def check_train_categories(cfg, meta, cfg_path):
    """The train split's json must list the categories of `meta` (the val split's) in the same order: the
    train ids would mean other classes otherwise. Checked when the train json exists (val.py, predict.py
    and export.py run without the training data) and the dataset class can name it (`json_path`)."""
    train_cfg, val_cfg = cfg.train_dataset_cfg, cfg.val_dataset_cfg
    if not train_cfg or not val_cfg:
        return
    cls = manager.DATASETS.components_dict.get(train_cfg.get("type"))
    if not hasattr(cls, "json_path") or not train_cfg.get("dataset_root"):
        return
    path = cls.json_path(train_cfg["dataset_root"], train_cfg.get("mode", "train"), train_cfg.get("json_file"))
    if not os.path.isfile(path) or path == cls.json_path(val_cfg.get("dataset_root", ""), val_cfg.get("mode", "val"),
                                                         val_cfg.get("json_file")):
        return
    cats = parse_categories(load_json(path, "panoptic annotation").get("categories"), path)
    train = [(c["id"], bool(c["isthing"])) for c in cats]
    val = [(cid, t in meta.thing_ids) for t, cid in enumerate(meta.category_ids)]
    if train != val:
        raise UserInputError("{}: categories (id, isthing) {} differ from the val split's {} (config {}); both "
                             "json files must list the same categories in the same order".format(
                                 path, train[:10], val[:10], cfg_path))


class MetadataSegBuilder(SegBuilder):
    """PaddleSeg's `SegBuilder`; for a dataset whose classes come from its files (`classes_from_data`) the
    model gets `num_classes` and, when its constructor takes them, `thing_ids` from `dataset_metadata`
    (PaddleSeg's builder would copy the dataset class's NUM_CLASSES, None there). A config that gives
    them anyway must agree: one line names both values. The filled values are written into the
    builder's config (``config.dic['model']``; `build_model` gives it a copy of the caller's)."""

    def __init__(self, config, cfg_path="the config"):
        super().__init__(config)
        self.cfg_path = cfg_path

    @CachedProperty
    def model(self):
        if not classes_from_data(self.config):
            return SegBuilder.model.func(self)
        meta = dataset_metadata(self.config, self, self.cfg_path)  # checks a given model.num_classes
        check_train_categories(self.config, meta, self.cfg_path)
        model_cfg = self.config.dic.setdefault("model", {})
        model_cfg["num_classes"] = meta.num_classes
        cls = manager.MODELS.components_dict.get(model_cfg.get("type"))
        if cls is not None and "thing_ids" in inspect.signature(cls.__init__).parameters:
            given = model_cfg.get("thing_ids")
            if given is not None and sorted(int(t) for t in given) != sorted(meta.thing_ids):
                raise UserInputError("model.thing_ids {} in {} differ from the dataset's thing classes {} "
                                     "(leave model.thing_ids out: they come from the dataset)".format(
                                         list(given), self.cfg_path, meta.thing_ids))
            model_cfg["thing_ids"] = list(meta.thing_ids)
        built = self.config.model_cfg
        if paddleseg_utils.get_in_channels(built) is None:
            ds_type = (self.config.train_dataset_cfg or self.config.val_dataset_cfg)["type"]
            built = paddleseg_utils.set_in_channels(built, getattr(manager.DATASETS[ds_type], "IMG_CHANNELS", 3))
        self.show_msg("model", built)
        return self.build_component(built)
