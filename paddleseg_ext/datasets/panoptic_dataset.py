"""Shared base of the panoptic datasets: records, transforms, target generation, sample dict."""
import os

import numpy as np
import paddle
from paddleseg.cvlibs import manager
from paddleseg.transforms import Compose

from ..transforms.target_generator import PanopticTargetGenerator, segment_index_map
from ..utils import UserInputError, load_json, read_image, read_panoptic_png  # noqa: F401 (load_json: re-exported)

# Keys of a sample from the default (Panoptic-DeepLab) targets, see docs/design.md.
SAMPLE_KEYS = PanopticTargetGenerator.sample_keys


def build_transforms(transforms):
    """A list of transform objects or YAML-style dicts ({'type': name, ...}) -> list of objects."""
    if transforms is None:
        return []
    if not isinstance(transforms, (list, tuple)):
        raise UserInputError("transforms must be a list of transforms, got {!r}".format(type(transforms).__name__))
    built = []
    for t in transforms:
        if isinstance(t, dict):
            cfg = dict(t)
            name = cfg.pop("type", None)
            if name is None:
                raise UserInputError("transform {!r} has no 'type' key".format(t))
            if name not in manager.TRANSFORMS.components_dict:
                raise UserInputError("unknown transform type {!r} (not in manager.TRANSFORMS)".format(name))
            t = manager.TRANSFORMS[name](**cfg)
        elif not callable(t):
            raise UserInputError("transform {!r} is neither a dict nor callable".format(t))
        built.append(t)
    return built


def build_target_generator(spec, **dataset_args):
    """A dataset's `target_generator:` (an object, a dict ``{type: <name in manager.TRANSFORMS>, ...}``, or
    just the name: ``target_generator: PanopticFCNTargetGenerator``).

    A target generator is called as ``generator(panoptic, segments_info)`` (segment ids [H, W] and the
    json segments, after augmentation) and returns a dict of numpy arrays; the keys in its
    ``sample_keys`` go into the sample. `dataset_args` (ignore_index, thing_ids, label_divisor) fill
    constructor arguments the dict does not set, when the generator takes them. In a YAML config
    PaddleSeg builds a dict with a `type` itself, before the dataset exists, so a dataset whose classes
    come from its files (`CustomPanoptic`) takes the name form, which gets the dataset's thing ids.
    """
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        if not callable(spec) or not hasattr(spec, "sample_keys"):
            raise UserInputError("target_generator {!r} must be a dict with a `type` or a callable with "
                                 "`sample_keys`".format(spec))
        return spec
    cfg = dict(spec)
    name = cfg.pop("type", None)
    if name not in manager.TRANSFORMS.components_dict:
        raise UserInputError("target_generator: unknown type {!r} (not in manager.TRANSFORMS)".format(name))
    cls = manager.TRANSFORMS[name]
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    for k, v in dataset_args.items():
        if k in accepted and k not in cfg:
            cfg[k] = v
    try:
        return cls(**cfg)
    except TypeError as e:
        raise UserInputError("target_generator {}: {}".format(name, e))


class PanopticDataset(paddle.io.Dataset):
    """Base class: subclasses fill `self.records` and set the class metadata.

    A record is a dict with `image_path`, `label_path`, `image_id`, `segments_info` (train ids),
    `height`, `width`. `__getitem__` returns the sample dict of docs/design.md: `img` float32
    [3,H,W] after the transforms, the six targets of `PanopticTargetGenerator` computed after
    augmentation, `panoptic` int64 [H,W] and `idx` (int64).
    """

    NUM_CLASSES = None
    IMG_CHANNELS = 3
    IGNORE_INDEX = 255
    #: accepted `mode` values (None: any split name)
    MODES = ("train", "val")

    def __init__(self, dataset_root, transforms, mode, thing_ids, class_names, palette,
                 label_divisor=1000, ignore_index=255, sigma=8, ignore_stuff_in_offset=True,
                 small_instance_area=4096, small_instance_weight=3, ignore_crowd_in_semantic=False,
                 target_generator=None):
        super().__init__()
        self.check_root_and_mode(dataset_root, mode)
        self.dataset_root = dataset_root
        self.mode = mode
        self.transforms = build_transforms(transforms)
        self._compose = Compose(self.transforms, to_rgb=False, img_channels=self.IMG_CHANNELS)
        self.thing_ids = list(thing_ids)
        self.class_names = list(class_names)
        # NUM_CLASSES None: the classes come from the dataset's files (CustomPanoptic)
        self.num_classes = self.NUM_CLASSES if self.NUM_CLASSES is not None else len(self.class_names)
        self.palette = [list(c) for c in palette]
        self.label_divisor = int(label_divisor)
        self.ignore_index = int(ignore_index)
        if target_generator is None:
            self.target_generator = PanopticTargetGenerator(
                ignore_index=ignore_index, thing_ids=self.thing_ids, sigma=sigma,
                ignore_stuff_in_offset=ignore_stuff_in_offset, small_instance_area=small_instance_area,
                small_instance_weight=small_instance_weight, ignore_crowd_in_semantic=ignore_crowd_in_semantic,
                label_divisor=label_divisor)
        else:
            self.target_generator = build_target_generator(
                target_generator, ignore_index=self.ignore_index, thing_ids=self.thing_ids,
                label_divisor=self.label_divisor)
        self.records = []

    @classmethod
    def check_root_and_mode(cls, dataset_root, mode):
        """One-line errors for an unknown `mode` or a `dataset_root` that is not a folder."""
        if cls.MODES is not None and mode not in cls.MODES:
            raise UserInputError("{}: unknown mode {!r}, expected one of {}".format(
                cls.__name__, mode, ", ".join(cls.MODES)))
        if not isinstance(mode, str) or not mode or os.sep in mode:
            raise UserInputError("{}: mode must be a split name such as 'train' or 'val', got {!r}".format(
                cls.__name__, mode))
        if dataset_root is None or not os.path.isdir(dataset_root):
            raise UserInputError("{}: dataset_root is not a directory: {}".format(cls.__name__, dataset_root))

    def __len__(self):
        return len(self.records)

    def read_label(self, record):
        """[H, W] int32 segment ids of a record, checked against its json segments."""
        label = read_panoptic_png(record["label_path"])
        ids = [s["id"] for s in record["segments_info"]]
        sidx = segment_index_map(label, ids)
        unknown = (sidx == len(ids)) & (label != 0)
        if unknown.any():
            missing = np.unique(label[unknown])
            raise UserInputError("{}: segment ids {} are in the PNG but not in the json segments_info of image {!r}".format(
                record["label_path"], missing[:20].tolist(), record["image_id"]))
        return label

    def load_sample(self, idx):
        """Image [H,W,3] float32 RGB and label [H,W] int32 segment ids of record `idx`, untransformed."""
        record = self.records[idx]
        img = read_image(record["image_path"]).astype(np.float32)
        label = self.read_label(record)
        if img.shape[:2] != label.shape:
            raise UserInputError("image {} is {}x{} but its label {} is {}x{} (h x w)".format(
                record["image_path"], img.shape[0], img.shape[1], record["label_path"], label.shape[0], label.shape[1]))
        return img, label

    def __getitem__(self, idx):
        img, label = self.load_sample(idx)
        data = {"img": img, "label": label, "gt_fields": ["label"], "trans_info": []}
        data = self._compose(data)
        targets = self.target_generator(data["label"], self.records[idx]["segments_info"])
        sample = {"img": np.ascontiguousarray(data["img"], dtype=np.float32)}
        for key in self.target_generator.sample_keys:
            sample[key] = targets[key]
        sample["idx"] = np.int64(idx)
        return sample

    def check_pairs(self, image_paths, label_paths, image_root, label_root):
        """Raise if an image has no label or a label no image (paths given as dicts key -> path)."""
        no_label = sorted(set(image_paths) - set(label_paths))
        if no_label:
            raise UserInputError("{} image(s) under {} have no panoptic annotation in {}, e.g. {}".format(
                len(no_label), image_root, label_root, image_paths[no_label[0]]))
        no_image = sorted(set(label_paths) - set(image_paths))
        if no_image:
            raise UserInputError("{} annotation(s) in {} have no image under {}, e.g. {}".format(
                len(no_image), label_root, image_root, label_paths[no_image[0]]))
