"""Semantic + instance PNGs (one pair per image, matched by file stem) -> COCO panoptic layout."""
import os

import numpy as np
from PIL import Image

from ...utils import UserInputError, imread_checked, read_panoptic_png
from .categories import category_tables
from .output import IMAGE_EXTENSIONS, SplitWriter, find_by_stem
from .segments import build_segments


def image_size(path):
    """(height, width) from the image header (PIL reads no pixels), UserInputError if unreadable."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, ValueError) as e:
        raise UserInputError("cannot read image {}: {}".format(path, e))
    return h, w


def semantic_lut(category_ids):
    """int32 [max(65536, max id + 1)]: category id -> train id, -1 for values that are no category."""
    lut = np.full(max(1 << 16, int(category_ids.max()) + 1), -1, np.int32)
    lut[category_ids] = np.arange(category_ids.size, dtype=np.int32)
    return lut


def read_semantic(path):
    """A single-channel 8- or 16-bit label PNG as an int array [H, W]."""
    sem = imread_checked(path)
    if sem.ndim != 2 or sem.dtype not in (np.uint8, np.uint16):
        raise UserInputError("semantic PNG must be single-channel 8- or 16-bit (pixel = category id), got {} {}: {}"
                             .format("x".join(map(str, sem.shape)), sem.dtype, path))
    return sem


def convert_one_semantic_instance(stem, image_path, semantic_path, instance_path, lut, isthing):
    """(segment id map int32 [H, W], `build_segments` arrays, sorted void values) of one image."""
    sem = read_semantic(semantic_path)
    inst = read_panoptic_png(instance_path)  # 8/16-bit ids, or RGB-encoded ids
    hw = image_size(image_path)
    if sem.shape != hw or inst.shape != hw:
        raise UserInputError("sizes differ for {!r}: image {} is {}x{}, semantic {}x{}, instances {}x{} (h x w)".format(
            stem, image_path, hw[0], hw[1], sem.shape[0], sem.shape[1], inst.shape[0], inst.shape[1]))
    cls = lut[sem]
    void_values = np.flatnonzero(np.bincount(sem[cls < 0]))
    seg_map, segments = build_segments(cls, inst, isthing)
    return seg_map, segments, void_values


def convert_semantic_instance(categories, images, semantic, instances, out, split, progress=None):
    """Convert a folder of images with semantic and instance PNGs into ``out`` (custom layout, `split`).

    Args:
        categories: list from `load_categories`.
        images, semantic, instances (str): folders; files are matched by stem (searched recursively).
        out (str): dataset root; split (str): split name.
        progress: called once per image, or None.
    Returns the summary dict of `SplitWriter.summary` plus 'void_values' (semantic values seen that
    are no category id, counted as void).
    """
    image_files = find_by_stem(images, IMAGE_EXTENSIONS, "--images")
    sem_files = find_by_stem(semantic, (".png",), "--semantic")
    inst_files = find_by_stem(instances, (".png",), "--instances")
    for stem, path in sorted(sem_files.items()):
        if stem not in image_files:
            raise UserInputError("semantic PNG without image: {} (no {}.* in {})".format(path, stem, images))
        if stem not in inst_files:
            raise UserInputError("semantic PNG without instance PNG: {} (no {}.png in {})".format(
                path, stem, instances))
    for stem, path in sorted(inst_files.items()):
        if stem not in sem_files:
            raise UserInputError("instance PNG without semantic PNG: {} (no {}.png in {})".format(path, stem, semantic))
    for stem, path in sorted(image_files.items()):
        if stem not in sem_files:
            raise UserInputError("image without labels: {} (no {}.png in {})".format(path, stem, semantic))
    category_ids, isthing = category_tables(categories)
    lut = semantic_lut(category_ids)
    void_values = set()
    with SplitWriter(out, split, categories) as writer:
        for stem in sorted(sem_files):
            seg_map, segments, void = convert_one_semantic_instance(
                stem, image_files[stem], sem_files[stem], inst_files[stem], lut, isthing)
            void_values.update(void.tolist())
            writer.add(stem, stem + os.path.splitext(image_files[stem])[1], image_files[stem], seg_map, segments)
            if progress is not None:
                progress()
        summary = writer.commit()
    summary["void_values"] = sorted(void_values)
    return summary

