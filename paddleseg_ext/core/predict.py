"""Prediction on image files: panoptic / semantic / instance pictures and raw panoptic PNGs.

For an input ``<image_path>/<sub/dirs>/<name>.<ext>`` the outputs are written to
``<save_dir>/<sub/dirs>/`` as

- ``<name>_panoptic.png``      panoptic picture: stuff in its class colour, every thing instance in a
  colour jittered from its class colour, blended over the image, white instance borders;
- ``<name>_semantic.png``      per-pixel class (argmax of the semantic head) in class colours;
- ``<name>_instance.png``      thing instances only, one distinct colour each, white borders;
- ``<name>_panoptic_raw.png``  the panoptic map itself, ``class * label_divisor + instance`` (void =
  ``255 * label_divisor``), COCO-encoded as ``id = R + 256 G + 256^2 B`` (lossless;
  ``paddleseg_ext.utils.read_panoptic_png`` reads it back).

Images are split over the ranks of ``paddle.distributed.launch``: image i goes to rank i % nranks.
"""
import argparse
import os
import sys
import types

import numpy as np
import paddle

from ..utils import UserInputError, read_image, write_panoptic_png

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

#: output file suffixes (appended to the input image name without extension)
OUTPUT_SUFFIXES = {
    "panoptic": "_panoptic.png",
    "semantic": "_semantic.png",
    "instance": "_instance.png",
    "panoptic_raw": "_panoptic_raw.png",
}


def _warn(msg):
    """A one-line warning on stderr (rank 0 only, so a distributed run does not repeat it)."""
    if paddle.distributed.get_rank() == 0:
        print("warning: {}".format(msg), file=sys.stderr, flush=True)


def is_image_file(path):
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def collect_images(image_path):
    """The images named by `image_path` and the folder their output names are relative to.

    Args:
        image_path (str): an image file, a folder (searched recursively, sorted) or a ``.txt`` file
            listing one image path per line (relative paths are relative to the list's folder; blank
            lines and lines starting with ``#`` are ignored; extra columns after a space are ignored).
    Returns:
        (list of image paths, root folder). Non-image files are skipped with a warning.
    Raises:
        UserInputError: the path does not exist, a listed image is missing, or no image was found.
    """
    if not image_path:
        raise UserInputError("no --image_path given")
    if not os.path.exists(image_path):
        raise UserInputError("--image_path not found: {}".format(image_path))
    skipped = []
    if os.path.isdir(image_path):
        root = image_path
        images = []
        for d, subdirs, files in os.walk(image_path, followlinks=True):
            subdirs.sort()
            for f in sorted(files):
                p = os.path.join(d, f)
                (images if is_image_file(p) else skipped).append(p)
    elif image_path.lower().endswith(".txt"):
        base = os.path.dirname(os.path.abspath(image_path))
        images = []
        with open(image_path, "r") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                p = line.split()[0]
                p = p if os.path.isabs(p) else os.path.join(base, p)
                if not os.path.isfile(p):
                    raise UserInputError("{} line {}: image not found: {}".format(image_path, lineno, p))
                (images if is_image_file(p) else skipped).append(p)
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in images]) if images else base
        images = [os.path.abspath(p) for p in images]
    elif is_image_file(image_path):
        return [image_path], os.path.dirname(image_path)
    else:
        raise UserInputError("--image_path must be an image file ({}), a folder or a .txt list of images: {}".format(
            "/".join(IMAGE_EXTENSIONS), image_path))
    for p in skipped:
        _warn("skipping non-image file {}".format(p))
    if not images:
        raise UserInputError("no images ({}) found in {}".format("/".join(IMAGE_EXTENSIONS), image_path))
    return images, root


def output_paths(save_dir, image_file, image_root):
    """Output file paths (dict kind -> path, kinds of OUTPUT_SUFFIXES) of one input image."""
    rel = os.path.relpath(os.path.abspath(image_file), os.path.abspath(image_root))
    if rel.startswith(os.pardir):
        rel = os.path.basename(image_file)
    stem = os.path.splitext(rel)[0]
    return {k: os.path.join(save_dir, stem + s) for k, s in OUTPUT_SUFFIXES.items()}


def prepare_save_dir(save_dir):
    """Create `save_dir`; UserInputError if it cannot be created or written to."""
    try:
        os.makedirs(save_dir, exist_ok=True)
    except OSError as e:
        raise UserInputError("cannot create --save_dir {}: {}".format(save_dir, e.strerror or e))
    if not os.path.isdir(save_dir) or not os.access(save_dir, os.W_OK | os.X_OK):
        raise UserInputError("--save_dir is not a writable folder: {}".format(save_dir))


def _imwrite(path, rgb):
    import cv2

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(rgb[..., ::-1])):
        raise UserInputError("cannot write {}".format(path))


def save_prediction(paths, image, semantic, panoptic, palette, label_divisor=1000, alpha=0.5):
    """Write the four outputs of one image.

    Args:
        paths (dict): from `output_paths`.
        image: uint8 [H, W, 3] RGB.
        semantic: int [H, W] class ids.
        panoptic: int [H, W] ``class * label_divisor + instance``.
        palette: uint8 [C, 3].
    """
    from ..visualize import visualize_instance, visualize_panoptic, visualize_semantic

    _imwrite(paths["panoptic"], visualize_panoptic(panoptic, palette, label_divisor, image, alpha))
    _imwrite(paths["semantic"], visualize_semantic(semantic, palette, image, alpha))
    _imwrite(paths["instance"], visualize_instance(panoptic, label_divisor, image, alpha))
    write_panoptic_png(paths["panoptic_raw"], np.asarray(panoptic, dtype=np.int64))


def dataset_metadata(cfg, builder=None, cfg_path="the config"):
    """Class metadata of a config's dataset without reading the dataset from disk.

    Returns a namespace with `num_classes`, `thing_ids`, `class_names`, `palette` (uint8 [C, 3]),
    `label_divisor`, `ignore_index`. Known datasets (CityscapesPanoptic, CocoPanoptic) use their
    metadata modules; other dataset types are built (which needs their data).
    """
    from ..visualize import class_palette

    ds_cfg = dict(cfg.val_dataset_cfg or cfg.train_dataset_cfg or {})
    ds_type = ds_cfg.get("type")
    meta = None
    if ds_type == "CityscapesPanoptic":
        from ..datasets import cityscapes_meta as meta
    elif ds_type == "CocoPanoptic":
        from ..datasets import coco_meta as meta
    if meta is not None:
        thing_ids, class_names, palette = list(meta.THING_IDS), list(meta.CLASS_NAMES), meta.PALETTE
        num_classes = meta.NUM_CLASSES
    else:
        if builder is None:
            from paddleseg.cvlibs import SegBuilder
            builder = SegBuilder(cfg)
        from .inference import build
        ds = build(builder, "val_dataset" if cfg.val_dataset_cfg else "train_dataset", cfg_path)
        thing_ids, class_names = list(ds.thing_ids), list(getattr(ds, "class_names", []))
        num_classes = int(ds.num_classes)
        palette = getattr(ds, "palette", None)
    block = cfg.dic.get("postprocess", {}) or {}
    model_nc = cfg.model_cfg.get("num_classes")
    if model_nc is not None and int(model_nc) != int(num_classes):
        raise UserInputError("num_classes mismatch in {}: model.num_classes={} but dataset {} has {} classes".format(
            cfg_path, model_nc, ds_type, num_classes))
    from .inference import check_postprocess_thing_ids

    check_postprocess_thing_ids(cfg, num_classes, thing_ids, cfg_path)
    if "thing_ids" in block:
        thing_ids = [int(t) for t in block["thing_ids"]]
    return types.SimpleNamespace(
        num_classes=int(num_classes), thing_ids=thing_ids, class_names=class_names,
        palette=class_palette(int(num_classes), palette),
        label_divisor=int(ds_cfg.get("label_divisor", 1000)), ignore_index=int(ds_cfg.get("ignore_index", 255)))


def preprocess(image, transforms):
    """uint8 [H, W, 3] RGB -> (float32 [1, 3, H', W'] array after the val transforms, trans_info)."""
    from paddleseg.transforms import Compose

    data = Compose(list(transforms), to_rgb=False)({"img": image.astype(np.float32), "trans_info": []})
    return np.ascontiguousarray(data["img"][None], dtype=np.float32), data.get("trans_info", [])


def _resize_outputs(sem, ctr, off, hw, align_corners):
    """Bring [C,h,w] / [1,h,w] / [2,h,w] outputs of a resized input back to `hw` (offsets rescaled)."""
    import paddle.nn.functional as F

    h, w = int(sem.shape[1]), int(sem.shape[2])
    up = lambda t: F.interpolate(t[None], size=list(hw), mode="bilinear", align_corners=align_corners)[0]  # noqa: E731
    scale = paddle.to_tensor([hw[0] / h, hw[1] / w], dtype=off.dtype).reshape([2, 1, 1])
    return up(sem), up(ctr), up(off) * scale


def predict_image(model, image, transforms, post_params, scales=(1.0,), flip=False):
    """Semantic and panoptic maps of one image at its own resolution.

    Args:
        model: PanopticDeepLab in eval mode.
        image: uint8 [H, W, 3] RGB.
        transforms: val transform objects (normalisation, bottom/right padding).
        post_params (dict): keyword arguments of `panoptic_postprocess`.
        scales, flip: test-time augmentation (see `inference.predict_outputs`).
    Returns:
        (semantic int64 [H, W], panoptic int64 [H, W]) numpy arrays.
    """
    from ..postprocess import panoptic_postprocess
    from ..utils.arrays import to_numpy
    from .inference import predict_outputs

    h, w = image.shape[:2]
    x, _ = preprocess(image, transforms)
    th, tw = x.shape[2:]
    with paddle.no_grad():
        x = paddle.to_tensor(x)
        if th >= h and tw >= w:
            # padding (bottom/right) or nothing: crop the outputs back to the image
            sem, ctr, off = predict_outputs(model, x, (h, w), scales=scales, flip=flip)
        else:
            sem, ctr, off = predict_outputs(model, x, None, scales=scales, flip=flip)
            sem, ctr, off = _resize_outputs(sem, ctr, off, (h, w), bool(getattr(model, "align_corners", False)))
        semantic = paddle.argmax(sem, axis=0)
        panoptic, _ = panoptic_postprocess(semantic, ctr, off, **post_params)
    return to_numpy(semantic).astype(np.int64), to_numpy(panoptic).astype(np.int64)


def predict(model, image_list, image_root, save_dir, transforms, post_params, palette, scales=(1.0,),
            flip=False, rank=0, nranks=1, alpha=0.5, progress=True):
    """Predict this rank's share of `image_list` (images i with i % nranks == rank) and save the outputs.

    Returns:
        list of (image path, dict of written output paths).
    Raises:
        UserInputError: after all other images are done, when some could not be read (each one is
            reported by a warning as it is skipped); at once when an image does not fit the transforms.
    """
    from paddleseg.utils.progbar import Progbar

    prepare_save_dir(save_dir)
    mine = image_list[rank::nranks]
    bar = Progbar(target=len(mine), verbose=1) if (progress and rank == 0) else None
    label_divisor = int(post_params.get("label_divisor", 1000))
    done, unreadable = [], []
    for i, path in enumerate(mine):
        try:
            image = read_image(path)
        except UserInputError as e:
            image = None
            unreadable.append(path)
            # every rank warns (its own log under launch); a new line so it does not follow the progress bar
            print("{}warning: skipping {}".format("\n" if bar is not None else "", e), file=sys.stderr, flush=True)
        if image is not None:
            try:
                semantic, panoptic = predict_image(model, image, transforms, post_params, scales, flip)
            except UserInputError as e:
                raise UserInputError("{}: {}".format(path, e))
            paths = output_paths(save_dir, path, image_root)
            save_prediction(paths, image, semantic, panoptic, palette, label_divisor, alpha)
            done.append((path, paths))
        if bar is not None:
            bar.update(i + 1)
    if unreadable:
        raise UserInputError("{} of {} image(s) could not be read and have no outputs (the other {} were written "
                             "to {}), e.g. {}".format(len(unreadable), len(mine), len(done), save_dir, unreadable[0]))
    return done


def set_device(device):
    """Select 'cpu' or 'gpu' (None: gpu when available); UserInputError if gpu is unavailable."""
    if device not in (None, "cpu", "gpu"):
        raise UserInputError("--device must be cpu or gpu, got {}".format(device))
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "gpu" and not has_gpu:
        raise UserInputError("--device gpu requested but this paddle has no usable GPU (use --device cpu)")
    paddle.set_device("gpu" if (device == "gpu" or (device is None and has_gpu)) else "cpu")


def parse_scales(text):
    try:
        if isinstance(text, (list, tuple)):
            text = " ".join(str(t) for t in text)
        scales = [float(s) for s in str(text).replace(",", " ").split()]
    except ValueError:
        raise UserInputError("--scales must be numbers, got {!r}".format(text))
    if not scales or any(s <= 0 for s in scales):
        raise UserInputError("--scales must be positive numbers, got {!r}".format(text))
    return scales


def build_arg_parser():
    p = argparse.ArgumentParser(
        description="Panoptic-DeepLab prediction: writes <name>_panoptic.png, <name>_semantic.png, "
                    "<name>_instance.png (pictures) and <name>_panoptic_raw.png (class*label_divisor+instance, "
                    "COCO RGB encoding) for every image, keeping the input's sub-folders.")
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--model_path", required=True, help="model.pdparams (or a checkpoint folder holding it)")
    p.add_argument("--image_path", required=True,
                   help="an image, a folder (searched recursively) or a .txt file listing image paths")
    p.add_argument("--save_dir", default="./output/result", help="output folder")
    p.add_argument("--aug_pred", action="store_true", help="multi-scale / flip test-time augmentation")
    p.add_argument("--scales", nargs="+", default=["1.0"],
                   help="scales for --aug_pred, e.g. --scales 0.75 1.0 1.25 (as val.py)")
    p.add_argument("--flip_horizontal", action="store_true", help="with --aug_pred: also predict the mirrored image")
    p.add_argument("--threshold", type=float, default=None, help="centre score threshold (config postprocess)")
    p.add_argument("--nms_kernel", type=int, default=None, help="centre max-pool NMS kernel, odd (config postprocess)")
    p.add_argument("--top_k", type=int, default=None, help="max number of centres (config postprocess)")
    p.add_argument("--stuff_area", type=int, default=None,
                   help="stuff segments smaller than this become void (config postprocess)")
    p.add_argument("--device", default=None, choices=["cpu", "gpu"], help="default: gpu when available")
    return p


def main(argv=None):
    """Command-line entry point (see `build_arg_parser`); user errors raise UserInputError."""
    args = build_arg_parser().parse_args(argv)
    from .inference import build_val_transforms, load_model, postprocess_params

    set_device(args.device)
    scales = parse_scales(args.scales) if args.aug_pred else [1.0]
    flip = bool(args.aug_pred and args.flip_horizontal)
    images, root = collect_images(args.image_path)
    prepare_save_dir(args.save_dir)
    cfg, builder, model = load_model(args.config, args.model_path)
    meta = dataset_metadata(cfg, builder, args.config)
    post = postprocess_params(cfg, meta, threshold=args.threshold, nms_kernel=args.nms_kernel,
                              top_k=args.top_k, stuff_area=args.stuff_area)
    transforms = build_val_transforms(builder, args.config)
    rank, nranks = paddle.distributed.get_rank(), paddle.distributed.get_world_size()
    if rank == 0:
        print("predicting {} image(s) on {} process(es) -> {}".format(len(images), nranks, args.save_dir), flush=True)
    done = predict(model, images, root, args.save_dir, transforms, post, meta.palette, scales=scales, flip=flip,
                   rank=rank, nranks=nranks)
    # every rank reports its own share (under paddle.distributed.launch each rank has its own log)
    print("saved the results of {} image(s) of rank {} under {}".format(len(done), rank, args.save_dir), flush=True)
    return 0
