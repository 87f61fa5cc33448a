"""File-system checks shared by the tools and loops: JSON reading and writable output folders."""
import json
import os

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
