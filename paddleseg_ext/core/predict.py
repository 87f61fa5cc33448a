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

With ``--save_panoptic_json`` the predictions are also written in the COCO panoptic format, with the
dataset's own category ids (Cityscapes label ids, COCO category ids, a custom dataset's json ids):
``<save_dir>/panoptic_predictions/<sub/dirs>/<name>.png`` (segment ids, ``id2rgb``) and one
``<save_dir>/panoptic_predictions.json`` (``annotations``, ``categories``, ``images``), which
`tools/eval_panoptic.py`, panopticapi or a test server read.

``--video IN.mp4`` writes ``<save_dir>/<name>_panoptic.mp4``: the panoptic picture of every frame, same
frame rate and size.

Images are split over the ranks of ``paddle.distributed.launch``: image i goes to rank i % nranks (a
video is done by rank 0). Each image goes through the pipeline's `Predictor` (the path val and the
exported model take); an image of any size is accepted (`pipeline.inference_transforms`). Every file
is written under a temporary name and renamed, so an interrupted run leaves no half-written output.
"""
import os
import sys

import cv2
import numpy as np

from panoptic_metrics.distributed import all_gather_objects
from panoptic_metrics.formats import panoptic_annotation, panoptic_to_segments

from ..pipeline import build_predictor
from ..pipeline.predictor import as_rgb
from ..runtime import build_model, dataset_metadata, init_distributed, load_config, setup_device
from ..utils import UserInputError, check_writable_dir, load_json, log, read_image, write_panoptic_png
from ..visualize import visualize_instance, visualize_panoptic, visualize_semantic
from .progress import Progress
from .val import save_metrics

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

#: output file suffixes (appended to the input image name without extension)
OUTPUT_SUFFIXES = {
    "panoptic": "_panoptic.png",
    "semantic": "_semantic.png",
    "instance": "_instance.png",
    "panoptic_raw": "_panoptic_raw.png",
}


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
        log.warning("skipping non-image file {}".format(p))
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


def _temporary_name(path):
    """A hidden name next to `path` with the same extension (OpenCV picks the format by extension)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, ".tmp_{}_{}".format(os.getpid(), name))


def write_atomic(path, write):
    """`write(temporary path)`, then rename it to `path`: a killed run never leaves a half-written file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = _temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _imwrite(path, rgb):
    def write(tmp):
        if not cv2.imwrite(tmp, np.ascontiguousarray(rgb[..., ::-1])):
            raise UserInputError("cannot write {}".format(path))

    write_atomic(path, write)


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
    write_atomic(paths["panoptic_raw"], lambda tmp: write_panoptic_png(tmp, np.asarray(panoptic, dtype=np.int64)))


def image_id_of(file_name):
    """The ``image_id`` the official ground truth gives an image file.

    Cityscapes: ``<city>_<seq>_<frame>`` (the name without ``_leftImg8bit``); COCO: the number of
    ``000000000139.jpg`` (139); any other name: its stem.
    """
    stem = os.path.splitext(os.path.basename(file_name))[0]
    if stem.endswith("_leftImg8bit"):
        return stem[:-len("_leftImg8bit")]
    return int(stem) if stem.isdigit() else stem


def load_image_ids(json_file):
    """File name -> ``image_id`` from the ``images`` list of a COCO-style json (a dataset's panoptic json,
    COCO's ``image_info_test-dev2017.json``); keys are base names."""
    data = load_json(json_file, "--image_info json")
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not all(isinstance(i, dict) and "id" in i and "file_name" in i
                                               for i in images):
        raise UserInputError("--image_info {}: needs an `images` list of {{id, file_name}} entries".format(json_file))
    return {os.path.basename(i["file_name"]): i["id"] for i in images}


class PanopticJsonWriter:
    """Predictions in the COCO panoptic format, with the dataset's own category ids.

    ``<save_dir>/panoptic_predictions/<rel stem>.png`` per image (segment ids 1..N, ``id2rgb``) and, on
    `finish`, ``<save_dir>/panoptic_predictions.json``: ``annotations`` (``image_id``, ``file_name``,
    ``segments_info`` with ``id``, ``category_id``, ``iscrowd`` 0, ``area``, ``bbox`` [x, y, w, h], and
    ``score`` for thing instances), ``categories`` (``id``, ``name``, ``isthing``, ``color``) and
    ``images`` (``id``, ``file_name``, ``height``, ``width``), gathered over all ranks.

    Args:
        save_dir (str): output folder.
        meta: `runtime.dataset_metadata` (category_ids, class_names, thing_ids, palette, label_divisor,
            void_label).
        image_ids (dict): file base name -> image_id (`load_image_ids`); default `image_id_of` the name.
    """

    JSON_NAME = "panoptic_predictions.json"
    FOLDER = "panoptic_predictions"

    def __init__(self, save_dir, meta, image_ids=None):
        self.image_ids = image_ids
        self.json_path = os.path.join(save_dir, self.JSON_NAME)
        self.folder = os.path.join(save_dir, self.FOLDER)
        self.meta = meta
        self.category_map = dict(enumerate(meta.category_ids))
        self.annotations, self.images = [], []

    def categories(self):
        m = self.meta
        names = list(m.class_names) + [str(c) for c in m.category_ids[len(m.class_names):]]
        return [{"id": int(c), "name": names[i], "isthing": int(i in set(m.thing_ids)),
                 "color": [int(v) for v in m.palette[i]]} for i, c in enumerate(m.category_ids)]

    def image_id(self, image_file):
        if self.image_ids is None:
            return image_id_of(image_file)
        name = os.path.basename(image_file)
        if name not in self.image_ids:
            raise UserInputError("{} is not listed in the `images` of --image_info".format(image_file))
        return self.image_ids[name]

    def add(self, rel_stem, image_file, result):
        """Write one image's prediction; `result` is the `Predictor`'s dict (panoptic [h, w],
        instance_ids [M], instance_scores [M, S]: the first score mode becomes ``score``)."""
        panoptic = np.asarray(result["panoptic"], dtype=np.int64)
        div, void = self.meta.label_divisor, self.meta.void_label
        file_name = rel_stem + ".png"
        seg_ids, info = panoptic_to_segments(panoptic, div, void, self.category_map)
        write_atomic(os.path.join(self.folder, file_name), lambda tmp: write_panoptic_png(tmp, seg_ids))
        # segment k + 1 is the k-th panoptic label in increasing order (`panoptic_to_segments`)
        labels = np.unique(panoptic[panoptic != void])
        ids = np.asarray(result["instance_ids"], dtype=np.int64).ravel()
        scores = np.asarray(result["instance_scores"], dtype=np.float64)
        scores = scores[:, None] if scores.ndim == 1 else scores
        is_thing = (labels % div > 0) & np.isin(labels // div, self.meta.thing_ids)
        order = np.argsort(ids)
        pos = np.clip(np.searchsorted(ids[order], labels), 0, max(len(ids) - 1, 0))
        found = is_thing & (len(ids) > 0)
        if len(ids):
            found &= ids[order][pos] == labels
        for seg, has, k in zip(info, found.tolist(), pos.tolist()):
            if has:
                seg["score"] = float(scores[order[k], 0])
        image_id = self.image_id(image_file)
        self.annotations.append(panoptic_annotation(image_id, file_name, info))
        self.images.append({"id": image_id, "file_name": os.path.basename(image_file),
                            "height": int(panoptic.shape[0]), "width": int(panoptic.shape[1])})

    def finish(self, rank=0):
        """Gather every rank's annotations and write the json on rank 0 (atomically); returns its path."""
        annotations = [a for part in all_gather_objects(self.annotations) for a in part]
        images = [a for part in all_gather_objects(self.images) for a in part]
        if rank == 0:
            order = sorted(range(len(images)), key=lambda i: annotations[i]["file_name"])
            first = {}
            for ann in annotations:  # a test server or evaluator pairs predictions by image_id: it must be unique
                other = first.setdefault(ann["image_id"], ann["file_name"])
                if other != ann["file_name"]:
                    raise UserInputError("image_id {!r} is given to two images ({} and {}); give each image its id "
                                         "with --image_info".format(ann["image_id"], other, ann["file_name"]))
            save_metrics({"annotations": [annotations[i] for i in order], "images": [images[i] for i in order],
                          "categories": self.categories()}, self.json_path)
        return self.json_path


def predict(predictor, image_list, image_root, save_dir, palette, label_divisor=1000, rank=0, nranks=1, alpha=0.5,
            progress=True, json_writer=None):
    """Predict this rank's share of `image_list` (images i with i % nranks == rank) and save the outputs
    (also in the official format when `json_writer`, a `PanopticJsonWriter`, is given; its `finish` is
    the caller's).

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
            if bar.bar is not None:
                sys.stderr.write("\n")
            log.warning("skipping {}".format(e), every_rank=True)
        if image is not None:
            try:
                result = predictor(image)
            except UserInputError as e:
                raise UserInputError("{}: {}".format(path, e))
            paths = output_paths(save_dir, path, image_root)
            save_prediction(paths, image, result["semantic"], result["panoptic"], palette, label_divisor, alpha)
            if json_writer is not None:
                rel_stem = os.path.relpath(paths["panoptic_raw"], save_dir)[:-len(OUTPUT_SUFFIXES["panoptic_raw"])]
                json_writer.add(rel_stem, path, result)
            done.append((path, paths))
        bar.step()
    if unreadable:
        raise UserInputError("{} of {} image(s) could not be read and have no outputs (the other {} were written "
                             "to {}), e.g. {}".format(len(unreadable), len(mine), len(done), save_dir, unreadable[0]))
    return done


def video_output_path(save_dir, video_path):
    """``<save_dir>/<name>_panoptic.mp4`` of ``.../<name>.<ext>``."""
    return os.path.join(save_dir, os.path.splitext(os.path.basename(video_path))[0] + "_panoptic.mp4")


def open_video(video_path):
    """(cv2.VideoCapture, first frame uint8 [h, w, 3] BGR) of a video file; UserInputError naming it when it is
    missing or no frame can be decoded."""
    if not os.path.isfile(video_path):
        raise UserInputError("--video not found: {}".format(video_path))
    cap = cv2.VideoCapture(video_path)
    ok, frame = cap.read() if cap.isOpened() else (False, None)
    if not ok:
        cap.release()
        raise UserInputError("cannot read a frame of the video (not a video, or a codec OpenCV lacks): {}".format(
            video_path))
    return cap, frame


def predict_video(predictor, video_path, save_dir, palette, label_divisor=1000, max_frames=None, alpha=0.5,
                  progress=True):
    """Draw the panoptic picture (`visualize_panoptic`, as ``<name>_panoptic.png``) of every frame of a
    video into ``<save_dir>/<name>_panoptic.mp4`` (MPEG-4 part 2, 'mp4v'; same frame rate and size).

    Args:
        max_frames (int): stop after this many frames (None: the whole video).
    Returns:
        (output path, number of frames written).
    Raises:
        UserInputError: the video cannot be opened or has no frame, or the output cannot be written.
    """
    if max_frames is not None and int(max_frames) < 1:
        raise UserInputError("--video_frames must be at least 1, got {}".format(max_frames))
    cap, frame = open_video(video_path)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0  # some containers carry no rate; 25 as ffmpeg assumes
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if max_frames is not None:
            total = min(total, int(max_frames)) if total > 0 else int(max_frames)
        check_writable_dir(save_dir, "--save_dir")
        out_path = video_output_path(save_dir, video_path)
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            log.warning("{}: frames of {}x{} (w x h); MPEG-4 stores even sizes only, so {} keeps the first {}x{} "
                  "pixels".format(video_path, w, h, out_path, w - w % 2, h - h % 2))
        count = [0]

        def write(tmp):
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            if not writer.isOpened():
                raise UserInputError("cannot write the video {} (OpenCV has no 'mp4v' encoder)".format(out_path))
            bar = Progress(total, progress)
            f = frame
            try:
                while f is not None and (max_frames is None or count[0] < int(max_frames)):
                    rgb = as_rgb(f)[..., ::-1]  # OpenCV decodes to BGR
                    result = predictor(rgb)
                    picture = visualize_panoptic(result["panoptic"], palette, label_divisor, rgb, alpha)
                    writer.write(np.ascontiguousarray(picture[..., ::-1]))
                    count[0] += 1
                    bar.step()
                    ok, f = cap.read()
                    f = f if ok else None
            finally:
                writer.release()

        write_atomic(out_path, write)
    finally:
        cap.release()
    return out_path, count[0]


def run_predict(config, model_path, image_path, save_dir, scales=(1.0,), flip=False, postprocess=None, device=None,
                verbose=False, save_panoptic_json=False, long_side=None, video=None, video_frames=None,
                image_info=None):
    """Body of `predict.py`: the outputs of every image under `image_path` (and of a video) in `save_dir`.

    Args:
        config, model_path (str): YAML config and weights.
        image_path (str): an image, a folder or a .txt list (see `collect_images`); may be None with `video`.
        save_dir (str): output folder (sub-folders of the input are kept).
        scales, flip: test-time augmentation. postprocess (dict): post-processing overrides.
        save_panoptic_json (bool): also write the official format (`PanopticJsonWriter`); `image_info`: a json
            whose `images` give the image ids (`load_image_ids`).
        long_side (int): resize images (and frames) to this longer side first, results at the original size.
        video (str): a video file (rank 0 does it); video_frames (int): stop after that many frames.
    Returns:
        list of (image path, dict of written output paths) of this rank.
    """
    if not image_path and not video:
        raise UserInputError("give --image_path (images) or --video (a video file)")
    dev = setup_device(device)
    rank, nranks = init_distributed()
    images, root = collect_images(image_path) if image_path else ([], None)
    if video:
        open_video(video)[0].release()  # a bad video fails before the model is built
    image_ids = load_image_ids(image_info) if image_info else None
    check_writable_dir(save_dir, "--save_dir")
    cfg = load_config(config)
    builder, model = build_model(cfg, config, model_path, verbose=verbose)
    meta = dataset_metadata(cfg, builder, config)
    predictor = build_predictor(model, cfg, config, builder, meta=meta, postprocess=postprocess, scales=scales,
                                flip=flip, long_side=long_side)
    log.info("[PREDICT] config {}, model {} ({}), {} image(s){} on {} process(es), device {} -> {}".format(
        config, type(model).__name__, model_path, len(images), " and video {}".format(video) if video else "",
        nranks, dev, save_dir), rank=rank)
    done = []
    if images:
        writer = PanopticJsonWriter(save_dir, meta, image_ids) if save_panoptic_json else None
        try:
            done = predict(predictor, images, root, save_dir, meta.palette, meta.label_divisor, rank=rank,
                           nranks=nranks, json_writer=writer)
            # every rank reports its own share (under paddle.distributed.launch each rank has its own log)
            log.info("[PREDICT] saved the results of {} image(s) of rank {} under {}".format(len(done), rank, save_dir),
                     every_rank=True)
        finally:
            # also after unreadable images (reported by `predict` at its end): the json lists the others, and
            # every rank takes part in the gather
            if writer is not None:
                path = writer.finish(rank)
                log.info("[PREDICT] official-format predictions: {} and {}".format(path, writer.folder), rank=rank)
    if video and rank == 0:
        path, n = predict_video(predictor, video, save_dir, meta.palette, meta.label_divisor, video_frames)
        log.info("[PREDICT] wrote {} frame(s) to {}".format(n, path))
    return done
