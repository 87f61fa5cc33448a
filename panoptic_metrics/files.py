"""File-system checks shared by the tools and loops: JSON reading and writing, writable output folders."""
import json
import math
import os

import numpy as np

from .errors import UserInputError


def load_json(path, what):
    """Read a json file; a missing or malformed file raises UserInputError naming `what` and the path."""
    if not os.path.isfile(path):
        raise UserInputError("{} not found: {}".format(what, path))
    try:
        with open(path, "r") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserInputError("cannot parse {} {}: {}".format(what, path, e))


def check_writable_dir(path, what):
    """Create folder `path` if needed and check a file can be written there; UserInputError naming `what`."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write_test_{}".format(os.getpid()))
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise UserInputError("{}: cannot write to folder {}: {}".format(what, path, e.strerror or e))


def json_ready(x, strict=False):
    """`x` with numpy arrays and scalars turned into lists and Python numbers (dicts, lists and tuples
    recursively), ready for `json.dump`. With `strict`, every NaN / inf becomes None (JSON null: the
    metric is undefined, e.g. the PQ of a class absent from ground truth and predictions), so strict JSON
    parsers read the file; without it they stay floats for the code that formats tables."""
    if isinstance(x, dict):
        return {k: json_ready(v, strict) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v, strict) for v in x]
    if isinstance(x, np.ndarray):
        return json_ready(x.tolist(), strict) if strict else x.tolist()
    if isinstance(x, np.generic):
        x = x.item()
    if strict and isinstance(x, float) and not math.isfinite(x):
        return None
    return x
