"""Writing one split of the custom layout without leaving anything half-done: everything goes to a
staging folder beside the output, and only a finished split replaces what was there."""
import json
import os
import shutil

import numpy as np

from ...utils import UserInputError, check_writable_dir, write_panoptic_png
from .segments import segments_info

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def layout_paths(root, split):
    """(image folder, json file, PNG folder) of a split under `root`, as `CustomPanoptic` reads them."""
    ann = os.path.join(root, "annotations")
    return (os.path.join(root, "images", split), os.path.join(ann, "panoptic_{}.json".format(split)),
            os.path.join(ann, "panoptic_{}".format(split)))


def find_by_stem(folder, extensions, what):
    """{file stem: path} of the files under `folder` (recursively) with one of `extensions`.

    Raises UserInputError for a missing folder and for two files with the same stem.
    """
    if not os.path.isdir(folder):
        raise UserInputError("{} folder not found: {}".format(what, folder))
    found = {}
    for d, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
        for f in sorted(files):
            stem, ext = os.path.splitext(f)
            if ext.lower() not in extensions:
                continue
            path = os.path.join(d, f)
            if stem in found:
                raise UserInputError("duplicate stem {!r} in the {} folder: {} and {}".format(
                    stem, what, found[stem], path))
            found[stem] = path
    return found


class SplitWriter:
    """Collects one split in ``<root>/.convert-<split>.tmp`` and moves it into place on `commit`.

    Used as a context manager: an exception removes the staging folder, so a failed run leaves the
    output as it was.
    """

    def __init__(self, root, split, categories):
        if not split or os.sep in split or split.startswith("."):
            raise UserInputError("--split must be a plain name such as train or val, got {!r}".format(split))
        check_writable_dir(root, "--out")
        self.root, self.split, self.categories = root, split, categories
        self.category_ids = np.array([c["id"] for c in categories], np.int64)
        self.stage = os.path.join(root, ".convert-{}.tmp".format(split))
        if os.path.isdir(self.stage):
            shutil.rmtree(self.stage)  # left by a killed run
        self.final = layout_paths(root, split)
        self.staged = layout_paths(self.stage, split)
        os.makedirs(self.staged[0])
        os.makedirs(self.staged[2])
        self.images, self.annotations = [], []
        self.class_segments = np.zeros(len(categories), np.int64)
        self.class_crowd = np.zeros(len(categories), np.int64)
        self.class_images = np.zeros(len(categories), np.int64)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if os.path.isdir(self.stage):
            shutil.rmtree(self.stage, ignore_errors=True)
        return False

    def add(self, stem, image_name, image_bytes_or_path, seg_map, segments):
        """One image: copy (a path) or write (bytes) the image as `image_name`, write the PNG of
        `seg_map` and record its `build_segments` arrays."""
        dst = os.path.join(self.staged[0], image_name)
        if isinstance(image_bytes_or_path, bytes):
            with open(dst, "wb") as f:
                f.write(image_bytes_or_path)
        else:
            shutil.copyfile(image_bytes_or_path, dst)
        write_panoptic_png(os.path.join(self.staged[2], stem + ".png"), seg_map)
        h, w = seg_map.shape
        self.images.append({"id": stem, "file_name": image_name, "height": int(h), "width": int(w)})
        self.annotations.append({"image_id": stem, "file_name": stem + ".png",
                                 "segments_info": segments_info(segments, self.category_ids)})
        c = len(self.categories)
        self.class_segments += np.bincount(segments["class"], minlength=c)
        self.class_crowd += np.bincount(segments["class"], weights=segments["iscrowd"], minlength=c).astype(np.int64)
        self.class_images += np.bincount(np.unique(segments["class"]), minlength=c)

    def commit(self):
        """Write the json, then replace the split's image folder, PNG folder and json by the staged ones."""
        if not self.images:
            raise UserInputError("nothing to convert: no annotated image found")
        with open(self.staged[1], "w") as f:  # json.dumps: C encoder (json.dump encodes in Python)
            f.write(json.dumps({"images": self.images, "annotations": self.annotations, "categories": self.categories}))
        os.makedirs(os.path.dirname(self.final[1]), exist_ok=True)
        os.makedirs(os.path.dirname(self.final[0]), exist_ok=True)
        for src, dst in zip(self.staged, self.final):
            if os.path.lexists(dst):  # the previous conversion of this split, deleted with the staging folder
                os.replace(dst, os.path.join(self.stage, "old-" + os.path.basename(dst)))
            os.replace(src, dst)
        shutil.rmtree(self.stage, ignore_errors=True)
        return self.summary()

    def summary(self):
        """dict: split, images, and per category (json order) name, id, isthing, images, segments, crowd."""
        return {"split": self.split, "images": len(self.images), "out": self.root,
                "classes": [{"id": c["id"], "name": c["name"], "isthing": c["isthing"], "images": int(i),
                             "segments": int(s), "crowd": int(cr)}
                            for c, i, s, cr in zip(self.categories, self.class_images, self.class_segments,
                                                   self.class_crowd)]}


def format_summary(summary):
    """The converter's closing table (one line per category)."""
    lines = ["{} images written to {} (split {!r})".format(summary["images"], summary["out"], summary["split"]),
             "{:>8} {:<24} {:>5} {:>7} {:>9} {:>6}".format("id", "name", "kind", "images", "segments", "crowd")]
    for c in summary["classes"]:
        lines.append("{:>8} {:<24} {:>5} {:>7} {:>9} {:>6}".format(
            c["id"], c["name"][:24], "thing" if c["isthing"] else "stuff", c["images"], c["segments"], c["crowd"]))
    return "\n".join(lines)
