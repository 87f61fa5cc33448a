"""The categories file of the converters: a json list of ``{id, name, isthing, color}``."""
import numpy as np

from ...utils import UserInputError, load_json


def load_categories(path):
    """Read and check a categories file.

    Returns the list of ``{'id': int > 0, 'name': str, 'isthing': 0|1, 'color': [r, g, b]}`` in the
    file's order (the order fixes the train ids). A missing colour is filled from a fixed table.
    Raises UserInputError naming the file and the entry at fault.
    """
    cats = load_json(path, "categories file")
    if isinstance(cats, dict) and "categories" in cats:  # a COCO panoptic json is accepted too
        cats = cats["categories"]
    if not isinstance(cats, list) or not cats:
        raise UserInputError("{}: categories file is empty (expected a json list of {{id, name, isthing, color}})"
                             .format(path))
    out, ids, names = [], set(), set()
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise UserInputError("{}: category #{} {!r} needs at least 'id' and 'name'".format(path, i, c))
        cid, name = c["id"], str(c["name"])
        if isinstance(cid, bool) or not isinstance(cid, int) or cid <= 0:
            raise UserInputError("{}: category {!r} has id {!r}; ids must be positive integers".format(path, name, cid))
        if cid in ids:
            raise UserInputError("{}: category id {} is listed twice".format(path, cid))
        if name in names:
            raise UserInputError("{}: category name {!r} is listed twice".format(path, name))
        isthing = c.get("isthing", 0)
        if isthing not in (0, 1, True, False):
            raise UserInputError("{}: category {!r} has isthing {!r}; use 0 or 1".format(path, name, isthing))
        color = c.get("color")
        if color is None:
            color = _fallback_color(len(out))
        elif (not isinstance(color, (list, tuple)) or len(color) != 3
              or not all(isinstance(v, int) and 0 <= v <= 255 for v in color)):
            raise UserInputError("{}: category {!r} has color {!r}; use [r, g, b] in 0..255".format(path, name, color))
        ids.add(cid)
        names.add(name)
        out.append({"id": cid, "name": name, "isthing": int(isthing), "color": [int(v) for v in color]})
    return out


def _fallback_color(k):
    """A bright colour for the k-th category (golden-ratio hue steps, as many palette generators do)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((k * 0.618033988749895) % 1.0, 0.65, 0.95)
    return [int(round(255 * v)) for v in (r, g, b)]


def category_tables(categories):
    """(category ids int64 [C], isthing bool [C]) in train-id order."""
    return (np.array([c["id"] for c in categories], np.int64),
            np.array([bool(c["isthing"]) for c in categories], bool))
