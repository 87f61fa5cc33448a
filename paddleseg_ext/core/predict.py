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
Each image goes through the pipeline's `Predictor` (the path val and the exported model take).
"""
import os
import sys

import cv2
import numpy as np
import paddle

from ..pipeline import build_predictor
from ..runtime import build_model, dataset_metadata, init_distributed, load_config, setup_device
from ..utils import UserInputError, check_writable_dir, read_image, write_panoptic_png
from ..visualize import visualize_instance, visualize_panoptic, visualize_semantic
from .progress import Progress

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
            listing one image path per line (relative paths are relative to the list's folder, as
            in PaddleSeg's predict.py; blank lines and lines starting with ``#`` are ignored; extra
            columns after a space are ignored).
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


def _imwrite(path, rgb):
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
    _imwrite(paths["panoptic"], visualize_panoptic(panoptic, palette, label_divisor, image, alpha))
    _imwrite(paths["semantic"], visualize_semantic(semantic, palette, image, alpha))
    _imwrite(paths["instance"], visualize_instance(panoptic, label_divisor, image, alpha))
    write_panoptic_png(paths["panoptic_raw"], np.asarray(panoptic, dtype=np.int64))


def predict(predictor, image_list, image_root, save_dir, palette, label_divisor=1000, rank=0, nranks=1, alpha=0.5,
            progress=True):
    """Predict this rank's share of `image_list` (images i with i % nranks == rank) and save the outputs.

    Returns:
        list of (image path, dict of written output paths).
    Raises:
        UserInputError: after all other images are done, when some could not be read (each one is
            reported by a warning as it is skipped); at once when an image does not fit the transforms.
    """
    check_writable_dir(save_dir, "--save_dir")
    mine = image_list[rank::nranks]
    bar = Progress(len(mine), progress and rank == 0)
    done, unreadable = [], []
    for path in mine:
        try:
            image = read_image(path)
        except UserInputError as e:
            image = None
            unreadable.append(path)
            # every rank warns (its own log under launch); a new line so it does not follow the progress bar
            print("{}warning: skipping {}".format("\n" if bar.bar is not None else "", e), file=sys.stderr, flush=True)
        if image is not None:
            try:
                result = predictor(image)
            except UserInputError as e:
                raise UserInputError("{}: {}".format(path, e))
            paths = output_paths(save_dir, path, image_root)
            save_prediction(paths, image, result["semantic"], result["panoptic"], palette, label_divisor, alpha)
            done.append((path, paths))
        bar.step()
    if unreadable:
        raise UserInputError("{} of {} image(s) could not be read and have no outputs (the other {} were written "
                             "to {}), e.g. {}".format(len(unreadable), len(mine), len(done), save_dir, unreadable[0]))
    return done


def run_predict(config, model_path, image_path, save_dir, scales=(1.0,), flip=False, postprocess=None, device=None,
                verbose=False):
    """Body of `predict.py`: the outputs of every image under `image_path` in `save_dir`.

    Args:
        config, model_path (str): YAML config and weights.
        image_path (str): an image, a folder or a .txt list (see `collect_images`).
        save_dir (str): output folder (sub-folders of the input are kept).
        scales, flip: test-time augmentation. postprocess (dict): post-processing overrides.
    Returns:
        list of (image path, dict of written output paths) of this rank.
    """
    dev = setup_device(device)
    rank, nranks = init_distributed()
    images, root = collect_images(image_path)
    check_writable_dir(save_dir, "--save_dir")
    cfg = load_config(config)
    builder, model = build_model(cfg, config, model_path, verbose=verbose)
    meta = dataset_metadata(cfg, builder, config)
    predictor = build_predictor(model, cfg, config, builder, meta=meta, postprocess=postprocess, scales=scales,
                                flip=flip)
    if rank == 0:
        print("[PREDICT] config {}, model {} ({}), {} image(s) on {} process(es), device {} -> {}".format(
            config, type(model).__name__, model_path, len(images), nranks, dev, save_dir), flush=True)
    done = predict(predictor, images, root, save_dir, meta.palette, meta.label_divisor, rank=rank, nranks=nranks)
    # every rank reports its own share (under paddle.distributed.launch each rank has its own log)
    print("[PREDICT] saved the results of {} image(s) of rank {} under {}".format(len(done), rank, save_dir),
          flush=True)
    return done
