"""Loading pretrained weights (backbone or whole model) from a URL or a local file, with clear errors.

PaddleSeg's backbones load their ``pretrained`` argument through
``paddleseg.utils.utils.load_pretrained_model``, which downloads URLs with ``requests``. Offline that
ends in a ``requests.ConnectionError`` stack trace; a missing local file ends in a ``ValueError``.
While a model is built by ``paddleseg_ext.runtime`` (inside ``clear_pretrained_errors()``), that
function is replaced by ``load_pretrained_model`` below, which resolves the path first and raises
``UserInputError`` naming the URL or file and saying how to pass a local file instead. The patch is
explicit and scoped: importing this package changes nothing in PaddleSeg.
"""
import contextlib
import os
from urllib.parse import urlparse

import paddleseg.utils
import paddleseg.utils.utils as _ps_utils

from ..utils import UserInputError

_HOW_TO_PASS_LOCAL = (
    "Without network access, download it on another machine, unpack it if it is an archive, and "
    "pass the local file instead, e.g. `pretrained: /path/to/model.pdparams` in the config's "
    "backbone (ImageNet weights) or model (full checkpoint) section."
)


def is_url(path):
    """True when ``path`` is a string with a network location (``https://host/...``)."""
    return isinstance(path, str) and bool(urlparse(path).netloc)


def resolve_weights_path(pretrained):
    """Return a local ``.pdparams`` path for ``pretrained`` (a URL or a local path).

    URLs are fetched (or found in PaddleSeg's cache ``~/.paddleseg/pretrained_model``) by PaddleSeg's
    ``download_pretrained_model``; a directory is taken to hold ``model.pdparams``.
    Raises ``UserInputError`` naming the URL/path when it cannot be fetched or does not exist.
    """
    if not isinstance(pretrained, (str, os.PathLike)):
        raise UserInputError(
            f"pretrained: expected a URL or a path to a .pdparams file, got {pretrained!r}")
    pretrained = os.fspath(pretrained)
    if is_url(pretrained):
        try:
            return _ps_utils.download_pretrained_model(pretrained)
        except Exception as exc:  # requests/urllib/OSError/tarfile errors: all mean "not obtainable"
            reason = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise UserInputError(
                f"pretrained: cannot download weights from {pretrained} "
                f"({type(exc).__name__}: {reason}). {_HOW_TO_PASS_LOCAL}") from exc
    path = os.path.expanduser(pretrained)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "model.pdparams")):
        path = os.path.join(path, "model.pdparams")
    if not os.path.isfile(path):
        raise UserInputError(
            f"pretrained: weights file not found: {pretrained}. Give a URL or an existing "
            "local file, e.g. `pretrained: /path/to/model.pdparams`.")
    return path


def load_pretrained_model(model, pretrained_model):
    """Drop-in for ``paddleseg.utils.utils.load_pretrained_model`` with ``UserInputError`` on bad input.

    Loads the matching keys of the state dict stored at ``pretrained_model`` (URL or local path)
    into ``model`` (PaddleSeg's behaviour: missing or mis-shaped keys are skipped with a warning).
    """
    if pretrained_model is None:
        return _ORIGINAL_LOAD(model, None)
    path = resolve_weights_path(pretrained_model)
    try:
        return _ORIGINAL_LOAD(model, path)
    except UserInputError:
        raise
    except Exception as exc:
        raise UserInputError(
            f"pretrained: cannot read weights from {pretrained_model} "
            f"({type(exc).__name__}: {exc})") from exc


_ORIGINAL_LOAD = _ps_utils.load_pretrained_model


@contextlib.contextmanager
def clear_pretrained_errors():
    """Within the block, PaddleSeg's backbones load their ``pretrained`` weights through
    ``load_pretrained_model`` (one-line errors); PaddleSeg's own function is restored afterwards.

    Backbones call ``paddleseg.utils.utils.load_pretrained_model`` by module attribute (directly or
    through ``load_entire_model``), so replacing that attribute covers them all.
    """
    saved = (_ps_utils.load_pretrained_model, getattr(paddleseg.utils, "load_pretrained_model", None))
    _ps_utils.load_pretrained_model = load_pretrained_model
    if saved[1] is not None:  # the package re-exports it
        paddleseg.utils.load_pretrained_model = load_pretrained_model
    try:
        yield
    finally:
        _ps_utils.load_pretrained_model = saved[0]
        if saved[1] is not None:
            paddleseg.utils.load_pretrained_model = saved[1]
